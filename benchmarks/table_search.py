"""Per-trial cost of a table search (``search.evaluate``), against a hand-written Optuna loop.

Both run N random-sampler queries on the shipped NAS-Bench-201 CIFAR-10 table, side by side in
one process:

- reference: ``optuna.create_study()`` in memory, an objective that suggests the six edges and
  returns ``table[key]`` -- the least a lookup search can cost with Optuna;
- nasblocks: ``nasblocks.search`` on ``search_spaces/nas_bench_201.yaml`` with the random
  sampler: sampling through the space, the key template, the journal storage in OUT (trials
  written in batches), progress, budget; the trial loop is timed from the first trial's start
  to the last one's end (the study's own timestamps), and the whole call separately (opening,
  checks, result files and the report).

    .venv/bin/python benchmarks/table_search.py [--trials 1000]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "search_spaces" / "nas_bench_201.yaml"
TABLE = ROOT / "search_spaces" / "tables" / "nas_bench_201_cifar10.csv"
EDGES = ["edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2"]
OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]


def reference(trials: int) -> float:
    import optuna

    with TABLE.open() as f:
        table = {row["arch"]: float(row["test_acc"]) for row in csv.DictReader(f)}

    def objective(trial):
        e = [trial.suggest_categorical(name, OPS) for name in EDGES]
        return table[f"|{e[0]}~0|+|{e[1]}~0|{e[2]}~1|+|{e[3]}~0|{e[4]}~1|{e[5]}~2|"]

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    start = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    return (time.perf_counter() - start) / trials


def ours(trials: int) -> tuple[float, float]:
    from nasblocks.search import search
    from nasblocks.search.outputs.results import load_study

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        search(
            SPACE,
            overrides={"search.sampler": "random", "search.budget.trials": trials},
            out=tmp,
            progress=False,
        )
        total = time.perf_counter() - start
        done = load_study(Path(tmp)).get_trials(deepcopy=False)
        loop = (
            max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)
        ).total_seconds()
    return loop / trials, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    args = parser.parse_args()
    ref = reference(args.trials)
    loop, total = ours(args.trials)
    ref2 = reference(args.trials)  # again after, so machine load drift shows
    print(f"{args.trials} random queries on the NAS-Bench-201 CIFAR-10 table")
    print(
        f"  hand-written Optuna loop (in memory): {1e3 * ref:.2f} / {1e3 * ref2:.2f} ms per trial"
    )
    print(
        f"  nasblocks search, trial loop:         {1e3 * loop:.2f} ms per trial "
        f"({loop / min(ref, ref2):.2f}x the reference)"
    )
    print(
        f"  nasblocks search, whole call:         {total:.1f} s "
        f"({1e3 * total / args.trials:.2f} ms per trial, report included)"
    )


if __name__ == "__main__":
    main()
