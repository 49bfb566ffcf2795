"""Search quality: best-so-far accuracy per query on NAS-Bench-201, for every sampler.

Each run is an Optuna study (in-memory storage, maximize) whose objective suggests the six
edges of a NAS-Bench-201 cell with ``trial.suggest_categorical(edge, OPS)`` and returns the
table's value for that cell: a pure lookup, so the time is the sampler's. A *query* is one
trial: a cell asked for twice counts twice, as in NAS-Bench practice (a good sampler avoids
repeats; the "unique" column counts distinct cells per run). Isomorphic cells are distinct
strings and count as distinct.

Samplers are built as ``nasblocks.search.samplers.make_sampler`` builds them (TPE:
``multivariate=True, constant_liar=True, n_startup_trials=10``; NSGA-II: population 50), the
nasblocks samplers with their defaults. Landscapes besides the table (``--landscapes``), for
checking that settings generalise beyond the one column they could have been tuned on:

- ``table``: the table itself (``--table``).
- ``permuted``: the table with the op names permuted on each edge (a new permutation per
  seed). Samplers that treat choices as unordered (all of these) must see no difference.
- ``penalised``: accuracy minus 0.05 per unit of conv cost (3x3 conv = 9 units, 1x1 = 1), a
  size-constrained objective whose optimum is a different, cheaper cell.
- ``pairwise``: a random landscape over the same six 5-way edges, a sum of per-edge terms
  and all 15 pairwise interaction terms, Gaussian, the interactions carrying as much
  variance as the per-edge terms (a new landscape per seed).
- ``iid``: an independent random value per cell: no structure to exploit; nothing should
  beat random by more than avoiding repeats.

Besides the value, each run's best is ranked in its landscape (1 = optimum; ties share the
best rank) so landscapes of different scales compare.

Two protocols (``--protocol``) on the ``table`` landscape:

- ``test``: the sampler sees the test accuracy itself (``--table``): how well a sampler
  climbs a known landscape, but it selects on the test set.
- ``val``: the benchmark's protocol. The sampler sees one training run's validation accuracy
  (``--val-table``: 2 or 3 runs per cell; the run is chosen from the seed and the cell, as
  ``nasblocks.search.evaluators.table.run_index`` chooses it), the best so far is the cell
  with the highest validation accuracy seen, and what is reported is that cell's test
  accuracy.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import optuna

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ("edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2")
CHECKPOINTS = (10, 25, 50, 100, 200)
DEFAULT_TABLE = (
    Path(__file__).resolve().parents[1] / "search_spaces" / "tables" / "nas_bench_201_cifar10.csv"
)
DEFAULT_VAL_TABLE = DEFAULT_TABLE.with_name("nas_bench_201_cifar10_val.csv")
LANDSCAPES = ("table", "permuted", "penalised", "pairwise", "iid")
PROTOCOLS = ("test", "val")

Cell = tuple[str, ...]


def parse_arch(arch: str) -> Cell:
    """``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` -> the ops on EDGES, in order."""
    ops: dict[str, str] = {}
    for node, group in enumerate(arch.strip("|").split("|+|"), start=1):
        for item in group.split("|"):
            op, source = item.split("~")
            ops[f"edge_{node}_{source}"] = op
    return tuple(ops[e] for e in EDGES)


def load_table(path: Path) -> dict[Cell, float]:
    with open(path, newline="") as f:
        table = {parse_arch(row["arch"]): float(row["test_acc"]) for row in csv.DictReader(f)}
    if len(table) != len(OPS) ** len(EDGES):
        raise SystemExit(f"{path}: {len(table)} cells, expected {len(OPS) ** len(EDGES)}")
    return table


def landscape(name: str, table: dict[Cell, float], seed: int) -> dict[Cell, float]:
    """The values a run with this seed searches (see the module docstring)."""
    rng = np.random.RandomState(10_000 + seed)  # apart from the samplers' seeds
    cells = list(itertools.product(OPS, repeat=len(EDGES)))
    if name == "table":
        return table
    if name == "permuted":
        perms = [dict(zip(OPS, rng.permutation(OPS), strict=True)) for _ in EDGES]
        return {c: table[tuple(p[o] for p, o in zip(perms, c, strict=True))] for c in cells}
    if name == "penalised":
        cost = {"nor_conv_3x3": 9, "nor_conv_1x1": 1}
        return {c: v - 0.05 * sum(cost.get(o, 0) for o in c) for c, v in table.items()}
    if name == "pairwise":
        k, n = len(OPS), len(EDGES)
        unary = rng.normal(size=(n, k))
        pairs = list(itertools.combinations(range(n), 2))
        scale = np.sqrt(n / len(pairs))  # pairwise variance = per-edge variance
        binary = {p: rng.normal(scale=scale, size=(k, k)) for p in pairs}
        x = np.array(list(itertools.product(range(k), repeat=n)))  # (cells, edges)
        v = unary[np.arange(n), x].sum(1)
        for (i, j), b in binary.items():
            v += b[x[:, i], x[:, j]]
        return dict(zip(cells, v.tolist(), strict=True))
    if name == "iid":
        return dict(zip(cells, rng.uniform(size=len(cells)).tolist(), strict=True))
    raise ValueError(f"unknown landscape {name!r}; valid: {', '.join(LANDSCAPES)}")


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """The samplers as nasblocks.search.samplers.make_sampler builds them."""
    from nasblocks.search.samplers.evolution import RegularizedEvolutionSampler
    from nasblocks.search.samplers.local_search import LocalSearchSampler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        factories: dict[str, Callable[[], optuna.samplers.BaseSampler]] = {
            "random": lambda: optuna.samplers.RandomSampler(seed=seed),
            "tpe": lambda: optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=10, multivariate=True, constant_liar=True
            ),
            "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed, population_size=50),
            "evolution": lambda: RegularizedEvolutionSampler(10, 3, seed=seed),
            "evolution_balanced": lambda: RegularizedEvolutionSampler(
                10, 3, seed=seed, startup="balanced"
            ),
            "local_search": lambda: LocalSearchSampler(seed=seed),
            "local_search_best": lambda: LocalSearchSampler(seed=seed, first_improvement=False),
            "local_search_perturb": lambda: LocalSearchSampler(seed=seed, restart="perturb"),
        }
        return factories[name]()


SAMPLERS = (
    "random",
    "tpe",
    "nsga2",
    "evolution",
    "evolution_balanced",
    "local_search",
    "local_search_best",
    "local_search_perturb",
)

_TABLE: dict[Cell, float] = {}
_VAL: dict[Cell, tuple[str, tuple[float, ...]]] = {}  # cell -> (arch string, runs by seed)


def load_val_table(path: Path) -> dict[Cell, tuple[str, tuple[float, ...]]]:
    from nasblocks.search.evaluators.table import load_table as nasblocks_table

    table = nasblocks_table(path, "val_acc", "arch", "seed")
    return {parse_arch(arch): (arch, runs) for arch, runs in table.runs.items()}


def _init(path: Path, val_path: Path | None = None) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _TABLE.update(load_table(path))
    if val_path is not None:
        _VAL.update(load_val_table(val_path))


def one_run(cell: Cell, seed: int) -> float:
    """The validation accuracy a search with ``seed`` reads for ``cell`` (one run)."""
    from nasblocks.search.evaluators.table import run_index

    arch, runs = _VAL[cell]
    return runs[run_index(arch, seed, len(runs))]


def run_one(sampler: str, land: str, seed: int, queries: int, protocol: str = "test") -> dict:
    """One study: the value of every query in order, distinct cells, sampler seconds."""
    values = landscape(land, _TABLE, seed)
    seen = (lambda cell: one_run(cell, seed)) if protocol == "val" else values.__getitem__

    def objective(trial: optuna.Trial) -> float:
        return seen(tuple(trial.suggest_categorical(e, OPS) for e in EDGES))

    study = optuna.create_study(direction="maximize", sampler=make_sampler(sampler, seed))
    start = time.perf_counter()
    study.optimize(objective, n_trials=queries)
    seconds = time.perf_counter() - start
    trials = study.get_trials(deepcopy=False)
    if protocol == "val":  # the test value of the cell with the best validation value so far
        best_list, top, pick = [], -np.inf, 0.0
        for t in trials:
            if t.value > top:
                top = t.value
                pick = values[tuple(t.params[e] for e in EDGES)]
            best_list.append(pick)
        best = np.array(best_list)
    else:
        best = np.maximum.accumulate(np.array([t.value for t in trials]))
    ranked = np.sort(np.fromiter(values.values(), float))[::-1]
    # rank of the best so far: 1 + cells strictly better
    rank = 1 + np.searchsorted(-ranked, -best, side="left")
    unique = len({tuple(t.params[e] for e in EDGES) for t in trials})
    return {
        "sampler": sampler,
        "protocol": protocol,
        "landscape": land,
        "seed": seed,
        "best": best,
        "rank": rank,
        "unique": unique,
        "seconds": seconds,
        "optimum": float(ranked[0]),
    }


def summarise(runs: list[dict], key: str, checkpoints: list[int], fmt: str) -> list[str]:
    lines = [
        "| sampler | "
        + " | ".join(f"{q} queries" for q in checkpoints)
        + " | unique/run | s/run |",
        "|---" * (len(checkpoints) + 3) + "|",
    ]
    for name in dict.fromkeys(r["sampler"] for r in runs):
        rs = [r for r in runs if r["sampler"] == name]
        cells = []
        for q in checkpoints:
            vals = np.array([r[key][q - 1] for r in rs if len(r[key]) >= q])
            cells.append(f"{vals.mean():{fmt}} ± {vals.std():{fmt}}" if len(vals) else "—")
        unique = np.mean([r["unique"] / len(r[key]) for r in rs])
        secs = np.mean([r["seconds"] for r in rs])
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {unique:.1%} | {secs:.2f} |")
    return lines


def plot(runs: list[dict], lands: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(len(lands), 2)
    rows = -(-len(lands) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 4.5 * rows), squeeze=False)
    for ax in axes.flat[len(lands) :]:
        ax.set_visible(False)
    for ax, land in zip(axes.flat, lands, strict=False):
        rs = [r for r in runs if r["landscape"] == land]
        key = "best" if land == "table" else "rank"
        for name in dict.fromkeys(r["sampler"] for r in rs):
            curves = np.array([r[key] for r in rs if r["sampler"] == name])
            x = np.arange(1, curves.shape[1] + 1)
            mean = curves.mean(0)
            if key == "best":  # ± 1 std
                low, high = mean - curves.std(0), mean + curves.std(0)
            else:  # ranks are skewed and positive: the interquartile range
                low, high = np.percentile(curves, [25, 75], axis=0)
            ax.plot(x, mean, label=name)
            ax.fill_between(x, low, high, alpha=0.08)
        ax.set_xscale("log")
        ax.set_xlim(5, len(rs[0][key]))
        ax.set_xlabel("queries")
        if key == "best":
            ax.set_ylabel("best test accuracy so far (%): mean ± std")
            ax.set_ylim(93.0, rs[0]["optimum"] + 0.05)
            ax.axhline(rs[0]["optimum"], color="grey", lw=0.8, ls="--")
        else:
            ax.set_ylabel("rank of the best so far (1 = optimum): mean, IQR band")
            ax.set_yscale("log")
            ax.set_ylim(bottom=0.9)
        ax.set_title(land)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--table", type=Path, default=DEFAULT_TABLE)
    p.add_argument("--val-table", type=Path, default=DEFAULT_VAL_TABLE)
    p.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=PROTOCOLS)
    p.add_argument("--seeds", type=int, default=50)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--tpe-queries", type=int, default=None, help="cap for tpe (it is slow)")
    p.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=SAMPLERS)
    p.add_argument("--landscapes", nargs="+", default=["table"], choices=LANDSCAPES)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--plot", type=Path, default=Path(__file__).with_name("search_quality.png"))
    args = p.parse_args()

    jobs = [
        (s, land, seed, args.tpe_queries or args.queries if s == "tpe" else args.queries, pr)
        for pr in args.protocols
        for land in (args.landscapes if pr == "test" else ["table"])
        for s in args.samplers
        for seed in range(args.seeds)
    ]
    val = args.val_table if "val" in args.protocols else None
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers, initializer=_init, initargs=(args.table, val)) as pool:
        runs = list(pool.map(run_one, *zip(*jobs, strict=True), chunksize=4))
    checkpoints = [q for q in CHECKPOINTS if q <= args.queries]
    print(
        f"# optuna {optuna.__version__}, {args.seeds} seeds, {args.queries} queries, "
        f"table {args.table}, {os.cpu_count()} cpus, {time.perf_counter() - start:.0f} s"
    )
    if "val" in args.protocols:
        rs = [r for r in runs if r["protocol"] == "val"]
        print(
            "\n## table, the benchmark's protocol: test accuracy of the cell with the best "
            "validation accuracy (one run) so far, mean ± std over seeds"
        )
        print("\n".join(summarise(rs, "best", checkpoints, ".2f")))
    tested = [r for r in runs if r["protocol"] == "test"]
    for land in args.landscapes if tested else []:
        rs = [r for r in tested if r["landscape"] == land]
        print(f"\n## {land}, searched on test: best value so far, mean ± std over seeds")
        print("\n".join(summarise(rs, "best", checkpoints, ".2f")))
        print(f"\n## {land}: rank of the best so far (1 = optimum), mean ± std")
        print("\n".join(summarise(rs, "rank", checkpoints, ".1f")))
    if tested:
        plot(tested, args.landscapes, args.plot)
    if tested:
        print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
