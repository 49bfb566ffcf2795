"""Proxy warm-up on NAS-Bench-201: the same sampler with and without ``search.warmup``.

A run with warm-up does what :mod:`nasblocks.search.samplers.warmup` does: draw ``--candidates``
random cells, rank them by a zero-cost proxy, queue the ``keep`` (10) best with
``Study.enqueue_trial`` as the study's first trials, then let the sampler go on. Without
warm-up the sampler starts as it always does. Both spend the same number of table queries
(the proxy's scoring is not a query). The proxy scores are those measured on networks built by
nasblocks (``experiments/nas_bench_201_proxies/scores.csv``, a seeded uniform sample of the
space): candidates are drawn from that sample, which is itself a uniform draw of the space.

    .venv/bin/python benchmarks/proxy_warmup.py --seeds 100 --proxy synflow --candidates 200
"""

from __future__ import annotations

import argparse
import csv
import warnings
from pathlib import Path

import numpy as np
import optuna

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "search_spaces" / "tables" / "nas_bench_201_cifar10.csv"
SCORES = ROOT / "experiments" / "nas_bench_201_proxies" / "scores.csv"
EDGES = ["edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2"]
OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
CHECKPOINTS = (10, 25, 50, 100)


def parse(arch: str) -> dict[str, str]:
    ops = {}
    for node, group in enumerate(arch.strip("|").split("|+|"), start=1):
        for item in group.split("|"):
            op, source = item.split("~")
            ops[f"edge_{node}_{source}"] = op
    return ops


def key(p: dict[str, str]) -> str:
    e = [p[name] for name in EDGES]
    return f"|{e[0]}~0|+|{e[1]}~0|{e[2]}~1|+|{e[3]}~0|{e[4]}~1|{e[5]}~2|"


def sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    from nasblocks.search.samplers.evolution import RegularizedEvolutionSampler
    from nasblocks.search.samplers.local_search import LocalSearchSampler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return {
            "random": lambda: optuna.samplers.RandomSampler(seed=seed),
            "local_search": lambda: LocalSearchSampler(n_startup_trials=10, seed=seed),
            "evolution": lambda: RegularizedEvolutionSampler(10, 3, seed=seed),
            "tpe": lambda: optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=10, multivariate=True, constant_liar=True
            ),
        }[name]()


def run(name, seed, table, pool, proxy, candidates, keep, queries) -> list[float]:
    study = optuna.create_study(direction="maximize", sampler=sampler(name, seed))
    if candidates:
        rng = np.random.default_rng(20_000 + seed)
        drawn = [pool[i] for i in rng.choice(len(pool), size=candidates, replace=False)]
        drawn.sort(key=lambda row: -row[proxy])  # stable: ties keep the drawing order
        for row in drawn[:keep]:
            study.enqueue_trial(parse(row["arch"]))

    def objective(trial):
        return table[key({e: trial.suggest_categorical(e, OPS) for e in EDGES})]

    study.optimize(objective, n_trials=queries)
    return list(np.maximum.accumulate([t.value for t in study.trials]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--proxy", default="synflow")
    parser.add_argument("--candidates", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--keep", type=int, default=10)
    parser.add_argument("--samplers", nargs="+", default=["random", "local_search", "evolution"])
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with TABLE.open() as f:
        table = {row["arch"]: float(row["test_acc"]) for row in csv.DictReader(f)}
    with SCORES.open() as f:
        pool = [{**row, args.proxy: float(row[args.proxy])} for row in csv.DictReader(f)]
    queries = max(CHECKPOINTS)
    print(
        f"{args.seeds} seeds, {len(pool)} proxy-scored cells, proxy {args.proxy}, keep {args.keep}"
    )
    head = " | ".join(f"{q} queries" for q in CHECKPOINTS)
    print(f"| sampler | warm-up | {head} |")
    print("|---|---|" + "---:|" * len(CHECKPOINTS))
    for name in args.samplers:
        for n in [0, *args.candidates]:
            curves = np.array(
                [
                    run(name, s, table, pool, args.proxy, n, args.keep, queries)
                    for s in range(args.seeds)
                ]
            )
            cells = [
                f"{curves[:, q - 1].mean():.2f} ± {curves[:, q - 1].std():.2f}"
                for q in CHECKPOINTS
            ]
            label = f"{args.proxy}, {n} candidates" if n else "none"
            print(f"| {name} | {label} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
