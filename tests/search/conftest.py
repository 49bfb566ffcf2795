"""Tiny spaces and a fake trainer for search tests (real training only where it matters)."""

from __future__ import annotations

import textwrap

import pytest

from nasblocks.testing import HashTrainer


@pytest.fixture(scope="module")
def tiny_search_file(tmp_path_factory, tiny_space_text):
    """The tiny space written to a fresh folder, for module-scoped searches."""
    path = tmp_path_factory.mktemp("search") / "tiny.yaml"
    path.write_text(tiny_space_text())
    return path


@pytest.fixture
def write_space(tmp_path, tiny_space_text):
    """``write_space(text=the tiny space, name=...)`` -> path of a space file in tmp_path."""

    def write(text: str | None = None, name: str = "space.yaml"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip() if text else tiny_space_text())
        return path

    return write


class FakeTrainer(HashTrainer):
    """Stands in for run_trial: deterministic accuracy from the spec, no torch training.

    ``fail`` maps a call index to an exception to raise; ``calls`` records the specs trained
    (in this process: the in-process backend's tests read it).
    """

    def __init__(self, fail=None, accuracy=None):
        super().__init__()
        self.calls = []
        self.fail = fail or {}
        self.accuracy = accuracy

    def score(self, spec, config):
        if self.accuracy is not None:
            return self.accuracy(spec, config)
        return int(spec.hash(), 16) % 997 / 1000 + config.lr / 10

    def __call__(self, spec, config, data, report=None, *, keep_weights=True):
        from nasblocks.spec import load_spec

        spec = load_spec(spec)
        index = len(self.calls)
        self.calls.append(spec)
        if index in self.fail:
            raise self.fail[index]
        return super().__call__(spec, config, data, report, keep_weights=keep_weights)


@pytest.fixture
def fake_trainer(monkeypatch):
    def install(**kwargs):
        trainer = FakeTrainer(**kwargs)
        monkeypatch.setattr("nasblocks.search.engine.run_trial", trainer)
        return trainer

    return install


DEDUP_SPACE = """
name: dedup
stem: {out_channels: 4, kernel_size: 3, stride: 1, pool: none}
stages:
  block: basic
  layers: [1]
  widths: [{choice: [4, 8, 32]}]
search:
  data: {dataset: synthetic, synthetic_size: 240, synthetic_shape: [1, 8, 8],
         synthetic_classes: 4}
  train: {batch_size: 32, lr: 0.1, max_train_batches: 3, device: cpu}
  constraints: {max_params: 5000}
  budget: {trials: 6, epochs: 2}
  sampler: random
  pruner: none
  seed: 3
"""


@pytest.fixture
def dedup_space(tmp_path):
    """Three widths, one of them over the parameter limit, six trials: duplicates and an
    infeasible sample on every backend."""
    path = tmp_path / "dedup.yaml"
    path.write_text(DEDUP_SPACE.lstrip())
    return path


def check_pipeline_study(study, calls, unique=True):
    """What the shared pipeline records, whichever backend ran it; returns trial key ->
    val_acc of the trained trials. ``calls``: the hashes the trainer logged. ``unique``:
    no two trials trained the same key (one trial at a time, seeded: the infeasible width is
    drawn too). Worker processes draw from seeds of their pids: two feasible widths and six
    evaluated trials still give duplicates (two workers train a key at most twice)."""
    from optuna.trial import TrialState

    from nasblocks.search import outcomes

    trials = study.get_trials()
    kinds = [outcomes.kind(t) for t in trials]
    assert set(kinds) <= {"complete", "duplicate", "infeasible"}, kinds
    required = {"complete", "duplicate", "infeasible"} if unique else {"complete", "duplicate"}
    assert required <= set(kinds), kinds
    trained = [t for t, k in zip(trials, kinds, strict=True) if k == "complete"]
    assert len(calls) == len(trained)  # one training per trained trial, none for the others
    assert sorted(calls) == sorted(t.user_attrs["spec_hash"] for t in trained)
    keys = [t.user_attrs["trial_key"] for t in trained]
    if unique:
        assert len(set(keys)) == len(keys)
    for t, k in zip(trials, kinds, strict=True):
        a = t.user_attrs
        if k == "infeasible":
            assert t.state == TrialState.PRUNED and "val_acc" not in a
            assert t.constraints["max_params"] > 0 and "max_params" in a["infeasible"]
        elif k == "duplicate":
            original = trials[a["duplicate_of"]]
            assert outcomes.kind(original) == "complete"
            assert original.user_attrs["trial_key"] == a["trial_key"]
            assert t.state == TrialState.COMPLETE and a["duration_s"] == 0.0
            assert t.value == a["val_acc"] == original.user_attrs["val_acc"]
        else:
            assert t.state == TrialState.COMPLETE and t.value == a["val_acc"]
            assert sorted(t.intermediate_values) == [1, 2]
    return {t.user_attrs["trial_key"]: t.user_attrs["val_acc"] for t in trained}
