"""The GPU measurements of the one-shot issue, in one process (called by gpu_check.sh).

1. Trained trials per hour of the CIFAR ResNet space at 32 px (resnet_cifar_oneshot.yaml
   searched by training each trial, its supernet section dropped), with 1 and with 4
   concurrent trials (``--workers``), each for ``--trial-minutes`` of wall time.
2. One NAS-Bench-201 supernet on full CIFAR-10 (train/ of DATA split in halves, the
   benchmark's protocol): epochs per minute, then the one-shot search's returned cell and
   its table test accuracy.

    python3 benchmarks/gpu_measure.py --data /tmp/cifar10 --device cuda
    python3 benchmarks/gpu_measure.py --data /tmp/cifar10 --device cpu --smoke   # exercised
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEY = "|{edge_1_0}~0|+|{edge_2_0}~0|{edge_2_1}~1|+|{edge_3_0}~0|{edge_3_1}~1|{edge_3_2}~2|"


def trials_per_hour(data: str, device: str, workers: int, minutes: float, out: Path, smoke: bool):
    from nasblocks.search import search
    from nasblocks.space import load_space

    raw = load_space(ROOT / "search_spaces" / "resnet_cifar_oneshot.yaml").raw
    raw = {**raw, "search": {k: v for k, v in raw["search"].items() if k != "supernet"}}
    raw["search"]["train"] = {**raw["search"]["train"], "device": device}
    raw["search"]["budget"] = {"trials": 1000, "epochs": 1, "timeout": minutes * 60}
    raw["search"]["data"] = {"dataset": f"imagefolder:{data}", "val_fraction": 0.1}
    raw["search"]["sampler"] = "random"
    if smoke:
        raw["search"]["train"]["max_train_batches"] = 2
    space_file = out / f"resnet_trained_{workers}.yaml"
    import yaml

    space_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    start = time.perf_counter()
    outcome = search(space_file, out=out / f"trained_{workers}", workers=workers, progress=False)
    hours = (time.perf_counter() - start) / 3600
    return {"workers": workers, "trials": outcome.finished, "per_hour": outcome.finished / hours}


def supernet_run(data: str, device: str, epochs: int, out: Path, smoke: bool) -> dict:
    from nasblocks.search import search
    from nasblocks.search.evaluators.table import make_key
    from nasblocks.search.outputs.results import load_study

    overrides = {
        "search.data.dataset": f"imagefolder:{data}",
        "search.supernet.epochs": epochs,
        "search.supernet.train.device": device,
        "search.budget.trials": 10 if smoke else 100,
    }
    if smoke:
        overrides["search.supernet.train.max_train_batches"] = 2
    space = ROOT / "search_spaces" / "nas_bench_201_oneshot.yaml"
    start = time.perf_counter()
    outcome = search(space, out=out / "nb201", overrides=overrides, progress=True)
    elapsed = time.perf_counter() - start
    record = json.loads((out / "nb201" / "supernet.json").read_text())
    train_s = sum(h["epoch_time"] for h in record["history"])
    with open(ROOT / "search_spaces" / "tables" / "nas_bench_201_cifar10.csv") as f:
        table = {r["arch"]: float(r["test_acc"]) for r in csv.DictReader(f)}
    best = load_study(out / "nb201").trials[outcome.best_trial]
    cell = make_key(KEY, best.params)
    return {
        "epochs": epochs,
        "epochs_per_minute": epochs / (train_s / 60),
        "search_s": elapsed,
        "returned": cell,
        "table_test_acc": table[cell],
        "history": record["history"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--trial-minutes", type=float, default=1.0)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--out", default="/tmp/gpu_measure")
    p.add_argument("--smoke", action="store_true", help="two batches an epoch: a dry run")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"device": args.device}
    import torch

    if torch.cuda.is_available():
        results["gpu"] = torch.cuda.get_device_name()
    results["trained"] = [
        trials_per_hour(args.data, args.device, w, args.trial_minutes, out, args.smoke)
        for w in (1, 4)
    ]
    print(json.dumps(results["trained"]), flush=True)
    results["supernet"] = supernet_run(args.data, args.device, args.epochs, out, args.smoke)
    text = json.dumps(results, indent=1)
    print(text)
    (out / "gpu_measure.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
