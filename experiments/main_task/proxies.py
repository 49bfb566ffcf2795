"""Do zero-cost proxies rank the main job's architectures? (`make search`'s task.)

N architectures are drawn at random from `search_spaces/resnet_like.yaml` (seeded, infeasible
draws skipped), each is trained once on the main task (digits, 25 training images per class,
535 validation images, 8 epochs) at one fixed learning rate, so only the architecture varies,
and scored before training with every proxy of `nasblocks.proxies` on one batch of 64
normalised training images (with their labels for the loss-based ones). Printed: the Spearman
correlation of each proxy with the validation accuracy, with a bootstrap 95% interval.

    .venv/bin/python experiments/main_task/proxies.py --archs 40
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.stats import spearmanr

from nasblocks import proxies
from nasblocks.search.candidate import DataInfo, complete_spec
from nasblocks.search.evaluators.trained import run_trial
from nasblocks.train import DataHandle, build_model
from nasblocks.space import RandomSource, load_space
from nasblocks.spec import SpecError, load_spec
from nasblocks.train import TrainConfig
from nasblocks.train.normalize import BatchNormalize


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", type=int, default=40)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--space", default="search_spaces/resnet_like.yaml")
    args = ap.parse_args()
    torch.set_num_threads(1)
    space = load_space(args.space)
    s = space.settings
    data = DataHandle.from_settings(s.data, s.seed)
    shape, classes = data.info()
    info = DataInfo(shape, classes)
    names = proxies.names()
    rows, seed, start = [], 0, time.perf_counter()
    while len(rows) < args.archs:
        sample = space.sample(RandomSource(1000 + seed))
        seed += 1
        try:
            spec = load_spec(complete_spec(sample.spec, info, s))
        except SpecError:
            continue
        train = {k: v for k, v in sample.train.items() if k != "lr"}
        config = TrainConfig(**{**train, "lr": args.lr, "epochs": s.budget.epochs, "seed": 0})
        split = data.prepared(spec.input_shape).train
        x = BatchNormalize.of(split, torch.device("cpu"), False)(split.images[:64])
        y = split.labels[:64]
        model = build_model(spec, 0)
        scores = {n: proxies.score(model, n, x, y) for n in names}
        acc = run_trial(spec, config, data, keep_weights=False).metrics["val_acc"]
        rows.append((acc, scores))
        print(
            f"{len(rows)}/{args.archs} val_acc {acc:.3f} ({time.perf_counter() - start:.0f}s)",
            flush=True,
        )
    accs = np.array([a for a, _ in rows])
    rng = np.random.default_rng(0)
    print(
        f"\n{len(rows)} architectures, lr {args.lr}, val acc p10/median/p90 "
        f"{np.percentile(accs, 10):.3f} / {np.median(accs):.3f} / {np.percentile(accs, 90):.3f}"
    )
    print("| proxy | Spearman rho with val_acc | bootstrap 95% |")
    print("|---|---:|---:|")
    for n in names:
        v = np.array([sc[n] for _, sc in rows])
        rho = spearmanr(v, accs).statistic
        boot = []
        for _ in range(1000):
            i = rng.integers(0, len(rows), len(rows))
            boot.append(spearmanr(v[i], accs[i]).statistic)
        lo, hi = np.nanpercentile(boot, [2.5, 97.5])
        print(f"| `{n}` | {rho:.2f} | {lo:.2f} .. {hi:.2f} |")


if __name__ == "__main__":
    main()
