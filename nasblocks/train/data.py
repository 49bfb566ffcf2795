"""Datasets as fixed train / validation / test splits, ready for a trial to train on.

Every dataset here but ``imagefolder`` is small enough to live as one tensor: it is read once,
kept as ``uint8`` (or ``float`` in [0, 1]) and :func:`prepare` moves it to the device in one
copy, so training indexes device memory and needs no ``DataLoader``. ``imagefolder`` stays on
disk and is read by a ``DataLoader``.

Splits are fixed by ``seed``: the validation split is ``val_fraction`` of the training images,
stratified by class; datasets without an official test split (``digits``, ``synthetic``, a
flat ``imagefolder``) first hold out ``test_fraction`` (15 %) of all images, stratified, as
test. ``digits`` with the defaults: 1375 train / 153 val / 269 test (≈ 76 / 9 / 15 %).

Files follow torchvision's layout, so a folder torchvision filled works as ``root``
(default ``$NASBLOCKS_DATA`` or ``~/.cache/nasblocks/datasets``)::

    cifar10        ROOT/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}
    cifar100       ROOT/cifar-100-python/{train, test, meta}
    mnist          ROOT/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
    fashion_mnist  ROOT/FashionMNIST/raw/ (same four files)
    svhn           ROOT/{train_32x32.mat, test_32x32.mat}
    imagefolder:PATH  PATH/CLASS/IMAGE, or PATH/{train,test}[,val]/CLASS/IMAGE
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from nasblocks.errors import NasBlocksError

Shape3 = tuple[int, int, int]

TORCHVISION_SETS = ("cifar10", "cifar100", "mnist", "fashion_mnist", "svhn")
DATASETS = ("digits", "synthetic", *TORCHVISION_SETS, "imagefolder:PATH")


class DatasetError(NasBlocksError):
    """A dataset that cannot be loaded: unknown name, missing or unreadable files, bad split."""


@dataclasses.dataclass(frozen=True)
class TensorData:
    """Images and labels of one split held in memory.

    ``images`` is ``(N, C, H, W)``: ``uint8`` (0..255) or float in [0, 1] as loaded, float
    normalised once :func:`prepare` has run; ``labels`` is ``(N,)`` int64.
    """

    images: Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        if self.images.dim() != 4 or self.labels.shape != (self.images.shape[0],):
            raise DatasetError(
                f"images must be (N, C, H, W) and labels (N,), got {tuple(self.images.shape)} "
                f"and {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return self.labels.shape[0]

    def to(self, device: torch.device | str | None) -> TensorData:
        if device is None:
            return self
        return TensorData(self.images.to(device), self.labels.to(device))

    def subset(self, index: Tensor) -> TensorData:
        return TensorData(self.images[index], self.labels[index])


Split = TensorData | Dataset
"""A split is a :class:`TensorData` (small datasets) or a map-style ``Dataset`` of
``(image (C, H, W) float tensor, label int)`` pairs (files read on demand)."""


@dataclasses.dataclass(frozen=True)
class DatasetSplits:
    """One dataset cut into fixed train / val / test splits.

    ``mean`` and ``std`` are the per-channel statistics of the train split that the images were
    normalised with; they are ``None`` until :func:`prepare` has run.
    """

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    input_shape: Shape3
    classes: tuple[str, ...] = ()
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @property
    def prepared(self) -> bool:
        return self.mean is not None

    @property
    def in_memory(self) -> bool:
        return isinstance(self.train, TensorData)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def default_root() -> Path:
    return Path(os.environ.get("NASBLOCKS_DATA", "~/.cache/nasblocks/datasets")).expanduser()


def load_dataset(
    name: str,
    root: str | Path | None = None,
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.15,
    download: bool = True,
    synthetic_shape: Sequence[int] = (3, 32, 32),
    synthetic_classes: int = 10,
    synthetic_size: int = 2000,
) -> DatasetSplits:
    """Load ``name`` (one of :data:`DATASETS`) as fixed splits drawn from ``seed``.

    ``download`` lets torchvision fetch missing files; when they are missing and cannot be
    fetched, :class:`DatasetError` says which files to put where. ``synthetic_*`` shape the
    ``synthetic`` dataset (``synthetic_size`` images in all, test included).
    """
    for label, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < fraction < 1.0:
            raise DatasetError(f"{label} must be between 0 and 1 (exclusive), got {fraction}")
    base = Path(root).expanduser() if root is not None else default_root()
    if name == "digits":
        pool, test, classes = _digits(), None, tuple(str(i) for i in range(10))
    elif name == "synthetic":
        pool, test = _synthetic(synthetic_shape, synthetic_classes, synthetic_size, seed), None
        classes = tuple(f"class_{i}" for i in range(synthetic_classes))
    elif name in TORCHVISION_SETS:
        from nasblocks.train._torchvision_sets import load_torchvision

        pool, test, classes = load_torchvision(name, base, download=download)
    elif name.startswith("imagefolder:"):
        from nasblocks.train._imagefolder import load_imagefolder

        path = Path(name.partition(":")[2]).expanduser()
        return load_imagefolder(path, seed=seed, val_fraction=val_fraction, test=test_fraction)
    else:
        close = difflib.get_close_matches(name, DATASETS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DatasetError(f"unknown dataset {name!r}{hint}; known: {', '.join(DATASETS)}")
    if test is None:
        rest, held = stratified_split(pool.labels, test_fraction, seed)
        pool, test = pool.subset(rest), pool.subset(held)
    train_idx, val_idx = stratified_split(pool.labels, val_fraction, seed)
    return DatasetSplits(
        name=name,
        train=pool.subset(train_idx),
        val=pool.subset(val_idx),
        test=test,
        num_classes=len(classes),
        input_shape=tuple(pool.images.shape[1:]),
        classes=classes,
    )


def stratified_split(labels: Tensor, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Indices ``(rest, held)``: ``held`` takes ``round(fraction * n_c)`` of each class c.

    The draw depends on ``seed`` alone, so a split is the same on every machine and run.
    """
    generator = torch.Generator().manual_seed(seed)
    labels = labels.cpu()
    rest, held = [], []
    for cls in torch.unique(labels).tolist():
        idx = (labels == cls).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=generator)]
        cut = round(fraction * len(idx))
        held.append(idx[:cut])
        rest.append(idx[cut:])
    rest_idx, held_idx = torch.cat(rest).sort().values, torch.cat(held).sort().values
    if len(held_idx) == 0 or len(rest_idx) == 0:
        raise DatasetError(
            f"{len(labels)} images are too few to hold out a fraction of {fraction} per class"
        )
    return rest_idx, held_idx


def _digits() -> TensorData:
    """scikit-learn's bundled 8x8 digits (1797 images, pixel values 0..16), offline."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).div_(16.0).unsqueeze(1)
    return TensorData(images, torch.tensor(digits.target, dtype=torch.int64))


def _synthetic(shape: Sequence[int], num_classes: int, size: int, seed: int) -> TensorData:
    """Learnable noise: each class is a smooth random template, each image one plus noise."""
    if len(shape) != 3 or min(shape) < 1 or num_classes < 2 or size < 2 * num_classes:
        raise DatasetError(
            f"synthetic needs a (C, H, W) shape, at least 2 classes and 2 images per class; "
            f"got shape {tuple(shape)}, {num_classes} classes, {size} images"
        )
    channels, height, width = (int(s) for s in shape)
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(
        num_classes, channels, max(1, height // 4), max(1, width // 4), generator=generator
    )
    templates = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    labels = torch.arange(size) % num_classes
    labels = labels[torch.randperm(size, generator=generator)]
    noise = torch.randn(size, channels, height, width, generator=generator)
    images = (0.2 + 0.6 * templates[labels] + 0.15 * noise).clamp_(0.0, 1.0)
    return TensorData(images, labels)


def prepare(
    splits: DatasetSplits,
    input_shape: Sequence[int] | None = None,
    *,
    device: torch.device | str | None = None,
) -> DatasetSplits:
    """Fit the images to a model's ``input_shape`` (C, H, W) and normalise them.

    Images are scaled to [0, 1], resized (bilinear, antialiased when shrinking), converted
    1 -> C channels by repeating or C -> 1 by averaging, and normalised with the per-channel
    mean / std of the converted train split. In-memory splits end up as float32 on ``device``
    (one copy); file-backed splits get a per-image transform instead. Already-prepared splits
    of the right shape are only moved; preparing them for another shape normalises them again
    (``mean`` / ``std`` then describe the once-normalised images).
    """
    target = tuple(int(s) for s in input_shape) if input_shape is not None else splits.input_shape
    if len(target) != 3 or min(target) < 1:
        raise DatasetError(f"input_shape must be (C, H, W), got {target}")
    channels_from, channels_to = splits.input_shape[0], target[0]
    if channels_from != channels_to and 1 not in (channels_from, channels_to):
        raise DatasetError(
            f"cannot convert {channels_from}-channel images to {channels_to} channels "
            "(only 1 -> C by repeating and C -> 1 by averaging)"
        )
    if splits.prepared and target == splits.input_shape:
        if not splits.in_memory:
            return splits
        train, val, test = (s.to(device) for s in splits_of(splits))
        return dataclasses.replace(splits, train=train, val=val, test=test)
    if not splits.in_memory:
        from nasblocks.train._imagefolder import prepare_files

        return prepare_files(splits, target)
    train, val, test = (_convert(s.images, target, device) for s in splits_of(splits))
    mean, std = _channel_stats(train)
    for images in (train, val, test):
        images.sub_(mean.view(-1, 1, 1)).div_(std.view(-1, 1, 1))
    return dataclasses.replace(
        splits,
        train=TensorData(train, splits.train.labels.to(device)),
        val=TensorData(val, splits.val.labels.to(device)),
        test=TensorData(test, splits.test.labels.to(device)),
        input_shape=target,
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
    )


def splits_of(splits: DatasetSplits) -> tuple[Split, Split, Split]:
    return splits.train, splits.val, splits.test


_CHUNK = 2048  # images converted at a time: bounds the float copies while resizing


def _convert(images: Tensor, target: Shape3, device: torch.device | str | None) -> Tensor:
    """``(N, C, H, W)`` images -> float32 ``(N, *target)`` in [0, 1] on ``device``."""
    channels, height, width = target
    out = torch.empty((images.shape[0], *target), dtype=torch.float32, device=device)
    for start in range(0, images.shape[0], _CHUNK):
        x = images[start : start + _CHUNK].to(out.device)
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        if x.shape[1] != channels:
            x = x.expand(-1, channels, -1, -1) if x.shape[1] == 1 else x.mean(1, keepdim=True)
        if x.shape[2:] != (height, width):
            shrink = height < x.shape[2] or width < x.shape[3]
            x = F.interpolate(
                x, size=(height, width), mode="bilinear", align_corners=False, antialias=shrink
            )
        out[start : start + _CHUNK] = x
    return out


def _channel_stats(images: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std over ``(N, H, W)``, summed in float64 chunk by chunk."""
    total = torch.zeros(images.shape[1], dtype=torch.float64, device=images.device)
    squares = torch.zeros_like(total)
    for start in range(0, images.shape[0], _CHUNK):
        x = images[start : start + _CHUNK].double()
        total += x.sum((0, 2, 3))
        squares += x.square().sum((0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0.0).sqrt().clamp_min(1e-6)
    return mean.float(), std.float()
