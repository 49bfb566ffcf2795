"""The embedded Optuna backend: a study on SQLite (or any Optuna storage) that resumes.

One call of :func:`search` opens (or creates) the study, fails and re-queues the trials a
dead process left RUNNING, then runs trials until the budget's number of *finished* trials
(COMPLETE + PRUNED, infeasible ones included: they are PRUNED) is reached, or the timeout.
Each trial is :class:`Objective`: sample -> candidate (validated, measured, constraints
checked, deduplicated) -> :func:`~nasblocks.search.trial.run_trial` -> values.

How outcomes are recorded, so that samplers learn from all of them:

========================  =========  ===================================================
outcome                   state      user attrs / system attrs
========================  =========  ===================================================
trained                   COMPLETE   val_acc, n_params, flops, spec, spec_hash, ...
same spec + settings      as found   duplicate_of: the trial whose result is reused
invalid spec / settings,  PRUNED     infeasible: reason; Optuna constraints > 0 (TPE
constraint broken                    ranks such trials below every feasible one; NSGA-II
                                     and evolution never select them as parents)
stopped by the pruner     PRUNED     pruned_at: epoch (intermediate values kept)
diverged (NaN/inf loss)   PRUNED     diverged: reason (a bad configuration, not a crash)
out of memory, exception  FAIL       error: reason, traceback: last lines
process died (RUNNING)    FAIL       error; re-queued once as a new trial (retry_of)
========================  =========  ===================================================

How the trials of a dead process are found and retried, and how storages are opened:
:mod:`nasblocks.search.storage`. Several processes on one study: :mod:`nasblocks.search.workers`.
One study per output folder, resumed by default, ``fresh`` to move it aside, and what a full
disk or a read-only folder prints: :mod:`nasblocks.search.folder`. Everything a run is given
is checked before anything is written to disk.
"""

from __future__ import annotations

import contextlib
import datetime
import time
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nasblocks.errors import SearchError, SpecError
from nasblocks.files import check_folder, make_folder
from nasblocks.search import folder as run_folder
from nasblocks.search import results
from nasblocks.search.candidate import (
    DataInfo,
    Infeasible,
    complete_spec,
    make_candidate,
    train_settings,
)
from nasblocks.search.logs import quiet_optuna
from nasblocks.search.progress import Progress
from nasblocks.search.samplers import OptunaSource, make_pruner, make_sampler
from nasblocks.search.storage import (  # noqa: F401 (storage_url, open_storage: public here too)
    check_url,
    fail_stale,
    heartbeat_for,
    open_storage,
    public_url,
    recover,
    storage_url,
    worker_id,
)
from nasblocks.search.trial import METRICS, DataHandle, run_trial
from nasblocks.space import FirstSource, RandomSource, SearchSpace, load_space
from nasblocks.space.nodes import Choice
from nasblocks.space.space import Sample

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
MAX_FAILS_IN_A_ROW = 5
MAX_INFEASIBLE_IN_A_ROW = 200  # samples in a row that cannot be evaluated: the space is empty


class TrialFailed(SearchError):
    """A trial that raised: recorded as FAIL with its reason; the study goes on."""


@dataclass(frozen=True)
class SearchOutcome:
    """What a finished :func:`search` returns (the files are under ``out``)."""

    out: Path
    study_name: str
    storage: str
    best_trial: int | None
    best_values: tuple[float, ...] | None
    test_acc: float | None
    finished: int
    elapsed_s: float


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
) -> SearchOutcome:
    """Run (or resume) the search a space file describes; write the results under ``out``.

    ``out`` defaults to ``experiments/runs/<space name>``; ``storage`` to
    ``sqlite:///OUT/study.db``. ``progress``: a live line on a terminal, log lines otherwise
    (None decides from the stream), False for silence. ``workers``: trials run in this many
    processes at once (:mod:`nasblocks.search.workers`; they start by importing the main
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
            )
        finally:
            plugins.allow_spec_plugins(previous)
    if workers < 1:
        raise SearchError(f"the number of workers must be at least 1, got {workers}")
    if not isinstance(space, SearchSpace):
        space = load_space(space, overrides)
    if space.settings.evaluate is not None and workers > 1:
        raise SearchError(
            "a table search runs in one process (a lookup takes microseconds); drop --workers"
        )
    settings = space.settings
    out = Path(out) if out is not None else Path("experiments") / "runs" / space.name
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
        with _torch_threads(settings.threads):
            try:
                first = warm_up(space, study, data, info, show)
                if settings.evaluate is not None:
                    objective = Objective(space, data, info, out, show)
                    error = _run_table(study, objective, show, first)
                elif workers == 1 and exclusive:
                    error = _run_here(study, Objective(space, data, info, out, show), out, show)
                elif workers == 1:  # other processes may be on the study: share the budget
                    error = _run_shared(study, Objective(space, data, info, out, show), show)
                else:
                    from nasblocks.search.workers import run_workers

                    error = run_workers(study, space, out, url, workers, beat, show, exclusive)
            except BaseException:
                show.close()
                _write_what_we_have(study, out)
                raise
            show.close()
            results.write_outputs(study, out)
            test_acc = results.evaluate_best(study, out, data)
        from nasblocks.search.report import write_report

        write_report(study, out)
    if error is not None:
        raise SearchError(error)
    best = results.best_trial(study)
    outcome = SearchOutcome(
        out=out,
        study_name=study.study_name,
        storage=url,
        best_trial=best.number if best else None,
        best_values=tuple(best.values) if best else None,
        test_acc=test_acc,
        finished=count_finished(study),
        elapsed_s=time.perf_counter() - start,
    )
    show.summary(outcome, best)
    return outcome


def prepare_run(
    space: SearchSpace, out: Path, url: str, data: DataHandle, fresh: bool = False
) -> DataInfo:
    """Every check before a run writes anything: the output folder (not a file, writable; its
    study, if any, this space's: :mod:`.folder`), the data, the space. Returns the data's
    shape and classes."""
    check_url(url)
    check_folder(out)
    if fresh:
        run_folder.check_fresh(out, url)
    else:
        run_folder.check_existing(out, space, url, study_name(space))
    make_sampler(space, space.settings.seed)  # e.g. evolution refuses several objectives
    from nasblocks.search.warmup import check_warmup

    check_warmup(space)
    if space.settings.evaluate is not None:
        info = table_info(space)
        check_space(space, info)
        check_table(space)
        return info
    info = data_info(space, data)
    check_space(space, info)
    return info


def table_info(space: SearchSpace) -> DataInfo:
    """A table space's input and classes: written in the space (no data is loaded)."""
    from nasblocks.space.nodes import contains_node

    settings = space.settings
    if settings.multi_objective:
        raise space.error(
            "table evaluation searches the table's metric alone; objectives: [val_acc]",
            ("search", "objectives"),
        )
    limits = settings.constraints
    if any(v is not None for v in (limits.max_params, limits.max_flops, limits.max_latency_ms)):
        raise space.error(
            "constraints measure each network, which table evaluation does not build; "
            "remove them (or add the cost as a table column and filter the table)",
            ("search", "constraints"),
        )
    template = space.template
    for key in ("input", "num_classes"):
        if key not in template or contains_node(template[key]):
            raise space.error(
                f"a space evaluated from a table sets `{key}` (no dataset is loaded)", (key,)
            )
    shape = template["input"]
    if not (
        isinstance(shape, list) and len(shape) == 3 and all(isinstance(d, int) for d in shape)
    ):
        raise space.error("input is [C, H, W]", ("input",))
    c, h, w = shape
    return DataInfo((c, h, w), template["num_classes"])


def check_table(space: SearchSpace) -> None:
    """The table exists and has the columns; the key names nodes; the first sample is in it."""
    from nasblocks.search import table as tables

    evaluate = space.settings.evaluate
    assert evaluate is not None
    try:
        tables.check_key(evaluate.key, [n.name for n in space.nodes])
    except SpecError as e:
        raise space.locate(e) from None
    try:
        table = tables.load_table(
            tables.resolve_table_path(evaluate.table, space.file),
            evaluate.metric,
            evaluate.key_column,
        )
        table.score(tables.make_key(evaluate.key, space.sample(FirstSource()).params))
    except tables.TableError as e:
        raise space.error(str(e), ("search", "evaluate")) from None


def data_info(space: SearchSpace, data: DataHandle) -> DataInfo:
    """The data's image shape and classes; a dataset that cannot be loaded is an error at
    ``search.data.<field>`` of the space (did-you-mean for an unknown name)."""
    from nasblocks.train import DatasetError

    try:
        shape, classes = data.info()
    except DatasetError as e:
        raise space.error(str(e), ("search", "data", e.field or "dataset")) from None
    return DataInfo(shape, classes)


def study_name(space: SearchSpace) -> str:
    return space.settings.study_name or space.name


def _write_what_we_have(study: optuna.Study, out: Path) -> None:
    """After an error or Ctrl-C: the result files of the trials so far, when they can be
    written (a full disk may refuse: the error that stopped the search is the one to show)."""
    with contextlib.suppress(Exception):
        results.write_outputs(study, out)


def _run_here(study: optuna.Study, objective: Objective, out: Path, show: Progress) -> str | None:
    """Trials in this process until the budget is met; returns why it stopped early, if so."""
    budget = objective.settings.budget
    stopper = Stopper(budget.trials)
    if count_finished(study) < budget.trials:
        with quiet_optuna():
            study.optimize(
                objective,
                timeout=budget.timeout,
                callbacks=[stopper, lambda s, t: results.prune_weights(s, out), show],
                catch=(TrialFailed,),
            )
    return stopper.error


TABLE_FLUSH = 50  # table trials written to the study's storage in batches of this many


def warm_up(
    space: SearchSpace, study: optuna.Study, data: DataHandle, info: DataInfo, show: Progress
) -> list[dict[str, Any]]:
    """``search.warmup`` on a new study: the proxy's picks, queued as the first trials
    (:mod:`nasblocks.search.warmup`). A table search queues them on its in-memory copy, so
    they are returned; otherwise they are queued here and [] is returned."""
    if space.settings.warmup is None or study.get_trials(deepcopy=False):
        return []
    from nasblocks.search.warmup import pick

    def complete(spec: dict[str, Any]) -> dict[str, Any]:
        return complete_spec(spec, info, space.settings)

    def batch(shape: tuple[int, int, int]):
        import torch

        from nasblocks.search.warmup import BATCH
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
    stopper = Stopper(budget.trials)
    done = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.FAIL))
    with quiet_optuna():
        memory = optuna.create_study(
            directions=[d.name.lower() for d in study.directions],
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
        if count_finished(memory) < budget.trials:
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


def _run_shared(study: optuna.Study, objective: Objective, show: Progress) -> str | None:
    """Like :func:`_run_here`, admitting each trial as worker processes do."""
    from nasblocks.search.workers import LOCK_FILE, trial_loop

    budget = objective.settings.budget
    stopper = Stopper(budget.trials)
    deadline = time.time() + budget.timeout if budget.timeout else None
    trial_loop(
        study,
        objective,
        since=datetime.datetime.now(),
        deadline=deadline,
        stopped=lambda: stopper.error is not None,
        callbacks=[lambda s, t: stopper.count(t), show],
    )
    (objective.out / LOCK_FILE).unlink(missing_ok=True)
    return stopper.error


def count_finished(study: optuna.Study) -> int:
    """Trials that count towards the budget: evaluated ones (complete or pruned); samples
    found infeasible before training are recorded (PRUNED) but do not count."""
    return sum(counts(t) for t in study.get_trials(deepcopy=False, states=FINISHED))


def counts(trial: FrozenTrial) -> bool:
    """Whether a trial counts towards the budget (see :func:`count_finished`)."""
    return trial.state in FINISHED and "infeasible" not in trial.user_attrs


# -- before the first trial -------------------------------------------------------------------


def check_space(space: SearchSpace, info: DataInfo, samples: int = 24) -> None:
    """Refuse a space none of whose samples is valid (a typo, a misplaced field), located.

    A space some samples of which fail is fine: those become infeasible trials.
    """
    from pydantic import ValidationError

    from nasblocks.spec import load_spec
    from nasblocks.spec.layers import pydantic_error
    from nasblocks.train import TrainConfig

    first: SpecError | None = None
    sources = [FirstSource(), *(RandomSource(space.settings.seed + i) for i in range(samples))]
    for source in sources:
        sample = space.sample(source)
        try:
            load_spec(complete_spec(sample.spec, info, space.settings))
        except SpecError as e:
            first = first or e
            continue
        try:
            TrainConfig.model_validate(train_settings(sample.train, space.settings))
        except ValidationError as e:
            first = first or pydantic_error(e, ("search", "train"))
            continue
        return
    assert first is not None
    where = first.path
    note = "" if not space.nodes else f" (in all {len(sources)} samples tried)"
    raise space.locate(SpecError(first.message + note, where))


def open_study(
    space: SearchSpace,
    out: Path,
    storage: str | None = None,
    *,
    heartbeat: int | None = None,
    seed: int | None = None,
) -> tuple[optuna.Study, str]:
    """Create or load the study; the sampler is seeded by seed + trials already run, so a
    resumed study does not replay the draws of its first run (``seed`` replaces the space's:
    each worker process draws differently)."""
    settings = space.settings
    url = storage_url(out, storage or settings.storage, table=settings.evaluate is not None)
    name = study_name(space)
    objectives = settings.directions()
    directions = [d for _, d in objectives]
    with quiet_optuna():
        study = optuna.create_study(
            storage=open_storage(url, heartbeat),
            study_name=name,
            directions=directions,
            load_if_exists=True,
        )
    have = [d.name.lower() for d in study.directions]
    stored = study.user_attrs.get("objectives")
    wanted = [m for m, _ in objectives]
    if have != directions or (stored is not None and stored != wanted):
        raise SearchError(
            f"study {name!r} in {url} optimises {stored or have}, this space asks for "
            f"{wanted} ({', '.join(directions)}); use another --out or study_name"
        )
    run_folder.check_study(study, space, public_url(url))
    if stored is None:
        study.set_user_attr("objectives", wanted)
        study.set_user_attr("space", space.file or space.name)
        study.set_user_attr("dataset", settings.data.dataset)
        if settings.evaluate is not None:
            study.set_user_attr("score", settings.evaluate.metric)
            study.set_user_attr("table", settings.evaluate.table)
    seed = (settings.seed if seed is None else seed) + len(study.get_trials(deepcopy=False))
    seed %= 2**32  # numpy's range, which Optuna's samplers seed
    study.sampler = make_sampler(space, seed)
    study.pruner = make_pruner(settings.pruner, max_epochs(space), settings.multi_objective)
    return study, url


def max_epochs(space: SearchSpace) -> int:
    epochs = space.train.get("epochs", space.settings.budget.epochs)
    if isinstance(epochs, int):
        return epochs
    if isinstance(epochs, Choice):
        return max(o for o in epochs.options if isinstance(o, int))
    return int(getattr(epochs, "high", space.settings.budget.epochs))


# -- one trial ----------------------------------------------------------------------------


class Objective:
    """``study.optimize``'s objective: one trial from sample to values (see module doc)."""

    def __init__(
        self,
        space: SearchSpace,
        data: DataHandle,
        info: DataInfo,
        out: Path,
        progress: Progress | None = None,
        on_start: Callable[[optuna.Trial], None] | None = None,
    ) -> None:
        self.space, self.data, self.info, self.out = space, data, info, out
        self.settings = space.settings
        self.objectives = self.settings.directions()
        self.progress = progress
        self.on_start = on_start
        self.table = None
        if self.settings.evaluate is not None:
            from nasblocks.search import table as tables

            e = self.settings.evaluate
            path = tables.resolve_table_path(e.table, space.file)
            self.table = tables.load_table(path, e.metric, e.key_column)

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        from nasblocks.search.table import TableError

        try:
            return self._run(trial)
        except (optuna.TrialPruned, TrialFailed):
            raise
        except TableError as e:  # the space and the table disagree: no result is honest
            trial.set_user_attr("error", str(e))
            raise SearchError(str(e)) from None
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            raise
        except Exception as e:  # anything else: recorded, and the study goes on
            if run_folder.environment_failure(e, self.out, "") is not None:
                # a full disk, a read-only folder: the search stops; the trial is retried
                # when it resumes (if its end can be recorded at all)
                with contextlib.suppress(Exception):
                    trial.set_user_attr("interrupted", True)
                    trial.set_user_attr("error", f"stopped: {str(e).splitlines()[0][:300]}")
                raise
            raise self._record_error(trial, e) from e

    def _run(self, trial: optuna.Trial) -> float | list[float]:
        trial.set_user_attr("worker", worker_id())
        if self.on_start is not None:
            self.on_start(trial)
        if self.progress is not None:
            self.progress.trial_started(trial.number)
        sample = self.space.sample(OptunaSource(trial))
        if self.table is not None:
            return self._look_up(trial, sample)
        trial.set_user_attr("spec", complete_spec(sample.spec, self.info, self.settings))
        try:
            cand = make_candidate(sample, self.settings, self.info)
        except Infeasible as e:
            trial.set_user_attr("infeasible", e.reason)
            for key, value in e.violations.items():
                trial.set_constraint(key, value)
            raise optuna.TrialPruned(e.reason) from None
        attrs: dict[str, Any] = {
            "spec_hash": cand.spec_hash,
            "trial_key": cand.key,
            "n_params": cand.params,
            "flops": cand.flops,
            "train": cand.config.model_dump(mode="json"),
        }
        if cand.latency_ms is not None:
            attrs["latency_ms"] = cand.latency_ms
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        original = find_duplicate(trial.study, cand.key, trial.number)
        if original is not None:
            return self._reuse(trial, original, cand.costs)
        reporter = self._reporter(trial, cand.config.epochs)
        outcome = run_trial(cand.spec, cand.config, self.data, reporter, keep_weights=True)
        for key, value in outcome.metrics.items():
            trial.set_user_attr(key, value)
        if outcome.pruned:
            trial.set_user_attr("pruned_at", int(outcome.metrics["epochs"]))
            raise optuna.TrialPruned(f"pruned after epoch {int(outcome.metrics['epochs'])}")
        values = [
            outcome.metrics["val_acc"] if m == "val_acc" else cand.costs[m]
            for m, _ in self.objectives
        ]
        weights = outcome.state_dict
        if weights is not None and results.worth_keeping(trial.study, values, trial.number):
            path = results.save_weights(self.out, trial.study.study_name, trial.number, weights)
            trial.set_user_attr("weights", path)
        return values[0] if len(values) == 1 else values

    def _look_up(self, trial: optuna.Trial, sample: Sample) -> float:
        """Table evaluation: the metric of the sample's row (no network is built)."""
        from nasblocks.search.table import make_key

        assert self.table is not None and self.settings.evaluate is not None
        key = make_key(self.settings.evaluate.key, sample.params)
        value = self.table.score(key)
        trial.set_user_attr("spec", complete_spec(sample.spec, self.info, self.settings))
        trial.set_user_attr("table_key", key)
        trial.set_user_attr("metric", self.table.metric)
        trial.set_user_attr("val_acc", value)  # the search's score, whatever it measures
        return value

    def _reporter(
        self, trial: optuna.Trial, epochs: int
    ) -> Callable[[int, dict[str, float]], bool]:
        multi = self.settings.multi_objective
        prunes = not isinstance(trial.study.pruner, optuna.pruners.NopPruner)

        def report(epoch: int, metrics: dict[str, float]) -> bool:
            if self.progress is not None:
                self.progress.epoch(trial.number, epoch, epochs, metrics)
            if multi:  # Optuna prunes single-objective studies only
                return False
            trial.report(metrics["val_acc"], epoch)  # kept for plots and other processes
            # (asking a pruner costs a storage read: not when there is none)
            return prunes and epoch < epochs and trial.should_prune()  # the last is complete

        return report

    def _reuse(
        self, trial: optuna.Trial, original: FrozenTrial, costs: dict[str, float]
    ) -> float | list[float]:
        number = original.user_attrs.get("duplicate_of", original.number)
        trial.set_user_attr("duplicate_of", number)
        for key in (*METRICS, "weights", "pruned_at", "diverged"):
            if key in original.user_attrs:
                trial.set_user_attr(key, original.user_attrs[key])
        trial.set_user_attr("duration_s", 0.0)
        if original.state == TrialState.PRUNED:
            raise optuna.TrialPruned(
                f"same architecture and settings as trial {number}, which was pruned"
            )
        values = [
            original.user_attrs["val_acc"] if m == "val_acc" else costs[m]
            for m, _ in self.objectives
        ]
        return values[0] if len(values) == 1 else values

    def _record_error(self, trial: optuna.Trial, error: Exception) -> Exception:
        """Record why ``error`` ended the trial; the exception to raise in its place (a
        prune for a diverged run, :class:`TrialFailed` for the rest)."""
        from nasblocks.train import DivergedError, TrainOutOfMemoryError

        if isinstance(error, DivergedError):
            trial.set_user_attr("diverged", str(error))
            return optuna.TrialPruned(str(error))
        if isinstance(error, TrainOutOfMemoryError):
            trial.set_user_attr("error", f"out of memory: {error}")
            return TrialFailed(str(error))
        reason = f"{type(error).__name__}: {error}".splitlines()[0][:500]
        trial.set_user_attr("error", reason)
        tb = traceback.format_exception(type(error), error, error.__traceback__)
        trial.set_user_attr("traceback", "".join(tb)[-4000:])
        return TrialFailed(reason)


def find_duplicate(study: optuna.Study, key: str, number: int) -> FrozenTrial | None:
    """A finished, trained trial with the same key (architecture + training settings)."""
    for t in study.get_trials(deepcopy=False, states=FINISHED):
        a = t.user_attrs
        if t.number == number or a.get("trial_key") != key or "infeasible" in a:
            continue
        if t.state == TrialState.COMPLETE or "pruned_at" in a or "diverged" in a:
            return t
    return None


# -- stopping and logging ---------------------------------------------------------------------


class Stopper:
    """Stops the study when ``target`` trials have finished, or after repeated failures."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.fails = 0
        self.infeasible = 0
        self.error: str | None = None

    def count(self, trial: FrozenTrial) -> str | None:
        """Count one ended trial; the reason to stop when too many failed in a row, or when
        the space has yielded nothing that can be evaluated for a long while."""
        self.fails = self.fails + 1 if trial.state == TrialState.FAIL else 0
        reason = trial.user_attrs.get("infeasible")
        self.infeasible = self.infeasible + 1 if reason is not None else 0
        if self.fails >= MAX_FAILS_IN_A_ROW:
            self.error = (
                f"{self.fails} trials in a row failed; the last one: "
                f"{trial.user_attrs.get('error', 'unknown error')}"
            )
        elif self.infeasible >= MAX_INFEASIBLE_IN_A_ROW:
            self.error = (
                f"{self.infeasible} samples in a row were infeasible (the last: {reason}); "
                "the space yields nothing that can be evaluated: loosen the constraints or "
                "fix the space"
            )
        return self.error

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self.count(trial) is not None or count_finished(study) >= self.target:
            study.stop()


@contextmanager
def _torch_threads(threads: int | None):
    """``torch.set_num_threads(threads)`` for the search, restored after (None: untouched)."""
    if threads is None:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
