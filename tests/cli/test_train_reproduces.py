"""``nasblocks train OUT``: a search's trial retrained with its own data and settings gives
the numbers the search recorded (on CPU, exactly)."""

from __future__ import annotations

import json

import pytest

from nasblocks.cli.main import main
from nasblocks.search.engine import search
from nasblocks.search.outputs import results
from nasblocks.search.outputs.results import load_study
from nasblocks.space import load_space

SPACE = """\
name: tiny
stem: {out_channels: 4, kernel_size: 3, stride: 1, pool: none}
stages: {block: basic, layers: [1], widths: [{choice: [4, 8]}]}
search:
  data: {dataset: synthetic, synthetic_size: 240, synthetic_shape: [1, 8, 8],
         synthetic_classes: 4}
  train: {batch_size: 32, lr: {float: [0.05, 0.2], log: true}, max_train_batches: 3,
          device: cpu}
  budget: {trials: 3, epochs: 2}
  sampler: random
  pruner: none
  threads: 1  # trained with one torch thread: the retraining must use one too
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    path = root / "tiny.yaml"
    path.write_text(SPACE)
    out = root / "out"
    search(load_space(path), out=out, progress=False)
    return out


@pytest.mark.parametrize("target", ["OUT", "OUT/best.yaml"])
def test_best_trial_is_reproduced_exactly(run, target, tmp_path, capsys):
    best = results.best_trial(load_study(run))
    where = str(run) if target == "OUT" else str(run / "best.yaml")
    assert main(["train", where, "--out", str(tmp_path / "again"), "-q"]) == 0
    metrics = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert metrics["final_val_acc"] == best.user_attrs["val_acc"]
    assert metrics["history"][-1]["train_loss"] == best.user_attrs["train_loss"]
    assert metrics["config"] == best.user_attrs["train"]  # its epochs, lr, batch size, seed
    assert metrics["dataset"] == "synthetic"
    assert f"trial {best.number} of the search" in capsys.readouterr().out


def test_any_trial_and_flags_override(run, tmp_path):
    study = load_study(run)
    other = next(
        t for t in study.trials if "spec" in t.user_attrs and "duplicate_of" not in t.user_attrs
    )
    out = tmp_path / "t"
    flags = ["--trial", str(other.number), "--epochs", "1", "--out", str(out), "-q"]
    assert main(["train", str(run), *flags]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"] == {**other.user_attrs["train"], "epochs": 1}


def test_a_trial_that_does_not_exist_is_one_line(run, tmp_path, capsys):
    assert main(["train", str(run), "--trial", "999", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no trial 999" in err
