"""One Ray Tune trial: the define-by-run space ``OptunaSearch`` samples, and the function a
Ray worker runs (sample -> candidate -> :func:`~nasblocks.search.trial.run_trial`).

Imported by Ray workers: nothing here starts or talks to Ray beyond ``ray.tune.report`` and
``ray.tune.get_checkpoint``, and the driver's side (:mod:`nasblocks.search.ray_backend`) is not
imported.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from nasblocks.files import write_atomic
from nasblocks.search.candidate import DataInfo, Infeasible, make_candidate
from nasblocks.search.samplers import OptunaSource
from nasblocks.search.trial import DataHandle, run_trial
from nasblocks.space import FixedSource, SearchSpace

# What an untrained trial reports for a cost it minimises: worse than any real one, and finite
# (Tune's TensorBoard logger complains about inf).
WORST_COST = 1e300


class DefineByRun:
    """``OptunaSearch``'s define-by-run space: the space's own sampling, so conditional nodes
    ask only the questions on the chosen path, under the Optuna backend's parameter names.

    A plain class (not a closure): Ray pickles the searcher, and this with it, to restore."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space

    def __call__(self, trial: Any) -> None:
        self.space.sample(OptunaSource(trial))


@dataclasses.dataclass(frozen=True)
class TrialJob:
    """What every trial of a search shares; Ray puts it in its object store once."""

    space: SearchSpace
    data: DataHandle
    info: DataInfo
    threads: int


def train_one(config: dict[str, Any], job: TrialJob) -> None:
    """One Ray trial: sample -> candidate -> :func:`run_trial`, reporting each epoch to Tune.

    Every path reports at least once with every objective, so the searcher and ASHA always
    get a value (the worst one for a trial that was not trained).
    """
    import torch
    from ray import tune

    torch.set_num_threads(job.threads)
    settings = job.space.settings
    objectives = settings.directions()
    # objectives first: Tune's progress table shows the first few numbers a trial reports
    row: dict[str, Any] = {m: 0.0 if d == "maximize" else WORST_COST for m, d in objectives}
    row["epoch"] = 0
    started = time.time()
    waited = [0.0]  # seconds inside earlier tune.report calls: Ray's cost within the trial

    def emit(values: dict[str, Any], checkpoint: Any = None) -> None:
        now = time.time()
        times = {"started_at": started, "reported_at": now, "ray_report_s": waited[0]}
        tune.report({**row, **values, **times}, checkpoint=checkpoint)
        waited[0] += time.time() - now

    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:  # trained before the driver died: report it again, not retrain
        with checkpoint.as_directory() as folder:
            final = json.loads((Path(folder) / "metrics.json").read_text())
        tune.report(final, checkpoint=checkpoint)
        return
    sample = job.space.sample(FixedSource(flat(config)))
    try:
        cand = make_candidate(sample, settings, job.info)
    except Infeasible as e:
        emit({"outcome": "infeasible", "reason": e.reason, "violations": e.violations})
        return
    row.update(cand.costs)
    row.update(spec_hash=cand.spec_hash, trial_key=cand.key)
    row.update(n_params=cand.params, flops=cand.flops)  # whole numbers, as the Optuna backend
    epochs = cand.config.epochs

    def report(epoch: int, metrics: dict[str, float]) -> bool:
        if epoch < epochs:  # the last epoch goes out with the weights, below
            emit({**metrics, "epoch": epoch})
        return False  # ASHA stops a trial by not asking for its next epoch

    try:
        outcome = run_trial(cand.spec, cand.config, job.data, report, keep_weights=True)
    except Exception as e:  # recorded, and the search goes on (a worker death is Ray's)
        emit(_failure(e))
        return
    final = {**outcome.metrics, "epoch": int(outcome.metrics["epochs"]), "outcome": "completed"}
    with tempfile.TemporaryDirectory() as folder:
        write_atomic(Path(folder) / "weights.pt", lambda t: torch.save(outcome.state_dict, t))
        final.update(started_at=started, reported_at=time.time(), ray_report_s=waited[0])
        write_atomic(Path(folder) / "metrics.json", json.dumps({**row, **final}))
        emit(final, checkpoint=tune.Checkpoint.from_directory(folder))


def _failure(error: Exception) -> dict[str, Any]:
    from nasblocks.train import DivergedError, TrainOutOfMemoryError

    if isinstance(error, DivergedError):
        return {"outcome": "diverged", "reason": str(error)}
    if isinstance(error, TrainOutOfMemoryError):
        return {"outcome": "failed", "reason": f"out of memory: {error}"}
    tb = traceback.format_exception(type(error), error, error.__traceback__)
    reason = f"{type(error).__name__}: {error}".splitlines()[0][:500]
    return {"outcome": "failed", "reason": reason, "traceback": "".join(tb)[-4000:]}


def flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Undo Tune's nesting of parameter names at ``/`` (a label may contain one)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat(value, name + "/"))
        else:
            out[name] = value
    return out
