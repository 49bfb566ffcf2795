"""Per-trial bookkeeping of ``nasblocks search`` as the study grows, against Optuna's own loop.

Bookkeeping is everything a trial costs except training: sampling through the space, spec
validation, analytic params/MACs, constraints, the duplicate check, storage writes, per-epoch
reports, progress. It is measured with a trainer that trains nothing (``instant``: it reports
its epochs and returns at once), so what is left is the framework's cost. Two kinds of trial:

- table trials (``search_spaces/nas_bench_201.yaml``, random sampler): a lookup each;
  reference: an in-memory Optuna study whose objective suggests the six edges and returns the
  table's value (the least a table search can cost with Optuna);
- trained trials (a ResNet-style space with the learning rate searched, so that no two trials
  are duplicates; SQLite storage in OUT as a default search has; random sampler); reference:
  an Optuna study on a SQLite file in the same folder kind whose objective suggests the same
  parameters, reports one intermediate value and returns a constant; and the same trained
  trials on Optuna's journal file (``--storage journal:///FILE``), whose writes are appends,
  to show what the framework costs apart from SQLite's commits.

For each budget N the cost per trial is printed over the whole run and over its last 10%
(what one more trial costs at N trials), from the studies' own timestamps, side by side with
the reference measured in the same process.

    .venv/bin/python benchmarks/search_overhead.py [--trials 100 300 1000]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE_SPACE = ROOT / "search_spaces" / "nas_bench_201.yaml"
TABLE = ROOT / "search_spaces" / "tables" / "nas_bench_201_cifar10.csv"
EDGES = ["edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2"]
OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]

TRAINED_SPACE = """
name: overhead
stem: {out_channels: 16, kernel_size: 3, stride: 1, pool: none}
stages:
  block: {choice: [basic, bottleneck]}
  layers: [{int: [1, 3]}, {int: [1, 3]}]
  widths: [{choice: [16, 32]}, {choice: [32, 64]}]
search:
  data: {dataset: synthetic, synthetic_size: 200, synthetic_shape: [3, 32, 32]}
  train: {batch_size: 64, lr: {float: [0.01, 0.2], log: true}, device: cpu}
  budget: {trials: 10, epochs: 1}
  sampler: random
  pruner: none
"""


def instant(spec, config, data, report=None, *, keep_weights=True):
    """A trainer that trains nothing: one report per epoch, then a result."""
    from nasblocks.search.evaluators.trained import TrialOutcome

    for epoch in range(1, config.epochs + 1):
        if report is not None:
            report(epoch, {"val_acc": 0.5, "train_loss": 1.0})
    metrics = {"val_acc": 0.5, "train_loss": 1.0, "epochs": float(config.epochs)}
    return TrialOutcome({**metrics, "duration_s": 0.0}, False, None, None)


def per_trial(trials: list) -> tuple[float, float]:
    """Seconds per trial over all ``trials`` and over their last 10%, from the timestamps."""
    trials = sorted(trials, key=lambda t: t.number)
    n = len(trials)
    tail = max(1, n // 10)

    def span(ts: list) -> float:
        return (ts[-1].datetime_complete - ts[0].datetime_start).total_seconds() / len(ts)

    return span(trials), span(trials[-tail:])


def ours(space, out: Path, trials: int, storage: str | None = None) -> tuple[float, float]:
    from nasblocks.search import search
    from nasblocks.search.outputs.results import load_study

    settings = {"search.budget.trials": trials, "search.sampler": "random"}
    search(space, overrides=settings, out=out, storage=storage, progress=False, trainer=instant)
    return per_trial(load_study(out).trials)


def table_reference(trials: int) -> tuple[float, float]:
    import optuna

    with TABLE.open() as f:
        table = {row["arch"]: float(row["test_acc"]) for row in csv.DictReader(f)}

    def objective(trial):
        e = [trial.suggest_categorical(name, OPS) for name in EDGES]
        return table[f"|{e[0]}~0|+|{e[1]}~0|{e[2]}~1|+|{e[3]}~0|{e[4]}~1|{e[5]}~2|"]

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    study.optimize(objective, n_trials=trials)
    return per_trial(study.trials)


def trained_reference(folder: Path, trials: int) -> tuple[float, float]:
    import optuna

    def objective(trial):
        trial.suggest_categorical("stages.block", ["basic", "bottleneck"])
        trial.suggest_int("stages.layers[0]", 1, 3)
        trial.suggest_int("stages.layers[1]", 1, 3)
        trial.suggest_categorical("stages.widths[0]", [16, 32])
        trial.suggest_categorical("stages.widths[1]", [32, 64])
        trial.suggest_float("train.lr", 0.01, 0.2, log=True)
        trial.report(0.5, 1)
        return 0.5

    study = optuna.create_study(
        storage=f"sqlite:///{folder / 'reference.db'}",
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(0),
    )
    study.optimize(objective, n_trials=trials)
    return per_trial(study.trials)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[100, 300, 1000])
    args = parser.parse_args()
    import optuna
    import torch

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    torch.set_num_threads(1)
    print(f"{datetime.date.today()}, load average {os.getloadavg()[0]:.2f}, torch threads 1")
    print("ms per trial: whole run / last 10% of the run (what one more trial costs)")
    head = ("table: ours", "Optuna", "trained: ours", "Optuna", "ours, journal")
    print(
        f"{'trials':>7} | "
        + " ".join(f"{h:>15}" for h in head[:2])
        + " | "
        + " ".join(f"{h:>15}" for h in head[2:])
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        trained = root / "overhead.yaml"
        trained.write_text(textwrap.dedent(TRAINED_SPACE).lstrip())
        for n in args.trials:
            (root / f"ref-{n}").mkdir()
            runs = (
                ours(TABLE_SPACE, root / f"table-{n}", n),
                table_reference(n),
                ours(trained, root / f"trained-{n}", n),
                trained_reference(root / f"ref-{n}", n),
                ours(trained, root / f"journal-{n}", n, f"journal:///{root}/journal-{n}.log"),
            )
            cells = [f"{1e3 * whole:6.2f} / {1e3 * last:6.2f}" for whole, last in runs]
            print(
                f"{n:>7} | "
                + " ".join(f"{c:>15}" for c in cells[:2])
                + " | "
                + " ".join(f"{c:>15}" for c in cells[2:])
            )


if __name__ == "__main__":
    main()
