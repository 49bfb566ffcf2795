"""Ray Tune's results -> the Optuna study the rest of nasblocks reads (``OUT/study.db``).

Each Ray trial becomes the trial the Optuna backend would have recorded: the same parameters
and distributions (the space's node names), user attributes, intermediate values (validation
accuracy per epoch), constraints and state, so that :mod:`nasblocks.search.outputs.results` and
:mod:`nasblocks.search.outputs.report` write ``trials.csv``, ``best.yaml``, ``best.pt`` and
``report.md`` unchanged. The study is rebuilt from all rounds each time (it is derived data);
the weights of the best trial (or the Pareto front) are copied from its Ray checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import logging
import math
import shutil
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from nasblocks.errors import SearchError, SpecError
from nasblocks.files import write_atomic
from nasblocks.search import pipeline
from nasblocks.search.backends.ray_trial import flat, ray_ref
from nasblocks.search.candidate import DataInfo, complete_spec, train_settings
from nasblocks.search.logs import quiet_optuna
from nasblocks.search.outputs import folder as run_folder
from nasblocks.search.outputs import results
from nasblocks.search.pipeline import Status
from nasblocks.space import Choice, FixedSource, IntRange, Node, SearchSpace

RAY_DIR = "ray"  # OUT/ray/round-<k>: one Ray experiment per round
ROUND_PREFIX = "round-"


@dataclasses.dataclass
class TrialRecord:
    """One Ray trial as Tune stored it: its status, parameters and reported rows."""

    round: int
    index: int  # place in its round
    trial_id: str
    status: str  # TERMINATED, ERROR, or unfinished (RUNNING, PENDING, PAUSED)
    params: dict[str, Any]
    rows: list[dict[str, Any]]
    error: str | None = None
    checkpoint: Path | None = None
    folder: str = ""  # the trial's folder in its round

    @property
    def last(self) -> dict[str, Any]:
        return self.rows[-1] if self.rows else {}

    @property
    def finished(self) -> bool:
        """Counts toward the budget: evaluated (the Optuna backend's COMPLETE + PRUNED, not
        infeasible)."""
        return (
            self.status == "TERMINATED"
            and bool(self.rows)
            and self.last.get("outcome") not in ("failed", "infeasible")
        )


def load_round(path: Path, index: int) -> list[TrialRecord]:
    """The trials of one Ray experiment folder, in the order the searcher proposed them."""
    from ray.tune import ExperimentAnalysis

    log = logging.getLogger("ray.tune.analysis.experiment_analysis")
    level = log.level
    log.setLevel(logging.ERROR)  # a trial cut short before its first report has no files
    try:
        analysis = ExperimentAnalysis(str(path))
    finally:
        log.setLevel(level)
    frames = analysis.trial_dataframes
    records = []
    for trial in analysis.trials:
        frame = frames.get(trial.trial_id)
        rows = [] if frame is None else [_clean(r) for r in frame.to_dict("records")]
        error = None
        if trial.status == "ERROR":
            text = trial.get_error() or "the trial's worker failed"
            error = _error_line(str(text))
        ckpt = trial.checkpoint
        records.append(
            TrialRecord(
                round=index,
                index=int(str(trial.experiment_tag).split("_")[0] or 0),
                trial_id=trial.trial_id,
                status=trial.status,
                params=flat(dict(trial.config)),
                rows=rows,
                error=error,
                checkpoint=Path(ckpt.path) if ckpt is not None else None,
                folder=Path(trial.path).name if trial.path else trial.trial_id,
            )
        )
    return sorted(records, key=lambda r: r.index)


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    """A reported row without the blanks a data frame fills in for keys other rows have."""
    return {k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))}


def _error_line(text: str) -> str:
    """The last non-empty line of a Ray traceback: the exception itself."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "the trial's worker failed")[:500]


def distribution(node: Node) -> BaseDistribution:
    """The Optuna distribution ``OptunaSource`` suggests ``node`` from."""
    if isinstance(node, Choice):
        return CategoricalDistribution(list(node.labels))
    if isinstance(node, IntRange):
        return IntDistribution(node.low, node.high, step=node.step, log=node.log)
    return FloatDistribution(node.low, node.high, step=node.step, log=node.log)


RAY_ATTRS = ("ray_report_s",)  # seconds the trial waited in tune.report (Ray's cost)


def to_frozen(record: TrialRecord, space: SearchSpace, info: DataInfo) -> FrozenTrial:
    """A Ray trial as the Optuna backend would have recorded it (see the module doc): its last
    row is the pipeline's result (:func:`.pipeline.from_row`); what only Ray knows (a worker
    error, a trial left unfinished, one stopped by ASHA) is added here."""
    from pydantic import ValidationError

    from nasblocks.train import TrainConfig

    settings = space.settings
    sample = space.sample(FixedSource(record.params))
    names = list(sample.params)
    attrs: dict[str, Any] = {
        "spec": complete_spec(sample.spec, info, settings),
        "ray_trial": f"{RAY_DIR}/{ROUND_PREFIX}{record.round + 1}/{record.folder}",
    }
    try:
        config = TrainConfig.model_validate(train_settings(sample.train, settings))
        attrs["train"] = config.model_dump(mode="json")
    except ValidationError:
        pass
    last = record.last
    attrs.update({k: last[k] for k in RAY_ATTRS if k in last})
    intermediate = {
        int(r["epoch"]): float(r["val_acc"])
        for r in record.rows
        if r.get("epoch", 0) >= 1 and "val_acc" in r and "outcome" not in r
    }
    values, constraints = None, None
    if record.status == "ERROR":
        state, attrs["error"] = TrialState.FAIL, record.error
    elif record.status != "TERMINATED":
        state, attrs["interrupted"] = TrialState.FAIL, True
        attrs["error"] = "unfinished; resumed when the search runs again"
    elif "outcome" in last:
        result = pipeline.from_row(last)
        attrs.update(result.attrs)
        state, constraints = result.state, result.constraints
        if result.status is Status.COMPLETE:
            values = [float(last[m]) for m, _ in settings.directions()]
            if record.checkpoint is not None and "duplicate_of" not in result.attrs:
                attrs["weights"] = "pending"  # numbered when added to the study
            if result.attrs.get("epochs"):  # the last epoch is reported with the result
                intermediate[int(result.attrs["epochs"])] = float(result.attrs["val_acc"])
    elif intermediate:  # stopped by ASHA after its last reported epoch
        state = TrialState.PRUNED
        attrs.update({k: last[k] for k in pipeline.RECORDED if k in last})
        attrs["pruned_at"] = max(intermediate)
        attrs["epochs"] = float(max(intermediate))
    else:
        state, attrs["error"] = TrialState.FAIL, "the trial reported nothing"
    trial = optuna.trial.create_trial(
        state=state,
        values=values,
        params={n: record.params[n] for n in names},
        distributions={n: distribution(space.node(n)) for n in names},
        user_attrs=attrs,
        intermediate_values=intermediate,
        constraints=constraints,
    )
    if "started_at" in last:
        trial.datetime_start = datetime.datetime.fromtimestamp(last["started_at"])
        end = last.get("reported_at", last["started_at"])
        trial.datetime_complete = datetime.datetime.fromtimestamp(end)
    return trial


def originals(records: list[TrialRecord], space: SearchSpace, info: DataInfo) -> dict:
    """The trained trials of ``records`` by trial key, for the next round's deduplication
    (:class:`~nasblocks.search.backends.ray_trial.Seen`)."""
    out: dict[str, pipeline.Original] = {}
    for record in in_order(records):
        with contextlib.suppress(SpecError):
            trial = to_frozen(record, space, info)
            key = trial.user_attrs.get("trial_key")
            original = pipeline.original_of(trial, ray_ref(record.round, record.trial_id))
            if key is not None and original is not None:
                out.setdefault(key, original)
    return out


def prepare_study(storage: Any, name: str, space: SearchSpace, where: str) -> optuna.Study:
    """Open (or create) the study the Ray results are converted into; refuse one the Optuna
    backend owns, whose trials would be replaced. ``where``: the storage, for the message."""
    with quiet_optuna():
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            return _create_study(storage, name, space)
    if study.user_attrs.get("backend") != "ray" and study.get_trials(deepcopy=False):
        raise SearchError(
            f"study {name!r} in {where} was run by the Optuna backend; "
            "give the Ray search another --out or study_name"
        )
    run_folder.check_study(study, space, where)
    return study


def _create_study(storage: Any, name: str, space: SearchSpace) -> optuna.Study:
    settings = space.settings
    with quiet_optuna():
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            directions=[d for _, d in settings.directions()],
        )
    study.set_user_attr("objectives", [m for m, _ in settings.directions()])
    study.set_user_attr("space", space.file or space.name)
    study.set_user_attr("dataset", settings.data.dataset)
    study.set_user_attr(run_folder.FINGERPRINT_ATTR, run_folder.fingerprint(space))
    study.set_user_attr("backend", "ray")
    study.set_user_attr("ray_dir", RAY_DIR)
    return study


def write_study(
    storage: Any, name: str, space: SearchSpace, info: DataInfo, records: list[TrialRecord]
) -> optuna.Study:
    """The study ``name`` in ``storage`` rebuilt from ``records`` (rounds in order): the study
    is derived data, so its trials are replaced, not updated."""
    trials = []
    ordered = in_order(records)
    numbers = {ray_ref(r.round, r.trial_id): n for n, r in enumerate(ordered)}
    for number, record in enumerate(ordered):
        try:
            trial = to_frozen(record, space, info)
        except SpecError as e:
            raise SearchError(
                f"{RAY_DIR}/{ROUND_PREFIX}{record.round + 1} holds trials of another space "
                f"({e.message}); give this space another --out"
            ) from None
        if trial.user_attrs.get("weights") == "pending":
            trial.set_user_attr("weights", results.weights_file(name, number))
        ref = trial.user_attrs.get("duplicate_of")
        if ref in numbers:
            trial.set_user_attr("duplicate_of", numbers[ref])
        trials.append(trial)
    with quiet_optuna(), contextlib.suppress(KeyError):
        optuna.delete_study(study_name=name, storage=storage)
    study = _create_study(storage, name, space)
    study.add_trials(trials)
    return study


def in_order(records: list[TrialRecord]) -> list[TrialRecord]:
    """Rounds in order, trials in the order their round's searcher proposed them."""
    return sorted(records, key=lambda r: (r.round, r.index))


def keep_best_weights(study: optuna.Study, out: Path, records: list[TrialRecord]) -> None:
    """Copy the weights of the best trial (or the Pareto front) from their Ray checkpoints to
    ``OUT/trials/<study>-<n>.pt``, as the Optuna backend keeps them; delete the others there."""
    ordered = in_order(records)
    keep = results.pareto_trials(study) or [t for t in [results.best_trial(study)] if t]
    for t in keep:
        checkpoint = ordered[t.number].checkpoint
        if checkpoint is None or not (checkpoint / "weights.pt").is_file():
            continue
        (out / results.WEIGHTS_DIR).mkdir(parents=True, exist_ok=True)
        write_atomic(
            out / results.weights_file(study.study_name, t.number),
            functools.partial(shutil.copyfile, checkpoint / "weights.pt"),
        )
    results.prune_weights(study, out)
