"""One trial, whichever backend runs it: a sample in, one typed :class:`Result` out.

:func:`evaluate` is the whole trial: the sample's concrete spec, the candidate (validated,
measured, constraints checked: :mod:`.candidate`), the duplicate check, then the table lookup
or the training (:func:`~nasblocks.search.evaluators.trained.run_trial`, or the job's own
``trainer``).
Every way a trial can end is one :class:`Status`; the backends are thin adapters that turn
their trial into a sample and the result into their records:

- :class:`nasblocks.search.objective.Objective`: an Optuna trial, in this process or in the
  worker processes of :mod:`.backends.workers` (:func:`record` writes the result on the trial);
- :func:`nasblocks.search.backends.ray_trial.trainable`: a Ray Tune trial (:func:`to_row` is
  what it reports, :func:`from_row` reads it back into the Optuna study the outputs are
  written from).

So deduplication, constraints, table evaluation and the failure taxonomy are the same on every
backend, and :func:`kind` / :func:`feasible` read them back the same way everywhere.

========================  =========  ===================================================
status                    state      user attrs
========================  =========  ===================================================
complete                  COMPLETE   val_acc, n_params, flops, spec, spec_hash, ...
(same spec + settings)    as found   duplicate_of: the trial whose result is reused
infeasible                PRUNED     infeasible: reason; Optuna constraints > 0 (TPE
                                     ranks such trials below every feasible one)
pruned                    PRUNED     pruned_at: epoch (intermediate values kept)
diverged (NaN/inf loss)   PRUNED     diverged: reason (a bad configuration, not a crash)
failed                    FAIL       error: reason (<= 500 characters), traceback (<= 4,000)
========================  =========  ===================================================
"""

from __future__ import annotations

import dataclasses
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from optuna.trial import FrozenTrial, TrialState

from nasblocks.errors import SearchError
from nasblocks.search.candidate import DataInfo, Infeasible, complete_spec, make_candidate
from nasblocks.search.evaluators import table as tables
from nasblocks.search.evaluators.table import make_key
from nasblocks.search.evaluators.trained import METRICS, run_trial
from nasblocks.search.outcomes import Status, feasible, kind  # noqa: F401 (public here too)
from nasblocks.train.handle import DataHandle

if TYPE_CHECKING:
    import optuna

    from nasblocks.search.evaluators.table import Table
    from nasblocks.space import Sample, SearchSpace

REASON_CHARS = 500
TRACEBACK_CHARS = 4000


class TrialFailed(SearchError):
    """A trial that raised: recorded as FAIL with its reason; the study goes on."""


INHERITED = ("inherited", "scored_images", "threads", "grown_slots")
"""What a trial scored by a supernet records beside its metrics."""

LOOKED_UP = ("table_run", "report_metric", "report_value")
"""What a table trial records beside its score: the run it read, the reported column."""

REUSED = (*METRICS, "weights", "pruned_at", "diverged", *INHERITED, *LOOKED_UP)
"""What a duplicate takes from the trial whose result it reuses."""

RECORDED = (
    *METRICS,
    "duration_s",
    "spec_hash",
    "trial_key",
    "n_params",
    "flops",
    "latency_ms",
    "table_key",
    "metric",
    "pruned_at",
    "infeasible",
    "diverged",
    "error",
    "traceback",
    "duplicate_of",
    *INHERITED,
    *LOOKED_UP,
)
"""The scalar user attributes a result may carry (``spec`` and ``train`` are mappings)."""


@dataclasses.dataclass
class Result:
    """One trial's outcome: how it ended, what to record, and the weights of a trained one."""

    status: Status
    attrs: dict[str, Any]
    values: list[float] | None = None  # the objectives, in the space's order (complete only)
    costs: dict[str, float] = dataclasses.field(default_factory=dict)
    constraints: dict[str, float] | None = None  # how far each is broken (infeasible only)
    weights: dict[str, Any] | None = dataclasses.field(default=None, repr=False)

    @property
    def state(self) -> TrialState:
        return self.status.state

    @property
    def reason(self) -> str:
        """One line: why a trial that is not complete ended."""
        a = self.attrs
        if "duplicate_of" in a and self.status is not Status.COMPLETE:
            return f"same architecture and settings as trial {a['duplicate_of']}, which was pruned"
        for key in ("infeasible", "diverged", "error"):
            if key in a:
                return str(a[key])
        if "pruned_at" in a:
            return f"pruned after epoch {a['pruned_at']}"
        return self.status.value


@dataclasses.dataclass(frozen=True)
class Original:
    """A finished, trained trial a duplicate reuses: ``ref`` names it (the trial number; on
    Ray, the Ray trial until the study is written)."""

    ref: Any
    status: Status
    attrs: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Job:
    """What every trial of a search shares; small and picklable (workers and Ray get a copy).

    ``trainer``: the function that trains a concrete spec, :func:`run_trial` by default (a
    module-level function, so that worker processes and Ray workers can import it).
    """

    space: SearchSpace
    data: DataHandle
    info: DataInfo
    trainer: Callable[..., Any] = run_trial
    supernet: str | None = None  # the trained supernet's checkpoint: trials are scored by it

    @property
    def table(self) -> Table | None:
        """The table a table space is evaluated from (loaded once per process)."""
        e = self.space.settings.evaluate
        if e is None:
            return None
        return tables.load_joined(e, e.metric, None, self.space.file)

    @property
    def objective_tables(self) -> list[Table]:
        """The tables the objectives besides the score are read from (joined on the key)."""
        e = self.space.settings.evaluate
        if e is None:
            return []
        return [
            tables.load_joined(e, o.metric, o.table, self.space.file)
            for o in self.space.settings.table_objectives
        ]

    @property
    def report_table(self) -> Table | None:
        """The table the best's reported value comes from (``search.evaluate.report``);
        None where it is the searched column itself."""
        e = self.space.settings.evaluate
        if e is None or e.report is None:
            return None
        return tables.load_joined(e, e.report.metric, e.report.table, self.space.file)


Report = Callable[[int, int, dict[str, float]], "bool | None"]
"""``report(epoch, epochs, metrics)``, after each epoch; True stops (prunes) the trial."""


def evaluate(
    sample: Sample,
    job: Job,
    report: Report | None = None,
    *,
    seen: Callable[[str], Original | None] | None = None,
    started: Callable[[dict[str, Any]], None] | None = None,
    fatal: Callable[[Exception], bool] | None = None,
) -> Result:
    """One trial from ``sample`` to :class:`Result`; never raises for the trial's own faults.

    ``seen(key)``: the finished trial with the same architecture and training settings, if
    any (its result is reused, nothing is trained). ``started(attrs)``: called with what is
    known before training (spec, costs), for backends that show running trials. ``fatal(e)``:
    errors that must stop the search rather than fail the trial (a full disk); they and
    ``KeyboardInterrupt`` propagate, as does a table that disagrees with the space.
    """
    settings = job.space.settings
    attrs: dict[str, Any] = {}
    table = job.table
    if table is not None:
        attrs["spec"] = complete_spec(sample.spec, job.info, settings)
        return _look_up(sample, job, table, attrs)
    try:
        attrs["spec"] = complete_spec(sample.spec, job.info, settings)
        try:
            cand = make_candidate(sample, settings, job.info)
        except Infeasible as e:
            attrs["infeasible"] = e.reason
            return Result(Status.INFEASIBLE, attrs, constraints=dict(e.violations))
        attrs.update(
            spec_hash=cand.spec_hash,
            trial_key=cand.key,
            n_params=cand.params,
            flops=cand.flops,
            train=cand.config.model_dump(mode="json"),
        )
        if cand.latency_ms is not None:
            attrs["latency_ms"] = cand.latency_ms
        costs = cand.costs
        original = seen(cand.key) if seen is not None else None
        if original is not None:
            return _reuse(original, attrs, costs, settings.directions())
        if started is not None:
            started(attrs)
        if job.supernet is not None:
            return _inherit(sample, job, attrs, costs)
        epochs = cand.config.epochs

        def each_epoch(epoch: int, metrics: dict[str, float]) -> bool:
            return bool(report(epoch, epochs, metrics)) if report is not None else False

        outcome = job.trainer(cand.spec, cand.config, job.data, each_epoch, keep_weights=True)
    except Exception as e:
        if fatal is not None and fatal(e):
            raise
        return failure(e, attrs)
    attrs.update(outcome.metrics)
    if outcome.pruned:
        attrs["pruned_at"] = int(outcome.metrics["epochs"])
        return Result(Status.PRUNED, attrs, costs=costs)
    values = objective_values(settings.directions(), outcome.metrics["val_acc"], costs)
    return Result(Status.COMPLETE, attrs, values, costs, weights=outcome.state_dict)


def objective_values(
    objectives: Sequence[tuple[str, str]], val_acc: float, costs: Mapping[str, float]
) -> list[float]:
    """The objectives' values of a trained network, in the space's order."""
    return [val_acc if m == "val_acc" else float(costs[m]) for m, _ in objectives]


def failure(error: BaseException, attrs: dict[str, Any] | None = None) -> Result:
    """What a trial that raised ``error`` recorded: a diverged run is a bad configuration
    (pruned), out of memory and anything else fail with their reason (trimmed)."""
    from nasblocks.train import DivergedError, TrainOutOfMemoryError

    attrs = dict(attrs or {})
    if isinstance(error, DivergedError):
        attrs["diverged"] = str(error)
        return Result(Status.DIVERGED, attrs)
    if isinstance(error, TrainOutOfMemoryError):
        attrs["error"] = f"out of memory: {error}"[:REASON_CHARS]
        return Result(Status.FAILED, attrs)
    attrs["error"] = f"{type(error).__name__}: {error}".splitlines()[0][:REASON_CHARS]
    tb = traceback.format_exception(type(error), error, error.__traceback__)
    attrs["traceback"] = "".join(tb)[-TRACEBACK_CHARS:]
    return Result(Status.FAILED, attrs)


def _inherit(sample: Sample, job: Job, attrs: dict[str, Any], costs: dict[str, float]) -> Result:
    """Supernet evaluation: the subnet's validation accuracy with inherited weights."""
    import time

    from nasblocks.supernet.evaluator import scorer_for

    assert job.supernet is not None
    start = time.perf_counter()
    scorer = scorer_for(job.supernet, job.space, job.data, job.info)
    metrics, weights = scorer.score(sample)
    attrs.update(metrics, duration_s=time.perf_counter() - start, inherited=True)
    values = objective_values(job.space.settings.directions(), metrics["val_acc"], costs)
    return Result(Status.COMPLETE, attrs, values, costs, weights=weights)


def _look_up(sample: Sample, job: Job, table: Table, attrs: dict[str, Any]) -> Result:
    """Table evaluation: the metric of the sample's row (no network is built)."""
    evaluate = job.space.settings.evaluate
    assert evaluate is not None
    key = make_key(evaluate.key, sample.params)
    runs = table.values(key)  # a TableError: the space and the table disagree
    run = tables.run_index(key, job.space.settings.seed, len(runs))
    attrs.update(table_key=key, metric=table.metric, val_acc=runs[run])
    if len(runs) > 1:
        attrs["table_run"] = run
    reported = job.report_table
    if reported is not None:
        attrs.update(report_metric=reported.metric, report_value=reported.mean(key))
    else:
        attrs.update(report_metric=table.metric, report_value=table.mean(key))
    costs = {t.metric: t.mean(key) for t in job.objective_tables}
    values = objective_values(job.space.settings.directions(), runs[run], costs)
    return Result(Status.COMPLETE, attrs, values, costs)


def _reuse(
    original: Original,
    attrs: dict[str, Any],
    costs: dict[str, float],
    objectives: Sequence[tuple[str, str]],
) -> Result:
    attrs["duplicate_of"] = original.ref
    attrs.update({k: original.attrs[k] for k in REUSED if k in original.attrs})
    attrs["duration_s"] = 0.0
    if original.status is not Status.COMPLETE:
        return Result(Status.PRUNED, attrs, costs=costs)
    values = objective_values(objectives, original.attrs["val_acc"], costs)
    return Result(Status.COMPLETE, attrs, values, costs)


# -- the Optuna record ---------------------------------------------------------------------


def record(trial: optuna.Trial, result: Result, written: set[str] | None = None) -> Any:
    """Write ``result`` on a running Optuna trial (the attributes not in ``written`` yet) and
    end it: the objective's return value, or the exception Optuna records a prune or a
    failure from."""
    import optuna

    for key, value in result.attrs.items():
        if written is None or key not in written:
            trial.set_user_attr(key, value)
    for key, value in (result.constraints or {}).items():
        trial.set_constraint(key, value)
    if result.status is Status.FAILED:
        raise TrialFailed(result.reason)
    if result.state == TrialState.PRUNED:
        raise optuna.TrialPruned(result.reason)
    assert result.values is not None
    return result.values[0] if len(result.values) == 1 else result.values


def original_of(t: FrozenTrial, ref: Any = None) -> Original | None:
    """``t`` as the original of a duplicate, when its result can be reused: it was trained
    (complete, pruned or diverged; not infeasible, failed or running)."""
    a = t.user_attrs
    if "infeasible" in a or t.state not in (TrialState.COMPLETE, TrialState.PRUNED):
        return None
    if t.state == TrialState.COMPLETE:
        status = Status.COMPLETE
    elif "diverged" in a:
        status = Status.DIVERGED
    elif "pruned_at" in a:
        status = Status.PRUNED
    else:
        return None
    return Original(a.get("duplicate_of", t.number if ref is None else ref), status, dict(a))


def to_row(result: Result, objectives: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """What a Ray trial reports at its end: the objectives first (Tune's table shows the first
    few numbers; an untrained trial reports the worst value, finite), the outcome, and the
    scalar attributes. ``spec`` and ``train`` are not reported: the sample gives them again."""
    row: dict[str, Any] = {}
    for i, (m, d) in enumerate(objectives):
        if result.values is not None:
            row[m] = result.values[i]
        elif m != "val_acc" and m in result.costs:
            row[m] = result.costs[m]
        else:
            row[m] = 0.0 if d == "maximize" else WORST_COST
    row["outcome"] = result.status.value
    row.update({k: v for k, v in result.attrs.items() if k in RECORDED})
    if result.constraints:
        row["violations"] = dict(result.constraints)
    return row


def from_row(row: Mapping[str, Any]) -> Result:
    """:func:`to_row` read back (Tune flattens the ``violations`` mapping to ``violations/k``)."""
    status = Status(_OUTCOMES.get(row["outcome"], row["outcome"]))
    attrs = {k: row[k] for k in RECORDED if k in row}
    if status in _UNTRAINED and "duplicate_of" not in attrs:
        for key in METRICS:  # the objectives' placeholders, not measurements
            attrs.pop(key, None)
    if "reason" in row:  # rounds written before this module
        attrs.setdefault({"failed": "error"}.get(status.value, status.value), row["reason"])
    constraints = None
    if status is Status.INFEASIBLE:
        constraints = {
            k.split("/", 1)[1]: float(v) for k, v in row.items() if k.startswith("violations/")
        } or {"valid": 1.0}
    return Result(status, attrs, constraints=constraints)


_OUTCOMES = {"completed": "complete"}  # what rounds written before this module reported
_UNTRAINED = (Status.INFEASIBLE, Status.DIVERGED, Status.FAILED)

# What an untrained trial reports for a cost it minimises: worse than any real one, and finite
# (Tune's TensorBoard logger complains about inf).
WORST_COST = 1e300
