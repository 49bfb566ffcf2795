"""Tiny spaces and a fake trainer for search tests (real training only where it matters)."""

from __future__ import annotations

import textwrap

import pytest


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


class FakeTrainer:
    """Stands in for run_trial: deterministic accuracy from the spec, no torch training.

    ``fail`` maps a call index to an exception to raise; ``calls`` records the specs trained.
    """

    def __init__(self, fail=None, accuracy=None):
        self.calls = []
        self.fail = fail or {}
        self.accuracy = accuracy

    def __call__(self, spec, config, data, report=None, *, keep_weights=True):
        from nasblocks.search.trial import TrialOutcome
        from nasblocks.spec import load_spec

        spec = load_spec(spec)
        index = len(self.calls)
        self.calls.append(spec)
        if index in self.fail:
            raise self.fail[index]
        if self.accuracy is not None:
            acc = self.accuracy(spec, config)
        else:
            acc = int(spec.hash(), 16) % 997 / 1000 + config.lr / 10
        pruned = False
        epochs = 0
        for epoch in range(1, config.epochs + 1):
            epochs = epoch
            if report is not None and report(
                epoch, {"val_acc": acc * epoch / config.epochs, "train_loss": 1.0 / epoch}
            ):
                pruned = True
                break
        metrics = {
            "val_acc": acc * epochs / config.epochs,
            "train_loss": 1.0 / epochs,
            "epochs": float(epochs),
            "duration_s": 0.0,
        }
        return TrialOutcome(metrics, pruned, None, None)


@pytest.fixture
def fake_trainer(monkeypatch):
    def install(**kwargs):
        trainer = FakeTrainer(**kwargs)
        monkeypatch.setattr("nasblocks.search.engine.run_trial", trainer)
        return trainer

    return install
