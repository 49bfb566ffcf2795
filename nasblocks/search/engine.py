"""The embedded Optuna backend: a study on SQLite (or any Optuna storage) that resumes.

One call of :func:`search` opens (or creates) the study, fails and re-queues the trials a
dead process left RUNNING, then runs trials until the budget's number of *finished* trials
(COMPLETE + PRUNED, infeasible ones included: they are PRUNED) is reached, or the timeout.
Each trial is :class:`Objective`, Optuna's adapter of :func:`.pipeline.evaluate`.

How each trial ends and is recorded, on every backend: :mod:`nasblocks.search.pipeline`.
A process that died leaves its trial RUNNING; it is failed and re-queued once as a new trial
(``retry_of``).

How the trials of a dead process are found and retried, and how storages are opened:
:mod:`nasblocks.search.backends.storage`. Several processes on one study:
:mod:`nasblocks.search.backends.workers`. One study per output folder, resumed by default,
``fresh`` to move it aside, and what a full disk or a read-only folder prints:
:mod:`nasblocks.search.outputs.folder`. Everything a run is given is checked before anything
is written to disk.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nasblocks.errors import SearchError
from nasblocks.files import make_folder
from nasblocks.search.backends.storage import (  # noqa: F401 (storage_url, open_storage: public here too)
    check_url,
    fail_stale,
    heartbeat_for,
    open_storage,
    public_url,
    recover,
    storage_url,
    worker_id,
)
from nasblocks.search.backends.workers import run_shared, run_workers
from nasblocks.search.budget import (  # noqa: F401 (public here too)
    FINISHED,
    MAX_FAILS_IN_A_ROW,
    MAX_INFEASIBLE_IN_A_ROW,
    Stopper,
    count_finished,
    counts,
)
from nasblocks.search.candidate import (
    DataInfo,
    complete_spec,
)
from nasblocks.search.evaluators.trained import run_trial
from nasblocks.search.logs import quiet_optuna
from nasblocks.search.objective import (  # noqa: F401 (public here too)
    Objective,
    find_duplicate,
    max_epochs,
    open_study,
    study_name,
)
from nasblocks.search.outputs import folder as run_folder
from nasblocks.search.outputs import results
from nasblocks.search.outputs.progress import Progress
from nasblocks.search.pipeline import Job, TrialFailed
from nasblocks.search.run import (  # noqa: F401 (public here too)
    SearchOutcome,
    check_space,
    check_table,
    data_info,
    default_out,
    finish,
    prepare_run,
    table_info,
)
from nasblocks.search.samplers.warmup import BATCH, pick
from nasblocks.space import SearchSpace, load_space
from nasblocks.train.handle import DataHandle


def search(
    space: SearchSpace | str | Path,
    *,
    overrides: dict[str, Any] | None = None,
    out: str | Path | None = None,
    storage: str | None = None,
    progress: bool | None = None,
    exclusive: bool = True,
    workers: int = 1,
    heartbeat: int | None = None,
    fresh: bool = False,
    allow_plugins: bool = False,
    trainer: Callable[..., Any] | None = None,
) -> SearchOutcome:
    """Run (or resume) the search a space file describes; write the results under ``out``.

    ``out`` defaults to ``experiments/runs/<space name>``; ``storage`` to
    ``sqlite:///OUT/study.db``. ``progress``: a live line on a terminal, log lines otherwise
    (None decides from the stream), False for silence. ``workers``: trials run in this many
    processes at once (:mod:`nasblocks.search.backends.workers`; they start by importing the main
    module, so a script calling this needs ``if __name__ == "__main__":``); 1 runs them in
    this process.
    ``heartbeat``: seconds between a running trial's heartbeats (default: 10 on a database
    server, where other machines may run workers of the same study; off on SQLite).
    ``exclusive``: no other process works on the study, so trials left RUNNING are certainly
    dead and are retried at once; with heartbeats on, only trials whose heartbeat stopped are.
    An ``out`` that holds the study of another space is refused; ``fresh`` moves what it
    holds to ``OUT/previous-<time>/`` first and starts a new study (nothing is deleted).
    ``allow_plugins``: let ``plugins:`` in the space import the code they name, as the CLI's
    ``--allow-plugins`` does (off: a space is data).
    ``trainer``: the function that trains one concrete spec, with the signature and result of
    :func:`~nasblocks.search.evaluators.trained.run_trial` (the default); a module-level
    function, so that worker processes can import it.
    """
    if allow_plugins:
        from nasblocks import plugins

        previous = plugins.spec_plugins_allowed()
        plugins.allow_spec_plugins()
        try:
            return search(
                space,
                overrides=overrides,
                out=out,
                storage=storage,
                progress=progress,
                exclusive=exclusive,
                workers=workers,
                heartbeat=heartbeat,
                fresh=fresh,
                trainer=trainer,
            )
        finally:
            plugins.allow_spec_plugins(previous)
    if workers < 1:
        raise SearchError(f"the number of workers must be at least 1, got {workers}")
    if not isinstance(space, SearchSpace):
        space = load_space(space, overrides)
    fixed: dict[str, Any] = {}
    if space.settings.supernet is not None:  # training settings are not architecture
        from nasblocks.supernet.training import fixed_training, train_config

        space, fixed = fixed_training(space)
        train_config(space)  # a bad search.supernet.train value: one located line, now
    if space.settings.evaluate is not None and workers > 1:
        raise SearchError(
            "a table search runs in one process (a lookup takes microseconds); drop --workers"
        )
    settings = space.settings
    out = Path(out) if out is not None else default_out(space)
    url = storage_url(out, storage or settings.storage, table=settings.evaluate is not None)
    beat = heartbeat_for(url, heartbeat)
    data = DataHandle.from_settings(settings.data, settings.seed)
    info = prepare_run(space, out, url, data, fresh)
    moved = run_folder.move_aside(out, url) if fresh else None
    if run_folder.study_file(url) is not None:
        make_folder(out)  # (a server's study is opened first: unreachable, nothing is made)
    exclusive = exclusive and beat is None
    with run_folder.environment_errors(out, url):
        study, url = open_study(space, out, url, heartbeat=beat)
        make_folder(out)
        if exclusive:
            recover(study)
        else:
            fail_stale(study)
        results.write_run_file(out, space, url, study.study_name, data)
        target = settings.budget.trials
        show = Progress(target, space.name, settings, enabled=progress, workers=workers)
        start = time.perf_counter()
        show.start(study, data, out, moved)
        with _threads(settings.threads):
            try:
                first = warm_up(space, study, data, info, show)
                job = Job(space, data, info, trainer or run_trial)
                if settings.supernet is not None:
                    job = _one_shot(job, study, out, fixed, show)
                if settings.evaluate is not None:
                    error = _run_table(study, Objective(job, out, show), show, first)
                elif workers == 1 and exclusive:
                    error = _run_here(study, Objective(job, out, show), out, show)
                elif workers == 1:  # other processes may be on the study: share the budget
                    error = run_shared(study, Objective(job, out, show), show, beat)
                else:
                    error = run_workers(study, job, out, url, workers, beat, show, exclusive)
            except BaseException:
                show.close()
                _write_what_we_have(study, out)
                raise
            show.close()
            outcome = finish(study, out, data, url, start, show, summary=error is None)
    if error is not None:  # the outputs of the trials so far are written: the error is news
        raise SearchError(error)
    return outcome


def _one_shot(
    job: Job, study: optuna.Study, out: Path, fixed: dict[str, Any], show: Progress
) -> Job:
    """Train (or resume, or reuse) the space's supernet; trials are then scored by it. Under
    GDAS a new study's first trial is the architecture its logits chose."""
    import dataclasses
    import json

    from nasblocks.files import write_atomic
    from nasblocks.supernet import evaluator
    from nasblocks.supernet.training import train_supernet
    from nasblocks.train import DivergedError, TrainOutOfMemoryError

    settings = job.space.settings.supernet
    assert settings is not None
    values = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fixed.items()
    )
    show.note(
        f"supernet: {settings.strategy}, {settings.epochs} epochs"
        + (
            f"; training settings fixed at {values} (search.supernet.train sets others)"
            if values
            else ""
        )
    )
    try:
        net, record = train_supernet(job.space, job.data, job.info, out, log=show.note)
    except DivergedError as e:
        kept = (
            f"the last good checkpoint (epoch {e.epoch - 1}) is kept in {out / 'supernet.pt'}"
            if e.epoch > 1
            else "no epoch finished; lower search.supernet.train.lr"
        )
        raise SearchError(f"supernet {e}; {kept}") from None
    except TrainOutOfMemoryError as e:
        raise SearchError(f"supernet {e}") from None
    record["fixed_training"] = fixed
    write_atomic(out / "supernet.json", json.dumps(record, indent=2, default=str) + "\n")
    if "architecture" in record and not study.get_trials(deepcopy=False):
        study.enqueue_trial(record["architecture"], user_attrs={"gdas": "argmax of alpha"})
    path = evaluator.checkpoint_path(out)
    evaluator.register(path, evaluator.Scorer(net, job.space, job.data, job.info))
    show.trials_began()
    return dataclasses.replace(job, supernet=str(path))


def _write_what_we_have(study: optuna.Study, out: Path) -> None:
    """After an error or Ctrl-C: the result files of the trials so far, when they can be
    written (a full disk may refuse: the error that stopped the search is the one to show)."""
    with contextlib.suppress(Exception):
        results.write_outputs(study, out)


def _run_here(study: optuna.Study, objective: Objective, out: Path, show: Progress) -> str | None:
    """Trials in this process until the budget is met; returns why it stopped early, if so."""
    budget = objective.settings.budget
    stopper = Stopper(budget.trials, count_finished(study))
    if stopper.finished < budget.trials:
        with quiet_optuna():
            study.optimize(
                objective,
                timeout=budget.timeout,
                callbacks=[stopper, _weights_pruner(out), show],
                catch=(TrialFailed,),
            )
    return stopper.error


def _weights_pruner(out: Path) -> Callable[[optuna.Study, FrozenTrial], None]:
    """After a trial that kept weights: delete the weights no longer best (outputs/results.py)."""

    def prune(study: optuna.Study, trial: FrozenTrial) -> None:
        if "weights" in trial.user_attrs:
            results.prune_weights(study, out)

    return prune


TABLE_FLUSH = 50  # table trials written to the study's storage in batches of this many


def warm_up(
    space: SearchSpace, study: optuna.Study, data: DataHandle, info: DataInfo, show: Progress
) -> list[dict[str, Any]]:
    """``search.warmup`` on a new study: the proxy's picks, queued as the first trials
    (:mod:`nasblocks.search.samplers.warmup`). A table search queues them on its in-memory copy, so
    they are returned; otherwise they are queued here and [] is returned."""
    if space.settings.warmup is None or study.get_trials(deepcopy=False):
        return []

    def complete(spec: dict[str, Any]) -> dict[str, Any]:
        return complete_spec(spec, info, space.settings)

    def batch(shape: tuple[int, int, int]):
        import torch

        from nasblocks.train.normalize import BatchNormalize

        train = data.prepared(shape).train
        images, labels = getattr(train, "images", None), getattr(train, "labels", None)
        if images is None or labels is None:
            raise SearchError("search.warmup: a data proxy needs an in-memory dataset")
        normalize = BatchNormalize.of(train, torch.device("cpu"), channels_last=False)
        return normalize(images[:BATCH]), labels[:BATCH]  # as the trainer feeds them

    picks = pick(space, complete, batch, log=show.note)
    study.set_user_attr("warmup", space.settings.warmup.proxy)
    if space.settings.evaluate is not None:
        return picks
    for params in picks:
        study.enqueue_trial(params, user_attrs={"warmup": space.settings.warmup.proxy})
    return []


def _run_table(
    study: optuna.Study,
    objective: Objective,
    show: Progress,
    first: list[dict[str, Any]] | None = None,
) -> str | None:
    """Table trials: looked up in microseconds, while one storage round trip takes about a
    millisecond and a trial makes a dozen. So they run on an in-memory copy of the study
    (Optuna's InMemoryStorage, same sampler) and are added to the real storage with
    ``Study.add_trials`` in batches: every :data:`TABLE_FLUSH` trials and when the search
    ends, fails or is interrupted. A killed table search loses at most one batch, which the
    next run evaluates again (a lookup is deterministic)."""
    budget = objective.settings.budget
    done = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.FAIL))
    stopper = Stopper(budget.trials, sum(counts(t) for t in done))
    with quiet_optuna():
        memory = optuna.create_study(
            directions=list(study.directions),
            sampler=study.sampler,
            pruner=optuna.pruners.NopPruner(),
        )
        memory.add_trials(done)
        for params in first or ():  # the warm-up's picks
            memory.enqueue_trial(params, user_attrs={"warmup": study.user_attrs.get("warmup")})
    pending: list[FrozenTrial] = []

    def flush() -> None:
        if pending:
            study.add_trials(pending)
            pending.clear()

    def keep(_: optuna.Study, trial: FrozenTrial) -> None:
        pending.append(trial)
        if len(pending) >= TABLE_FLUSH:
            flush()

    try:
        if stopper.finished < budget.trials:
            with quiet_optuna():
                memory.optimize(
                    objective,
                    timeout=budget.timeout,
                    callbacks=[keep, stopper, show],
                    catch=(TrialFailed,),
                )
    finally:
        with quiet_optuna():
            flush()
    return stopper.error


def _threads(threads: int | None) -> contextlib.AbstractContextManager[None]:
    """The search's torch threads (torch is imported only when they are set: a table
    search never needs it)."""
    if threads is None:
        return contextlib.nullcontext()
    from nasblocks.train.hardware import torch_threads

    return torch_threads(threads)
