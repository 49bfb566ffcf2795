"""The Ray Tune backend: the same space, trial function and OUT layout, run on a Ray cluster.

Ray Tune's ``Tuner`` runs :func:`~nasblocks.search.evaluators.trained.run_trial` in Ray
workers, one trial per worker with ``{"cpu": C, "gpu": G}`` (``G = 0.25`` puts four trials on
one GPU).
``OptunaSearch`` proposes the trials from the space's own sampler, through a define-by-run
function that samples the space with the same code and parameter names as the Optuna backend
(conditional nodes included); the ASHA scheduler stops trials on the validation accuracy each
epoch reports (single objective; ``pruner: none`` or several objectives run every trial to the
end, as the Optuna backend does).

The Ray experiments live under ``OUT/ray/round-<k>``. Running the command again restores the
last round with ``Tuner.restore`` when it has unfinished or errored trials (those are run
again), then starts a new round, its sampler told every earlier trial, while fewer than the
asked number of trials have finished. After that the Ray results are converted into the Optuna
study ``OUT/study.db`` (same parameters, distributions, user attributes and intermediate values
as the Optuna backend stores), so ``trials.csv``, ``best.yaml``, ``best.pt`` and ``report.md``
are written by the same code.

How a worker reports (:mod:`~nasblocks.search.backends.ray_trial`), so that every trial gives
the searcher and the scheduler a value, and how it is recorded
(:mod:`~nasblocks.search.backends.ray_results`):

==========================  ===================================  ===========================
trial                       what it reports                      study state
==========================  ===================================  ===========================
trained                     ``val_acc`` each epoch; the last one  COMPLETE (weights kept for
                            with the weights as a Ray checkpoint  the best / the Pareto front)
stopped by ASHA             the epochs it ran                     PRUNED, ``pruned_at``
infeasible (never trained)  once: worst values, ``infeasible``    PRUNED, constraints > 0
diverged / raised           once: worst values, the reason        PRUNED ``diverged`` / FAIL
worker died                 (Ray marks the trial ERROR)           FAIL; re-run on restore
==========================  ===================================  ===========================
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import shutil
import socket
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna

from nasblocks.errors import SearchError
from nasblocks.files import make_folder
from nasblocks.search.backends.ray_results import (
    RAY_DIR,
    ROUND_PREFIX,
    TrialRecord,
    keep_best_weights,
    load_round,
    originals,
    prepare_study,
    write_study,
)
from nasblocks.search.backends.ray_trial import DefineByRun, Seen, TrialJob, trainable
from nasblocks.search.backends.storage import open_storage, public_url, storage_url
from nasblocks.search.budget import MAX_INFEASIBLE_IN_A_ROW
from nasblocks.search.candidate import DataInfo
from nasblocks.search.evaluators.trained import run_trial
from nasblocks.search.logs import quiet_optuna
from nasblocks.search.objective import max_epochs, study_name
from nasblocks.search.outputs import folder as run_folder
from nasblocks.search.outputs import results
from nasblocks.search.outputs.progress import Progress
from nasblocks.search.pipeline import Job
from nasblocks.search.run import SearchOutcome, default_out, finish, prepare_run
from nasblocks.search.samplers import make_sampler
from nasblocks.space import SearchSpace, load_space
from nasblocks.train.handle import DataHandle

MAX_FAILURES = 1  # Ray re-runs a trial whose worker died once within a round


@dataclasses.dataclass(frozen=True)
class RayOptions:
    """Where and how wide a Ray search runs (the ``--address`` ... ``--max-concurrent`` flags)."""

    address: str | None = None  # None: a local Ray; "auto" or "ray://HOST:PORT": a cluster
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None  # None: as many as the resources allow
    num_cpus: int | None = None  # CPUs of a local Ray (default: all of this machine's)

    def check(self) -> None:
        c, g = self.cpus_per_trial, self.gpus_per_trial
        if not (math.isfinite(c) and c > 0):  # (NaN is neither > 0 nor <= 0)
            raise SearchError(f"--cpus-per-trial must be > 0, got {c}")
        if not (math.isfinite(g) and g >= 0) or (g > 1 and g != int(g)):
            raise SearchError(
                f"--gpus-per-trial is a fraction of one GPU (0.25: four trials per GPU) "
                f"or a whole number of GPUs, got {g}"
            )
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise SearchError(f"--max-concurrent must be >= 1, got {self.max_concurrent}")
        if self.num_cpus is not None and self.address is not None:
            raise SearchError("num_cpus sizes a local Ray; a cluster at --address has its own")

    @property
    def resources(self) -> dict[str, float]:
        return {"cpu": self.cpus_per_trial, "gpu": self.gpus_per_trial}


def search_ray(
    space: SearchSpace | str | Path,
    *,
    overrides: dict[str, Any] | None = None,
    out: str | Path | None = None,
    storage: str | None = None,
    address: str | None = None,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    max_concurrent: int | None = None,
    num_cpus: int | None = None,
    progress: bool | None = None,
    callbacks: Sequence[Any] = (),
    fresh: bool = False,
    trainer: Callable[..., Any] | None = None,
    ray_verbose: int = 0,
) -> SearchOutcome:
    """Run (or resume) the search a space file describes on Ray Tune; results under ``out``.

    The budget (``search.budget.trials``), seed, sampler, pruner and data come from the space's
    ``search:`` section (``overrides`` as in :func:`~nasblocks.search.search`). ``storage``:
    where the converted Optuna study goes (default ``sqlite:///OUT/study.db``). ``address``
    ... ``num_cpus``: see :class:`RayOptions`. ``callbacks``: extra ``ray.tune.Callback``
    objects. Ray is joined (or started) only when trials must run, unless this process
    already joined it. ``fresh``, ``trainer``: as in :func:`~nasblocks.search.search`.
    """
    start = time.perf_counter()
    opts = RayOptions(address, cpus_per_trial, gpus_per_trial, max_concurrent, num_cpus)
    opts.check()
    if not isinstance(space, SearchSpace):
        space = load_space(space, overrides)
    settings = space.settings
    if settings.evaluate is not None:
        raise SearchError(
            "a table search runs on the embedded backend (a lookup takes microseconds: there "
            "is nothing to distribute); drop --backend ray"
        )
    if settings.supernet is not None:
        raise SearchError(
            "a one-shot search runs on the embedded backend (one supernet scores every trial; "
            "--workers N shares it across processes); drop --backend ray"
        )
    out = Path(out) if out is not None else default_out(space)
    data = _absolute(DataHandle.from_settings(settings.data, settings.seed))
    url = storage_url(out, storage or settings.storage)
    info = prepare_run(space, out, url, data, fresh)
    _check_device(space, opts)
    if fresh:
        run_folder.move_aside(out, url)
    make_folder(out)
    name = study_name(space)
    with run_folder.environment_errors(out, url):
        study_storage = open_storage(url)
        prepare_study(study_storage, name, space, public_url(url))
        results.write_run_file(out, space, url, name, data)
        _require_tune()
        runner = _Rounds(
            space, data, info, out, opts, progress, list(callbacks), trainer or run_trial
        )
        runner.ray_verbose = ray_verbose
        try:
            records = runner.run()
        finally:
            runner.disconnect()
        study = write_study(study_storage, name, space, info, records)
        keep_best_weights(study, out, records)
        show = Progress(settings.budget.trials, space.name, settings, enabled=progress)
        return finish(study, out, data, public_url(url), start, show)


def _require_tune() -> None:
    try:
        import ray.tune  # noqa: F401  (and its extra dependencies: pandas, pyarrow, fsspec)
    except ImportError as e:
        raise SearchError(
            f"the Ray backend needs Ray Tune: pip install 'nasblocks[ray]' ({e})"
        ) from e


def connect(opts: RayOptions) -> bool:
    """Start a local Ray or join the cluster at ``opts.address``; True if this call started it
    (then the caller shuts it down). A Ray this process already joined is used as it is."""
    _require_tune()
    import ray

    if ray.is_initialized():
        return False
    if opts.address is None:
        kwargs: dict[str, Any] = {
            "num_cpus": opts.num_cpus or os.cpu_count() or 1,
            "include_dashboard": False,
            "log_to_driver": False,
        }
    else:
        _check_reachable(opts.address)
        kwargs = {"address": opts.address}
    try:
        with _token_notice_dropped():
            ray.init(logging_level=logging.WARNING, **kwargs)
    except Exception as e:  # ConnectionError, RuntimeError, ValueError (bad address), ...
        where = f"at {opts.address}" if opts.address else "locally"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SearchError(f"cannot start or reach Ray {where}: {first}") from None
    return True


TOKEN_LOGGER = "ray._private.authentication.authentication_token_setup"


@contextlib.contextmanager
def _token_notice_dropped():
    """Without the notice Ray logs when it turns token authentication on for a new local
    cluster ("Token authentication is enabled ... Set RAY_AUTH_MODE=disabled to opt out"):
    that is the secure default and nasblocks keeps it; the warning Ray gives when
    authentication is *off* is shown as it is."""

    def keep(record: logging.LogRecord) -> bool:
        return "Token authentication is enabled" not in record.getMessage()

    log = logging.getLogger(TOKEN_LOGGER)
    log.addFilter(keep)
    try:
        yield
    finally:
        log.removeFilter(keep)


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail in seconds where nothing listens: ``ray.init`` would retry for minutes."""
    if address == "auto":
        return  # Ray finds the local cluster's address itself, or says there is none
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise SearchError(f"--address is auto, HOST:PORT or ray://HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise SearchError(f"cannot reach Ray at {address}: {e.strerror or e}") from None


def _shutdown() -> None:
    import ray

    ray.shutdown()


def _check_resources(opts: RayOptions) -> None:
    """Refuse trials the cluster can never place (Ray would wait for them forever)."""
    import ray

    have = ray.cluster_resources()
    cpus, gpus = have.get("CPU", 0.0), have.get("GPU", 0.0)
    if opts.cpus_per_trial > cpus:
        raise SearchError(f"--cpus-per-trial {opts.cpus_per_trial} > the {cpus:g} CPUs Ray has")
    if opts.gpus_per_trial > gpus:
        raise SearchError(f"--gpus-per-trial {opts.gpus_per_trial} > the {gpus:g} GPUs Ray has")


def _check_device(space: SearchSpace, opts: RayOptions) -> None:
    if space.train.get("device") == "cuda" and opts.gpus_per_trial == 0:
        raise SearchError("train.device is cuda, but trials get no GPU: give --gpus-per-trial")


def _absolute(data: DataHandle) -> DataHandle:
    """Ray runs trials in their own folders: make the data's paths independent of the cwd."""
    root = str(Path(data.root).resolve()) if data.root else data.root
    dataset = data.dataset
    if dataset.startswith("imagefolder:"):
        dataset = "imagefolder:" + str(Path(dataset.split(":", 1)[1]).resolve())
    return dataclasses.replace(data, root=root, dataset=dataset)


# -- rounds of Ray experiments ---------------------------------------------------------------


class _Rounds:
    """Restores the last round when it was cut short, adds rounds until the budget is met."""

    def __init__(
        self,
        space: SearchSpace,
        data: DataHandle,
        info: DataInfo,
        out: Path,
        opts: RayOptions,
        progress: bool | None,
        callbacks: list[Any],
        trainer: Callable[..., Any] = run_trial,
    ) -> None:
        self.space, self.data, self.info, self.opts = space, data, info, opts
        self.trainer = trainer
        self.settings = space.settings
        self.root = (out / RAY_DIR).resolve()
        self.progress = progress is not False
        self.ray_verbose = 0  # Tune's own tables (0: none; its output goes to OUT/ray/tune.log)
        self.callbacks = callbacks
        self.threads = self.settings.threads or max(1, int(opts.cpus_per_trial))
        self.connected = self.started = False

    def connect(self) -> None:
        """Join (or start) Ray before the first fit only: a search whose budget is met, run
        again, just rewrites its outputs."""
        if not self.connected:
            self.started = connect(self.opts)
            self.connected = True
            _check_resources(self.opts)

    def disconnect(self) -> None:
        if self.started:
            _shutdown()
        self.connected = self.started = False

    def run(self) -> list[TrialRecord]:
        """Every trial of every round, after running what the budget still asks for."""
        import ray.tune

        target = self.settings.budget.trials
        deadline = None
        if self.settings.budget.timeout is not None:
            deadline = time.monotonic() + self.settings.budget.timeout
        rounds = self._existing()
        records = [r for i, path in enumerate(rounds) for r in load_round(path, i)]
        last = len(rounds) - 1
        if any(r.round == last and r.status != "TERMINATED" for r in records):
            self.connect()
            with self._seen(last, [r for r in records if r.round < last]) as seen:
                tuner = ray.tune.Tuner.restore(
                    str(rounds[-1]),
                    self._trainable(last, seen),
                    resume_unfinished=True,
                    restart_errored=True,
                )
                self._fit(tuner)
            records = [r for r in records if r.round < last] + load_round(rounds[-1], last)
            if _interrupted(records):
                return records
        streak = 0  # infeasible samples in a row, over the rounds of this run
        while (done := sum(r.finished for r in records)) < target:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            path = self._new_round(len(rounds), target - done, records, left)
            new = load_round(path, len(rounds))
            rounds.append(path)
            records += new
            if _interrupted(new):  # Ctrl-C: Tune saved the round; the next run restores it
                break
            infeasible = [r for r in new if r.last.get("outcome") == "infeasible"]
            if not any(r.finished for r in new) and len(infeasible) < len(new):
                raise SearchError(f"no trial of {path} finished; the last one: {_last_error(new)}")
            streak = streak + len(infeasible) if len(infeasible) == len(new) else 0
            if streak >= MAX_INFEASIBLE_IN_A_ROW:
                raise SearchError(
                    f"{streak} samples in a row were infeasible (the last: "
                    f"{infeasible[-1].last.get('reason', 'infeasible')}); the space yields "
                    "nothing that can be evaluated: loosen the constraints or fix the space"
                )
        return records

    def _existing(self) -> list[Path]:
        """Round folders in order; a last one Ray cannot restore (killed before it saved any
        state) holds nothing to keep and is removed."""
        from ray.tune import Tuner

        rounds = sorted(
            (p for p in self.root.glob(ROUND_PREFIX + "*") if p.is_dir()),
            key=lambda p: int(p.name[len(ROUND_PREFIX) :]),
        )
        if rounds and not Tuner.can_restore(str(rounds[-1])):
            shutil.rmtree(rounds.pop())
        return rounds

    def _new_round(
        self,
        index: int,
        samples: int,
        records: list[TrialRecord],
        time_budget: float | None,
    ) -> Path:
        from ray.tune.search.optuna import OptunaSearch

        objectives = self.settings.directions()
        names = [m for m, _ in objectives]
        modes = ["max" if d == "maximize" else "min" for _, d in objectives]
        # the searcher's own study, told every earlier trial (a copy: Ray pickles it)
        storage = optuna.storages.InMemoryStorage()
        told = write_study(storage, "ray", self.space, self.info, records)
        with quiet_optuna():
            searcher = OptunaSearch(
                DefineByRun(self.space),
                metric=names if len(names) > 1 else names[0],
                mode=modes if len(modes) > 1 else modes[0],
                sampler=make_sampler(self.space, self.settings.seed + len(told.trials)),
                study_name=told.study_name,
                storage=storage,
            )
        name = f"{ROUND_PREFIX}{index + 1}"
        self.connect()
        with self._seen(index, records) as seen:
            tuner = self._tuner(
                index, samples, time_budget, searcher, seen, TrialNames(len(records))
            )
            self._fit(tuner)
        return self.root / name

    def _tuner(
        self,
        index: int,
        samples: int,
        time_budget: float | None,
        searcher: Any,
        seen: str,
        names: TrialNames,
    ) -> Any:
        from ray import tune

        name = f"{ROUND_PREFIX}{index + 1}"
        return tune.Tuner(
            self._trainable(index, seen),
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=make_scheduler(self.space),
                num_samples=samples,
                max_concurrent_trials=self.opts.max_concurrent,
                time_budget_s=time_budget,
                reuse_actors=True,
                trial_name_creator=names,
                trial_dirname_creator=names.folder,
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=str(self.root),
                verbose=self.ray_verbose,
                callbacks=[*self.callbacks, *self._progress(names)] or None,
                failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
                # one checkpoint per trained trial; keeping one makes Tune save the experiment
                # state as each trained trial ends, so a crash loses no finished trial
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            ),
        )

    def _progress(self, names: TrialNames) -> list[Any]:
        """nasblocks' own line per finished trial (Tune's tables are off by default)."""
        if not self.progress:
            return []
        from ray import tune

        total = self.settings.budget.trials

        class Lines(tune.Callback):
            done = 0

            def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info):
                Lines.done += 1
                last = trial.last_result or {}
                acc = last.get("val_acc")
                shown = f"val_acc {acc:.4f}" if isinstance(acc, float) else last.get("status", "")
                # sys.stderr at call time (Tune pickles its callbacks: no stream held)
                print(f"[ray {Lines.done}/{total}] {names(trial)}: {shown}", file=sys.stderr)

        return [Lines()]

    @contextlib.contextmanager
    def _seen(self, index: int, records: list[TrialRecord]):
        """The round's :class:`~nasblocks.search.backends.ray_trial.Seen` actor, told the trained
        trials of ``records``; yields its name, and ends it with the round."""
        import ray

        name = f"nasblocks-seen-{os.getpid()}-{id(self)}-{index}"
        actor: Any = (
            ray.remote(Seen)
            .options(name=name, num_cpus=0)
            .remote(originals(records, self.space, self.info))
        )
        try:
            yield name
        finally:
            ray.kill(actor)

    def _fit(self, tuner: Any) -> None:
        """``tuner.fit()``, silent when asked (Tune prints its header whatever the verbosity).

        Tune warns when it saves the experiment state often; it does so because each trained
        trial forces a save (CheckpointConfig(num_to_keep=1)), on purpose, so that warning is
        off while the search runs."""
        key = "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S"
        before = os.environ.get(key)
        os.environ[key] = "0"
        try:
            with quiet_optuna(), contextlib.ExitStack() as stack, warnings.catch_warnings():
                # a trial re-run after its worker died reports its epochs again to the searcher
                warnings.filterwarnings("ignore", "The reported value is ignored", UserWarning)
                if self.ray_verbose == 0:  # Tune prints its header whatever the verbosity
                    self.root.mkdir(parents=True, exist_ok=True)
                    log = stack.enter_context(open(self.root / "tune.log", "a"))
                    stack.enter_context(contextlib.redirect_stdout(log))  # tables, header
                tuner.fit()
        finally:
            if before is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = before

    def _trainable(self, index: int, seen: str):
        from ray import tune

        job = Job(self.space, self.data, self.info, self.trainer)
        shared = TrialJob(job, self.threads, index, seen)
        return tune.with_resources(
            tune.with_parameters(trainable, job=shared), self.opts.resources
        )


def make_scheduler(space: SearchSpace) -> Any:
    """ASHA on the validation accuracy of each epoch, from the space's pruner settings
    (``min_resource`` epochs before the first cut, ``reduction_factor``); FIFO (every trial
    runs to the end) for ``pruner: none``, several objectives or a single epoch."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    settings = space.settings
    epochs = max_epochs(space)
    pruner = settings.pruner
    if settings.multi_objective or pruner.name == "none" or epochs < 2:
        return FIFOScheduler()
    return ASHAScheduler(
        time_attr="epoch",
        metric="val_acc",
        mode="max",
        max_t=epochs,
        grace_period=min(pruner.min_resource, epochs),
        reduction_factor=pruner.reduction_factor,
    )


@dataclasses.dataclass(frozen=True)
class TrialNames:
    """Tune's trial names are nasblocks' trial numbers: ``trial_<n>`` is trial n of
    ``trials.csv`` and the report, the round's first trial being number ``first`` (the trials
    of the earlier rounds come before it). Tune numbers a round's trials from 1 in its
    experiment tag; the folder adds Tune's trial id, unique across restores."""

    first: int

    def number(self, trial: Any) -> int:
        return self.first + int(str(trial.experiment_tag).split("_")[0]) - 1

    def __call__(self, trial: Any) -> str:
        return f"trial_{self.number(trial)}"

    def folder(self, trial: Any) -> str:
        return f"{self(trial)}_{trial.trial_id}"


def _trial_name(trial: Any) -> str:
    """The names of rounds made before :class:`TrialNames` (``trial_<n>_<id>``, n counted
    from 1 in its round): Tune pickles its config with the round, so this must stay for such a
    round to be restored."""
    return f"trial_{trial.experiment_tag.split('_')[0]}_{trial.trial_id}"


def _interrupted(records: list[TrialRecord]) -> bool:
    """Trials neither finished nor errored: the round was stopped (Ctrl-C) before its end."""
    return any(r.status not in ("TERMINATED", "ERROR") for r in records)


def _last_error(records: list[TrialRecord]) -> str:
    for r in reversed(records):
        reason = r.error or r.last.get("reason")
        if reason:
            return str(reason)
    return "no result reported"
