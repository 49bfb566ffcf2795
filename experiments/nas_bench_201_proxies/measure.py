"""Data-free zero-cost proxies of NAS-Bench-201 networks built by nasblocks, against the table.

For a uniform random sample of the 15,625 cells (seeded), each network is built from
``search_spaces/nas_bench_201.yaml`` (``nasblocks.build``, PyTorch's default init under a fixed
seed) and scored with the data-free proxies of ``nasblocks.proxies``: ``params``, ``flops``
(multiply-accumulates of one 32x32 image) and ``synflow``. Scores go to ``scores.csv`` (one row
per cell, appended as they come, so an interrupted run resumes); ``--report`` prints the
Spearman rank correlation of each proxy with the CIFAR-10 test accuracy of the shipped table,
with a bootstrap 95% interval.

    .venv/bin/python experiments/nas_bench_201_proxies/measure.py --n 3000
    .venv/bin/python experiments/nas_bench_201_proxies/measure.py --report
"""

from __future__ import annotations

import argparse
import csv
import random
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SPACE = ROOT / "search_spaces" / "nas_bench_201.yaml"
TABLE = ROOT / "search_spaces" / "tables" / "nas_bench_201_cifar10.csv"
SCORES = HERE / "scores.csv"
PROXIES = ["params", "flops", "synflow"]
COLUMNS = ["arch", *PROXIES]


def cells(n: int, seed: int) -> list[dict[str, str]]:
    """``n`` distinct cells (edge -> op), a seeded uniform sample of the space."""
    import itertools

    from nasblocks.space import load_space

    space = load_space(SPACE)
    names = [node.name for node in space.nodes]
    every = list(itertools.product(*(node.labels for node in space.nodes)))
    random.Random(seed).shuffle(every)
    return [dict(zip(names, ops, strict=True)) for ops in every[:n]]


def measure(n: int, seed: int) -> None:
    import torch

    import nasblocks
    from nasblocks import proxies
    from nasblocks.search.evaluators.table import make_key
    from nasblocks.space import FixedSource, load_space

    torch.set_num_threads(1)
    space = load_space(SPACE)
    key = space.settings.evaluate.key
    done = set()
    if SCORES.exists():
        with SCORES.open() as f:
            done = {row["arch"] for row in csv.DictReader(f)}
    new = not SCORES.exists()
    start = time.perf_counter()
    with SCORES.open("a", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        if new:
            writer.writeheader()
        todo = [c for c in cells(n, seed) if make_key(key, c) not in done]
        for i, cell in enumerate(todo, 1):
            torch.manual_seed(0)
            model = nasblocks.build(space.sample(FixedSource(cell)).spec)
            x = torch.zeros(1, 3, 32, 32)
            row = {"arch": make_key(key, cell)}
            row |= {name: proxies.score(model, name, x) for name in PROXIES}
            writer.writerow(row)
            f.flush()
            if i % 100 == 0:
                rate = (time.perf_counter() - start) / i
                print(f"{i}/{len(todo)} cells, {rate:.2f} s each", flush=True)


def report(boot: int = 1000) -> None:
    import numpy as np
    from scipy.stats import spearmanr

    with TABLE.open() as f:
        acc = {row["arch"]: float(row["test_acc"]) for row in csv.DictReader(f)}
    with SCORES.open() as f:
        rows = list(csv.DictReader(f))
    y = np.array([acc[r["arch"]] for r in rows])
    rng = np.random.default_rng(0)
    print(f"{len(rows)} NAS-Bench-201 cells (uniform sample), CIFAR-10 test accuracy (200 epochs)")
    print("| proxy | Spearman rho | bootstrap 95% |")
    print("|---|---:|---:|")
    for name in PROXIES:
        x = np.array([float(r[name]) for r in rows])
        rho = spearmanr(x, y).statistic
        idx = rng.integers(0, len(rows), size=(boot, len(rows)))
        sample = [spearmanr(x[i], y[i]).statistic for i in idx]
        lo, hi = np.percentile(sample, [2.5, 97.5])
        print(f"| `{name}` | {rho:.3f} | {lo:.3f} .. {hi:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="cells to score")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", action="store_true", help="print the correlations")
    args = parser.parse_args()
    if args.report:
        report()
    else:
        measure(args.n, args.seed)


if __name__ == "__main__":
    main()
