"""The one trial pipeline: its outcomes, and the same records on every backend."""

from __future__ import annotations

import math

import optuna
import pytest
from conftest import check_pipeline_study
from optuna.trial import TrialState

from nasblocks.search import outcomes, pipeline
from nasblocks.search.candidate import DataInfo
from nasblocks.search.engine import search
from nasblocks.search.outputs.results import load_study
from nasblocks.search.pipeline import Job, Original, Status
from nasblocks.space import FixedSource, load_space
from nasblocks.testing import HashTrainer
from nasblocks.train import DataHandle
from nasblocks.train.trainer import DivergedError, TrainOutOfMemoryError

INFO = DataInfo((1, 8, 8), 4)


def job_of(path, trainer):
    space = load_space(path)
    return Job(space, DataHandle.from_settings(space.settings.data, 0), INFO, trainer)


def sample(job, width):
    return job.space.sample(FixedSource({"stages.widths[0]": width}))


def test_a_trained_sample_is_complete_with_its_objectives_and_costs(dedup_space):
    job = job_of(dedup_space, HashTrainer())
    epochs = []
    result = pipeline.evaluate(sample(job, 4), job, lambda e, n, m: epochs.append((e, n)))
    assert result.status is Status.COMPLETE and result.state == TrialState.COMPLETE
    assert epochs == [(1, 2), (2, 2)]
    assert result.values == [result.attrs["val_acc"]]
    assert result.costs["params"] == result.attrs["n_params"] > 0
    assert result.attrs["spec"]["input"] == [1, 8, 8] and result.attrs["train"]["lr"] == 0.1


def test_a_sample_over_a_constraint_is_infeasible_and_never_trained(dedup_space, tmp_path):
    log = tmp_path / "calls"
    job = job_of(dedup_space, HashTrainer(log=log))
    result = pipeline.evaluate(sample(job, 32), job)
    assert result.status is Status.INFEASIBLE and result.state == TrialState.PRUNED
    assert result.constraints["max_params"] > 0 and "max_params" in result.reason
    assert not log.exists()


class Raises:
    def __init__(self, error):
        self.error = error

    def __call__(self, *args, **kwargs):
        raise self.error


@pytest.mark.parametrize(
    ("error", "status", "key", "start"),
    [
        (DivergedError(1, math.nan), Status.DIVERGED, "diverged", "training diverged in epoch 1"),
        (TrainOutOfMemoryError("CUDA"), Status.FAILED, "error", "out of memory: CUDA"),
        (RuntimeError("x" * 900 + "\nsecond line"), Status.FAILED, "error", "RuntimeError: x"),
    ],
)
def test_a_trainer_that_raises_gives_its_outcome(dedup_space, error, status, key, start):
    job = job_of(dedup_space, Raises(error))
    result = pipeline.evaluate(sample(job, 4), job)
    assert result.status is status and result.attrs[key].startswith(start)
    assert len(result.attrs[key]) <= pipeline.REASON_CHARS and "\n" not in result.attrs[key]
    assert len(result.attrs.get("traceback", "")) <= pipeline.TRACEBACK_CHARS
    assert result.attrs["n_params"] > 0  # what was known before training is kept


def test_errors_the_caller_calls_fatal_propagate(dedup_space):
    job = job_of(dedup_space, Raises(OSError(28, "No space left on device")))
    with pytest.raises(OSError):
        pipeline.evaluate(sample(job, 4), job, fatal=lambda e: isinstance(e, OSError))


def test_a_seen_key_reuses_the_result_without_training(dedup_space, tmp_path):
    log = tmp_path / "calls"
    job = job_of(dedup_space, HashTrainer(log=log))
    first = pipeline.evaluate(sample(job, 4), job)
    key = first.attrs["trial_key"]
    seen = {key: Original(7, Status.COMPLETE, first.attrs)}
    again = pipeline.evaluate(sample(job, 4), job, seen=seen.get)
    assert again.status is Status.COMPLETE and again.attrs["duplicate_of"] == 7
    assert again.values == first.values and again.attrs["duration_s"] == 0.0
    assert len(log.read_text().split()) == 1
    pruned = pipeline.evaluate(sample(job, 4), job, seen=lambda k: Original(3, Status.PRUNED, {}))
    assert pruned.state == TrialState.PRUNED and "trial 3, which was pruned" in pruned.reason


@pytest.mark.parametrize("width", [4, 32])
def test_what_ray_reports_reads_back_as_the_same_result(dedup_space, width):
    job = job_of(dedup_space, HashTrainer())
    result = pipeline.evaluate(sample(job, width), job)
    row = pipeline.to_row(result, job.space.settings.directions())
    flat = {k: v for k, v in row.items() if k != "violations"}  # Tune flattens mappings
    flat.update({f"violations/{k}": v for k, v in row.get("violations", {}).items()})
    back = pipeline.from_row(flat)
    assert back.status is result.status and back.constraints == result.constraints
    scalar = {k: v for k, v in result.attrs.items() if k in pipeline.RECORDED}
    assert back.attrs == scalar
    assert all(math.isfinite(row[m]) for m, _ in job.space.settings.directions())


def test_kind_and_feasible_read_every_outcome():
    def frozen(state, constraints=None, **attrs):
        return optuna.trial.create_trial(
            state=state,
            value=0.5 if state == TrialState.COMPLETE else None,
            user_attrs=attrs,
            constraints=constraints,
        )

    cases = {
        "complete": frozen(TrialState.COMPLETE),
        "duplicate": frozen(TrialState.COMPLETE, duplicate_of=0),
        "infeasible": frozen(TrialState.PRUNED, {"max_params": 0.5}, infeasible="too big"),
        "diverged": frozen(TrialState.PRUNED, diverged="nan"),
        "pruned": frozen(TrialState.PRUNED, pruned_at=1),
        "failed": frozen(TrialState.FAIL, error="boom"),
    }
    assert {k: outcomes.kind(t) for k, t in cases.items()} == {k: k for k in cases}
    assert [k for k, t in cases.items() if not outcomes.feasible(t)] == ["infeasible"]


# -- the same pipeline on the Optuna backends (Ray: test_ray.py) -----------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_the_optuna_backends_record_what_the_pipeline_says(dedup_space, tmp_path, workers):
    log = tmp_path / "calls"
    out = tmp_path / "out"
    outcome = search(
        dedup_space, out=out, workers=workers, progress=False, trainer=HashTrainer(log=log)
    )
    assert outcome.finished == 6
    scores = check_pipeline_study(load_study(out), log.read_text().split(), unique=workers == 1)
    # the same numbers as the pipeline gives on its own
    job = job_of(dedup_space, HashTrainer())
    for width in (4, 8):
        result = pipeline.evaluate(sample(job, width), job)
        assert scores.get(result.attrs["trial_key"], result.attrs["val_acc"]) == pytest.approx(
            result.attrs["val_acc"]
        )
