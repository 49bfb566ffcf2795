"""One-shot NAS-Bench-201 on real CIFAR-10: the supernet's ranking and the search's pick,
both measured against the benchmark's table (which nasblocks did not write).

    python experiments/oneshot/nas_bench_201.py --data /tmp/cifar10 --epochs 12 --seeds 0

DATA holds train/<class>/*.jpg and test/<class>/*.jpg (../shared/cifar10 unpacked). The
benchmark's protocol: the supernet trains on half of the training images and subnets are
scored on the other half (val_fraction 0.5). For each seed: the search of
search_spaces/nas_bench_201_oneshot.yaml (supernet training + 100 local-search queries),
then 200 random cells scored by the same supernet; Kendall tau and Spearman between those
scores and the table's CIFAR-10 test accuracy, and the table accuracy of the returned cell.
Writes results.json beside this file (appending one record per run) and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPACE = ROOT / "search_spaces" / "nas_bench_201_oneshot.yaml"
TABLE = ROOT / "search_spaces" / "tables" / "nas_bench_201_cifar10.csv"
KEY = "|{edge_1_0}~0|+|{edge_2_0}~0|{edge_2_1}~1|+|{edge_3_0}~0|{edge_3_1}~1|{edge_3_2}~2|"


def table() -> dict[str, float]:
    import csv

    with open(TABLE) as f:
        return {row["arch"]: float(row["test_acc"]) for row in csv.DictReader(f)}


def _gdas(supernet: dict, accs: dict[str, float]) -> dict:
    """GDAS's own answer (the argmax of its architecture weights) and the weights."""
    if "architecture" not in supernet:
        return {}
    from nasblocks.search.evaluators.table import make_key

    argmax = make_key(KEY, supernet["architecture"])
    return {
        "gdas_argmax": argmax,
        "gdas_argmax_table_test_acc": accs[argmax],
        "alpha": supernet["alpha"],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="folder with train/ and test/")
    p.add_argument("--epochs", type=int, default=None, help="supernet epochs (space default)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--archs", type=int, default=200, help="random cells for the ranking")
    p.add_argument("--trials", type=int, default=None)
    p.add_argument("--strategy", choices=["spos", "sandwich", "gdas"], default=None)
    p.add_argument("--out", default="/tmp/nb201_oneshot")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--smoke", action="store_true", help="a few batches: check the script runs")
    args = p.parse_args()

    import torch
    from scipy import stats as sps

    from nasblocks.search import search
    from nasblocks.search.evaluators.table import make_key
    from nasblocks.space import RandomSource
    from nasblocks.supernet import evaluator

    torch.set_num_threads(args.threads)
    accs = table()
    records = []
    for seed in args.seeds:
        overrides = {
            "search.data.dataset": f"imagefolder:{args.data}",
            "search.seed": seed,
            "search.threads": args.threads,
        }
        if args.epochs is not None:
            overrides["search.supernet.epochs"] = args.epochs
        if args.trials is not None:
            overrides["search.budget.trials"] = args.trials
        if args.strategy is not None:
            overrides["search.supernet.strategy"] = args.strategy
        if args.smoke:
            overrides["search.supernet.train.max_train_batches"] = 3
        out = Path(args.out) / f"{args.strategy or 'default'}-seed{seed}"
        start = time.perf_counter()
        outcome = search(SPACE, out=out, overrides=overrides, progress=True)
        search_s = time.perf_counter() - start
        from nasblocks.search.outputs.results import load_study

        study = load_study(out)
        best = study.trials[outcome.best_trial]
        returned = make_key(KEY, best.params)
        scorer = next(iter(evaluator._SCORERS.values()))
        space = scorer.net.space
        start = time.perf_counter()
        ours, truth = [], []
        for i in range(args.archs):
            sample = space.sample(RandomSource(10_000 + i))
            metrics, _ = scorer.score(sample)
            ours.append(metrics["val_acc"])
            truth.append(accs[make_key(KEY, sample.params)])
        rank_s = time.perf_counter() - start
        tau = sps.kendalltau(ours, truth).statistic
        rho = sps.spearmanr(ours, truth).statistic
        supernet = json.loads((out / "supernet.json").read_text())
        record = {
            "seed": seed,
            "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
            "date": time.strftime("%Y-%m-%d"),
            "supernet_epochs": supernet["epochs"],
            "strategy": supernet["strategy"],
            "search_s": round(search_s, 1),
            "supernet_train_s": round(supernet.get("train_time_s", float("nan")), 1),
            "trials": outcome.finished,
            "returned": returned,
            "returned_val_acc": outcome.best_values[0],
            "returned_table_test_acc": accs[returned],
            "kendall_tau": round(tau, 4),
            "spearman": round(rho, 4),
            "ranking_archs": args.archs,
            "ranking_s": round(rank_s, 1),
            **_gdas(supernet, accs),
            "history": [
                {k: round(v, 4) for k, v in h.items() if k in ("epoch", "train_loss", "val_acc")}
                for h in supernet["history"]
            ],
        }
        records.append(record)
        print(json.dumps(record), flush=True)
        evaluator._SCORERS.clear()
    results = Path(__file__).with_name("results.json")
    if not args.smoke:  # a smoke run checks the script, it measures nothing
        old = json.loads(results.read_text()) if results.exists() else []
        results.write_text(json.dumps(old + records, indent=1) + "\n")
    picked = [r["returned_table_test_acc"] for r in records]
    print(
        f"returned cell: {statistics.mean(picked):.2f}"
        + (f" +- {statistics.stdev(picked):.2f}" if len(picked) > 1 else "")
        + f" over {len(picked)} seed(s); tau {[r['kendall_tau'] for r in records]}, "
        f"spearman {[r['spearman'] for r in records]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
