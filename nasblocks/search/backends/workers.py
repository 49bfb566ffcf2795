"""``--workers N``: N processes run the trials of one study; this process supervises them.

**Storage.** The study stays where a one-process search keeps it: ``OUT/study.db`` (SQLite),
opened by :func:`~nasblocks.search.backends.storage.open_storage` in write-ahead-log mode with a
60 s busy timeout. Chosen over Optuna's journal file because

- it is the same study whatever N: a search started with one process resumes with four and
  back, and ``nasblocks report`` / ``optuna-dashboard sqlite:///OUT/study.db`` read it while
  it runs;
- Optuna's RDB storage has heartbeats (its journal backend has none): ``--heartbeat`` works
  here exactly as on PostgreSQL, one code path for both;
- the load is small: a trial writes a few dozen short transactions over seconds or minutes.
  WAL lets readers (this supervisor's progress polls, a dashboard) run beside the writer, and
  the busy timeout makes a writer wait for the lock instead of failing with "database is
  locked" (4 processes storing 200 trials of 10 ms each: no error, 12 s).

The journal would be the choice for hundreds of processes; a database server
(``--storage postgresql://...``) for several machines.

**Workers.** Each is a fresh interpreter (``spawn``: safe with torch's thread pools and CUDA)
that opens the study itself and, until the budget is met, runs one trial at a time:

- its share of the machine: ``max(1, cores // N)`` torch threads (fewer if the space's
  ``threads`` says so); with CUDA, one GPU each, round robin (``CUDA_VISIBLE_DEVICES``);
- its own sampler seed, so that N processes do not draw the same architectures;
- admission under a lock file (``OUT/workers.lock``): a trial starts only while finished +
  running trials < budget. Guarantee: the study ends with exactly the budget of counted
  trials, and rerunning a finished search starts none. Optuna's ``MaxTrialsCallback`` runs
  after a trial ends and cannot give this: measured in ``benchmarks/budget_guarantee.py``,
  it overshoots by up to N-1 and a rerun starts N more trials. A worker that finds the rest
  of the budget running waits: one of those trials may still fail;
- a watchdog: when the supervisor dies, the worker exits at once (the next run retries its
  trial), so a rerun of the same command never races with orphans.

**Supervisor** (:func:`run_workers`): shows progress by polling the study; when a worker
exits abnormally (killed, crashed) it fails the worker's RUNNING trial, re-queues it and
starts a replacement; it stops everyone on the budget, the timeout, repeated failures, a
worker's error or Ctrl-C.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import signal
import socket
import sys
import threading
import time
import traceback
import zlib
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nasblocks.errors import NasBlocksError
from nasblocks.search import budget as budgets
from nasblocks.search.backends import storage
from nasblocks.search.logs import quiet_optuna
from nasblocks.search.objective import Objective, open_study
from nasblocks.search.outputs import folder as run_folder
from nasblocks.search.outputs import results
from nasblocks.search.pipeline import Job, TrialFailed

if TYPE_CHECKING:
    from nasblocks.search.outputs.progress import Progress

try:
    import fcntl
except ImportError:  # pragma: no cover (not POSIX): admission is then unlocked, overshoot < N
    fcntl = None  # type: ignore[assignment]

POLL_S = 1.0  # supervisor: progress and worker checks
WAIT_S = 0.5  # worker: waiting for the trials still running to end
LOCK_FILE = "workers.lock"
ENDED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclasses.dataclass(frozen=True)
class WorkerPlan:
    """What one worker process is given (pickled to it)."""

    index: int
    job: Job
    out: str
    url: str
    heartbeat: int | None
    threads: int
    env: dict[str, str]
    deadline: float | None  # time.time() after which no trial starts
    parent: int  # the supervisor's pid
    plugins: tuple[str, ...] = ()  # user blocks the supervisor loaded (--plugin)
    since: datetime.datetime = datetime.datetime.min  # when this run began


def share_machine(
    n: int, threads: int | None, gpus: Sequence[str] = (), cores: int | None = None
) -> list[tuple[int, dict[str, str]]]:
    """``(torch threads, environment)`` for each of ``n`` workers: an equal share of the CPU
    cores (at most ``threads`` if given), and one of ``gpus`` each, round robin."""
    cores = cores or _cores()
    per = max(1, cores // n)
    if threads is not None:
        per = min(per, threads)
    shares = []
    for i in range(n):
        env = {"OMP_NUM_THREADS": str(per), "MKL_NUM_THREADS": str(per)}
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
        shares.append((per, env))
    return shares


def visible_gpus(device: Any) -> list[str]:
    """The CUDA devices trials may use (``CUDA_VISIBLE_DEVICES`` honoured); none on CPU."""
    if device not in ("auto", "cuda"):
        return []
    import torch

    if not torch.cuda.is_available():
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed:
        return [d.strip() for d in listed.split(",") if d.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


def _loaded_plugins() -> tuple[str, ...]:
    """The plugins loaded here, as a worker process can load them again (files by path)."""
    from nasblocks import plugins

    names = []
    for name, module in plugins._loaded.items():
        file = getattr(module, "__file__", None)
        names.append(str(Path(file).resolve()) if name.endswith(".py") and file else name)
    return tuple(names)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (macOS)
        return os.cpu_count() or 1


# -- admission ------------------------------------------------------------------------------


class Admission:
    """Start a trial only while finished + running < budget, decided under a lock file.

    :meth:`admit` returns ``"go"`` with the lock held; the worker releases it once its trial
    exists and carries its ``worker`` attribute (``Objective``'s ``on_start``), so that the
    next worker counts it. Not counted: running trials without that attribute (under the
    lock, their process died before getting that far) and, without heartbeats (one machine),
    those whose process is gone: nothing would ever fail them, and waiting would never end.
    With heartbeats, a dead worker's trial counts until its heartbeat is found stale.

    It also says ``"stop"`` when the last trials that ended since ``since`` all failed (as
    many as make a one-process search give up), so that workers stop together.
    """

    def __init__(
        self,
        study: optuna.Study,
        target: int,
        path: Path,
        since: datetime.datetime,
        beats: bool = False,
    ) -> None:
        self.study, self.target, self.since = study, target, since
        self.beats = beats  # the study's storage has heartbeats
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self.held = False

    def acquire(self) -> None:
        if fcntl is not None:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        self.held = True

    def release(self, *_: Any) -> None:
        if self.held and fcntl is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        self.held = False

    @contextmanager
    def locked(self):
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def admit(self) -> str:
        """``"go"`` (lock held), ``"wait"`` or ``"stop"`` (the budget is met, or failing)."""
        self.acquire()
        trials = self.study.get_trials(deepcopy=False)
        finished = sum(budgets.counts(t) for t in trials)
        running = sum(t.state == TrialState.RUNNING and self._running(t) for t in trials)
        failing = self._failing(trials)
        if finished + running < self.target and not failing:
            return "go"
        self.release()
        return "wait" if finished < self.target and not failing else "stop"

    def _failing(self, trials: list[FrozenTrial]) -> bool:
        ended = [
            (t.datetime_complete, t)
            for t in trials
            if t.state in ENDED and t.datetime_complete and t.datetime_complete >= self.since
        ]
        ended.sort(key=lambda pair: pair[0])
        last = ended[-budgets.MAX_FAILS_IN_A_ROW :]
        full = len(last) == budgets.MAX_FAILS_IN_A_ROW
        return full and all(t.state == TrialState.FAIL for _, t in last)

    def _running(self, trial: FrozenTrial) -> bool:
        worker = trial.user_attrs.get("worker")
        return worker is not None and (self.beats or _alive(worker))

    def close(self) -> None:
        self.release()
        os.close(self.fd)


def _alive(worker: str) -> bool:
    """Is the process ``host:pid`` running? (Another machine's: assumed so.)"""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


# -- a worker process -----------------------------------------------------------------------


def worker_main(plan: WorkerPlan, stop: Any, messages: Any) -> None:
    """Entry point of a worker process: trials until the budget is met or ``stop`` is set.

    An error that is not a trial's own (the storage, the data) goes to ``messages`` and ends
    the whole search; a trial's error is recorded on the trial and the worker goes on.
    """
    os.environ.update(plan.env)
    _exit_with(plan.parent)
    try:
        from nasblocks.plugins import load_plugins

        load_plugins(plan.plugins)
        _work(plan, stop)
    except KeyboardInterrupt:
        sys.exit(130)
    except NasBlocksError as e:
        messages.put(f"worker {plan.index}: {e}")
        sys.exit(3)
    except Exception as e:
        failure = run_folder.environment_failure(e, Path(plan.out), plan.url)
        if failure is not None:  # a full disk, a read-only folder: one line, no traceback
            messages.put(f"worker {plan.index}: {failure}")
            sys.exit(3)
        traceback.print_exc()  # a bug: keep the traceback on stderr
        messages.put(f"worker {plan.index} failed: {type(e).__name__}: {e}")
        sys.exit(3)


def _work(plan: WorkerPlan, stop: Any) -> None:
    import torch

    torch.set_num_threads(plan.threads)
    job, out = plan.job, Path(plan.out)
    seed = job.space.settings.seed + zlib.crc32(storage.worker_id().encode())
    study, _ = open_study(job.space, out, plan.url, heartbeat=plan.heartbeat, seed=seed)
    trial_loop(
        study,
        Objective(job, out),
        since=plan.since,
        deadline=plan.deadline,
        stopped=stop.is_set,
        wait=stop.wait,
        heartbeat=plan.heartbeat,
    )


def trial_loop(
    study: optuna.Study,
    objective: Objective,
    *,
    since: datetime.datetime,
    deadline: float | None,
    stopped: Callable[[], bool],
    wait: Callable[[float], Any] = time.sleep,
    callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = (),
    heartbeat: int | None = None,
) -> None:
    """One trial at a time, each admitted by :class:`Admission`, until the budget is met,
    ``deadline`` (``time.time()``) passes or ``stopped()``. What a worker process runs, and
    what a single process runs on a study other machines share."""
    out = objective.out
    target = objective.settings.budget.trials
    gate = Admission(study, target, out / LOCK_FILE, since, beats=heartbeat is not None)
    objective.on_start = gate.release

    def prune(s: optuna.Study, _: FrozenTrial) -> None:
        results.prune_weights(s, out)

    try:
        while not stopped():
            if deadline is not None and time.time() >= deadline:
                return
            if gate.beats:
                storage.fail_stale(study)
            verdict = gate.admit()
            if verdict == "stop":
                return
            if verdict == "wait":
                wait(WAIT_S)
                continue
            try:
                with quiet_optuna():
                    study.optimize(
                        objective,
                        n_trials=1,
                        callbacks=[prune, *callbacks],
                        catch=(TrialFailed,),
                    )
            finally:
                gate.release()
    finally:
        gate.close()


def run_shared(
    study: optuna.Study, objective: Objective, show: Progress, heartbeat: int | None = None
) -> str | None:
    """One process on a study other processes may share: each trial admitted as worker
    processes admit theirs; returns why it stopped early, if so."""
    budget = objective.settings.budget
    stopper = budgets.Stopper(budget.trials)
    deadline = time.time() + budget.timeout if budget.timeout else None

    def count(_: optuna.Study, trial: FrozenTrial) -> None:
        stopper.count(trial)

    trial_loop(
        study,
        objective,
        since=datetime.datetime.now(),
        deadline=deadline,
        stopped=lambda: stopper.error is not None,
        callbacks=[count, show],
        heartbeat=heartbeat,
    )
    (objective.out / LOCK_FILE).unlink(missing_ok=True)
    return stopper.error


def _exit_with(parent: int) -> None:
    """Exit this process as soon as ``parent`` is gone (killed: nobody would collect us)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="nasblocks-parent-watch", daemon=True).start()


# -- the supervisor -------------------------------------------------------------------------


def run_workers(
    study: optuna.Study,
    job: Job,
    out: Path,
    url: str,
    n: int,
    heartbeat: int | None,
    show: Progress,
    exclusive: bool,
) -> str | None:
    """Run the study's remaining trials in ``n`` worker processes; return why it stopped
    early (too many failures, a worker's error), or None."""
    space = job.space
    settings = space.settings
    budget = settings.budget
    if budgets.count_finished(study) >= budget.trials:
        return None
    deadline = time.time() + budget.timeout if budget.timeout else None
    device = space.train.get("device", "auto")  # a search node: may be cuda
    gpus = visible_gpus(device if isinstance(device, str) else "auto")
    shares = share_machine(n, settings.threads, gpus)
    since, plugins = datetime.datetime.now(), _loaded_plugins()
    plans = [
        WorkerPlan(
            index=i,
            job=job,
            out=str(out),
            url=url,
            heartbeat=heartbeat,
            threads=threads,
            env=env,
            deadline=deadline,
            parent=os.getpid(),
            plugins=plugins,
            since=since,
        )
        for i, (threads, env) in enumerate(shares)
    ]
    return _Supervisor(study, plans, show, exclusive).run()


class _Supervisor:
    def __init__(
        self, study: optuna.Study, plans: list[WorkerPlan], show: Progress, exclusive: bool
    ) -> None:
        import multiprocessing

        self.ctx = multiprocessing.get_context("spawn")
        self.study, self.plans, self.show, self.exclusive = study, plans, show, exclusive
        self.target = plans[0].job.space.settings.budget.trials
        self.deadline = plans[0].deadline
        self.stop = self.ctx.Event()
        self.messages = self.ctx.SimpleQueue()
        first = plans[0]
        lock = Path(first.out) / LOCK_FILE
        self.gate = Admission(study, self.target, lock, first.since, first.heartbeat is not None)
        self.procs: dict[int, Any] = {}
        self.reported = {t.number for t in study.get_trials(deepcopy=False, states=ENDED)}
        self.stopper = budgets.Stopper(self.target)
        self.deaths = 0
        self.error: str | None = None

    def run(self) -> str | None:
        try:
            for plan in self.plans:
                self._start(plan)
            while self.procs:
                time.sleep(POLL_S)
                self._poll()
        except KeyboardInterrupt:
            self._interrupt()
            raise
        finally:
            self._shutdown()
            self._report_ended()
            self.gate.close()
            (Path(self.plans[0].out) / LOCK_FILE).unlink(missing_ok=True)  # every worker is gone
        return self.error

    def _start(self, plan: WorkerPlan) -> None:
        proc = self.ctx.Process(
            target=worker_main,
            args=(plan, self.stop, self.messages),
            name=f"nasblocks-worker-{plan.index}",
        )
        proc.start()
        self.procs[plan.index] = proc

    def _poll(self) -> None:
        self._report_ended()
        while not self.messages.empty():
            self._fail(self.messages.get())
        for index, proc in list(self.procs.items()):
            if proc.exitcode is None:
                continue
            del self.procs[index]
            if proc.exitcode != 0:
                while not self.messages.empty():  # its last words, if it had any
                    self._fail(self.messages.get())
                self._bury(proc, died=proc.exitcode not in (3, 130))
                if not self.stop.is_set() and self._more_to_do():
                    self._start(self.plans[index])

    def _report_ended(self) -> None:
        """Progress lines for the trials that ended since the last poll, in order."""
        trials = self.study.get_trials(deepcopy=False)
        ended = [t for t in trials if t.state in ENDED and t.number not in self.reported]
        ended.sort(key=lambda t: (t.datetime_complete or datetime.datetime.min, t.number))
        for t in ended:
            self.reported.add(t.number)
            self.show(self.study, t)
            reason = self.stopper.count(t)
            if reason is not None:
                self._fail(reason)
        self.show.running([t for t in trials if t.state == TrialState.RUNNING])
        if sum(budgets.counts(t) for t in trials) >= self.target:
            self.stop.set()

    def _more_to_do(self) -> bool:
        in_time = self.deadline is None or time.time() < self.deadline
        return in_time and budgets.count_finished(self.study) < self.target

    def _bury(self, proc: Any, died: bool) -> None:
        """Fail and re-queue the trial a worker that exited abnormally was running; stop the
        search when workers keep dying (``died``: not an error it reported, nor Ctrl-C)."""
        how = _exit_text(proc.exitcode)
        reason = f"its worker process (pid {proc.pid}) {how}"
        owner = storage.worker_id(proc.pid)
        with self.gate.locked():  # no live worker is between creating a trial and naming it
            for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                who = t.user_attrs.get("worker")
                if who == owner or (who is None and self.exclusive):
                    storage.fail_and_requeue(self.study, t, reason)
        if not died:
            return
        self.deaths += 1
        if self.deaths >= budgets.MAX_FAILS_IN_A_ROW:
            self._fail(f"worker processes died {self.deaths} times; the last one {how}")

    def _fail(self, reason: str) -> None:
        self.error = self.error or reason
        self.stop.set()

    def _interrupt(self) -> None:
        """Ctrl-C: the workers got it too on a terminal; otherwise pass it on to them."""
        self.stop.set()
        self._join(3.0)
        for proc in self.procs.values():
            if proc.exitcode is None:
                os.kill(proc.pid, signal.SIGINT)
        self._join(15.0)

    def _shutdown(self) -> None:
        self.stop.set()
        self._join(30.0)
        for proc in self.procs.values():
            if proc.exitcode is None:
                proc.kill()
                proc.join()
            if proc.exitcode != 0:
                self._bury(proc, died=False)
        self.procs.clear()

    def _join(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        for proc in self.procs.values():
            proc.join(max(0.0, end - time.monotonic()))


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"exited with code {code}"
