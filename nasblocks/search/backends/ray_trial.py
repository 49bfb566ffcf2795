"""One Ray Tune trial: the define-by-run space ``OptunaSearch`` samples, and the function a
Ray worker runs (the Ray adapter of :func:`nasblocks.search.pipeline.evaluate`).

Imported by Ray workers: nothing here starts or talks to Ray beyond ``ray.tune.report`` and
``ray.tune.get_checkpoint``, and the driver's side
(:mod:`nasblocks.search.backends.ray_backend`) is not imported.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from nasblocks.files import write_atomic
from nasblocks.search import pipeline
from nasblocks.search.pipeline import WORST_COST, Job, Original, Status, to_row
from nasblocks.search.samplers import OptunaSource
from nasblocks.space import FixedSource, SearchSpace


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
    """What every trial of a Ray round shares; Ray puts it in its object store once.

    ``round``: the round's index; ``seen``: the name of the round's :class:`Seen` actor."""

    job: Job
    threads: int
    round: int = 0
    seen: str | None = None


class Seen:
    """The trained trials of a Ray search by trial key, for deduplication: a Ray actor
    (``ray.remote(Seen)``, named per round) that every trial of the round asks before it
    trains and tells after; trials of earlier rounds are given at its start."""

    def __init__(self, originals: dict[str, Original]) -> None:
        self.originals = dict(originals)

    def get(self, key: str) -> Original | None:
        return self.originals.get(key)

    def put(self, key: str, original: Original) -> None:
        self.originals.setdefault(key, original)


def ray_ref(round_index: int, trial_id: str) -> str:
    """How a Ray trial is named before the study numbers it (``duplicate_of``)."""
    return f"ray:{round_index}/{trial_id}"


def trainable(config: dict[str, Any], job: TrialJob) -> None:
    """One Ray trial: the Ray adapter of :func:`.pipeline.evaluate`.

    The sample is the searcher's ``config``; each epoch is reported to Tune (ASHA stops a
    trial by not asking for its next epoch), and the end always with every objective, so the
    searcher and ASHA get a value (the worst one for a trial that was not trained). A trained
    trial's weights and final row are its checkpoint: a trial Ray re-runs after the driver died
    reports them again instead of training again.
    """
    import ray
    import torch
    from ray import tune

    torch.set_num_threads(job.threads)
    objectives = job.job.space.settings.directions()
    started = time.time()
    waited = [0.0]  # seconds inside earlier tune.report calls: Ray's cost within the trial

    def emit(values: dict[str, Any], checkpoint: Any = None) -> None:
        now = time.time()
        times = {"started_at": started, "reported_at": now, "ray_report_s": waited[0]}
        tune.report({**values, **times}, checkpoint=checkpoint)
        waited[0] += time.time() - now

    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:  # trained before the driver died: report it again, not retrain
        with checkpoint.as_directory() as folder:
            final = json.loads((Path(folder) / "metrics.json").read_text())
        tune.report(final, checkpoint=checkpoint)
        return
    seen = ray.get_actor(job.seen) if job.seen is not None else None
    worst = {m: 0.0 if d == "maximize" else WORST_COST for m, d in objectives}

    def report(epoch: int, epochs: int, metrics: dict[str, float]) -> bool:
        if epoch < epochs:  # the last epoch goes out with the result, below
            emit({**worst, **metrics, "epoch": epoch})
        return False

    def lookup(key: str) -> Original | None:
        return None if seen is None else ray.get(seen.get.remote(key))

    sample = job.job.space.sample(FixedSource(flat(config)))
    result = pipeline.evaluate(sample, job.job, report, seen=lookup)
    row = {**to_row(result, objectives), "epoch": int(result.attrs.get("epochs", 0))}
    trained = result.status is not Status.INFEASIBLE and result.status is not Status.FAILED
    if seen is not None and trained and "duplicate_of" not in result.attrs:
        me = ray_ref(job.round, tune.get_context().get_trial_id())
        ray.get(seen.put.remote(result.attrs["trial_key"], Original(me, result.status, row)))
    if result.weights is None:
        emit(row)
        return
    with tempfile.TemporaryDirectory() as folder:
        write_atomic(Path(folder) / "weights.pt", lambda t: torch.save(result.weights, t))
        final = {**row, "started_at": started, "reported_at": time.time()}
        write_atomic(
            Path(folder) / "metrics.json", json.dumps({**final, "ray_report_s": waited[0]})
        )
        emit(row, checkpoint=tune.Checkpoint.from_directory(folder))


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
