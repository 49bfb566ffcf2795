"""Hardware-aware multi-objective search quality on NAS-Bench-201: accuracy against latency.

Each run is an Optuna study (in-memory, directions maximize / minimize) whose objective
suggests the six edges and returns (one training run's CIFAR-10 validation accuracy, the
cell's latency on a device), as ``search_spaces/nas_bench_201.yaml`` with
``objectives: [val_acc, {metric: DEVICE_ms, table: tables/nas_bench_201_latency.csv}]``
does. The returned front is the non-dominated set of what the search evaluated (chosen on
validation); its hypervolume is taken on *test* accuracy and latency, as a fraction of the
true front's over all 15,625 cells, from the reference point (the table's median test
accuracy, the median latency). Samplers as ``make_sampler`` builds them: random, NSGA-II
(population 50) and multi-objective TPE (``multivariate=True``, 10 start-up trials).

    python benchmarks/mo_quality.py --seeds 4 --queries 100 300
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import optuna

TABLES = Path(__file__).resolve().parents[1] / "search_spaces" / "tables"
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ("edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2")
KEY = "|{edge_1_0}~0|+|{edge_2_0}~0|{edge_2_1}~1|+|{edge_3_0}~0|{edge_3_1}~1|{edge_3_2}~2|"
DEVICES = ("pixel3", "raspi4", "eyeriss", "1080ti_1", "1080ti_256", "gold_6226")
SAMPLERS = ("random", "nsga2", "tpe")

_T: dict[str, object] = {}


def _init() -> None:
    from nasblocks.search.evaluators.table import load_table

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _T["val"] = load_table(TABLES / "nas_bench_201_cifar10_val.csv", "val_acc", "arch")
    _T["test"] = load_table(TABLES / "nas_bench_201_cifar10.csv", "test_acc", "arch")
    for d in DEVICES:
        _T[d] = load_table(TABLES / "nas_bench_201_latency.csv", f"{d}_ms", "arch")


def front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points (maximise the first, minimise the second): sorted
    by latency (then accuracy, best first), a point is on the front when it is more accurate
    than everything faster."""
    order = sorted(range(len(points)), key=lambda i: (points[i][1], -points[i][0]))
    out, best = [], float("-inf")
    for i in order:
        if points[i][0] > best:
            out.append(i)
            best = points[i][0]
    return out


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=50)
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=10, multivariate=True, constant_liar=True
        )


def run_one(sampler: str, device: str, seed: int, checkpoints: tuple[int, ...]) -> dict:
    from nasblocks.search.evaluators.table import make_key, run_index
    from nasblocks.search.outputs.pareto import hypervolume

    val, test, lat = _T["val"], _T["test"], _T[device]
    keys = list(test.runs)  # type: ignore[attr-defined]
    accs = [test.mean(k) for k in keys]  # type: ignore[attr-defined]
    lats = [lat.mean(k) for k in keys]  # type: ignore[attr-defined]
    ref = (statistics.median(accs), statistics.median(lats))
    true = [(accs[i], lats[i]) for i in front(list(zip(accs, lats, strict=True)))]
    best = hypervolume(true, ref, ["maximize", "minimize"])

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        key = make_key(KEY, {e: trial.suggest_categorical(e, OPS) for e in EDGES})
        runs = val.values(key)  # type: ignore[attr-defined]
        return runs[run_index(key, seed, len(runs))], lat.mean(key)  # type: ignore[attr-defined]

    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=make_sampler(sampler, seed)
    )
    start = time.perf_counter()
    study.optimize(objective, n_trials=max(checkpoints))
    seconds = time.perf_counter() - start
    trials = study.trials
    fractions = {}
    for q in checkpoints:
        seen = trials[:q]
        chosen = front([(t.values[0], t.values[1]) for t in seen])
        cells = [make_key(KEY, seen[i].params) for i in chosen]
        on_test = [(test.mean(k), lat.mean(k)) for k in cells]  # type: ignore[attr-defined]
        fractions[q] = hypervolume(on_test, ref, ["maximize", "minimize"]) / best
    return {"sampler": sampler, "device": device, "seed": seed, "hv": fractions, "s": seconds}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--queries", type=int, nargs="+", default=[100, 300])
    p.add_argument("--devices", nargs="+", default=list(DEVICES), choices=DEVICES)
    p.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=SAMPLERS)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    checkpoints = tuple(sorted(args.queries))
    jobs = [
        (s, d, seed, checkpoints)
        for d in args.devices
        for s in args.samplers
        for seed in range(args.seeds)
    ]
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers, initializer=_init) as pool:
        runs = list(pool.map(run_one, *zip(*jobs, strict=True)))
    print(
        f"# optuna {optuna.__version__}, {args.seeds} seeds, queries {list(checkpoints)}, "
        f"{time.perf_counter() - start:.0f} s"
    )
    print("hypervolume of the returned front (chosen on validation, taken on test) / the true")
    print("front's, reference point: the table's median test accuracy and median latency")
    head = " | ".join(f"{s} @{q}" for s in args.samplers for q in checkpoints)
    print(f"| device | {head} |")
    print("|---" * (1 + len(args.samplers) * len(checkpoints)) + "|")
    for d in args.devices:
        cells = []
        for s in args.samplers:
            for q in checkpoints:
                v = [r["hv"][q] for r in runs if r["sampler"] == s and r["device"] == d]
                cells.append(f"{statistics.mean(v):.3f}")
        print(f"| {d} | " + " | ".join(cells) + " |")
    for s in args.samplers:
        secs = statistics.mean(r["s"] for r in runs if r["sampler"] == s)
        print(f"{s}: {secs:.1f} s per run of {max(checkpoints)} queries")


if __name__ == "__main__":
    main()
