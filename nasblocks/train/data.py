"""Datasets as fixed train / validation / test splits, ready for a trial to train on.

Every dataset here lives as one tensor: it is read once as ``uint8`` pixels and
:func:`prepare` moves it to the device in one copy, still ``uint8`` (a quarter of float32's
memory: CIFAR-10 is 184 MB instead of 737). Training indexes device memory and needs no
``DataLoader``; each batch is converted to float and normalised on the device
(:mod:`nasblocks.train.normalize`). ``imagefolder`` is listed on loading and decoded (once,
then from a cache file) by :func:`prepare`; one too large to hold stays on disk and is read by
a ``DataLoader``, also as ``uint8``.

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
import math
import os
from collections.abc import Sequence, Sized
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
    """A dataset that cannot be loaded: unknown name, missing or unreadable files, bad split.

    ``field`` names the data setting at fault (``synthetic_size``), when one is; a search
    locates the error there (``search.data.<field>``), else at ``search.data.dataset``.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


SYNTHETIC_MEMORY_LIMIT = 4 << 30
"""Most bytes generating the synthetic dataset may take (at most half the available memory)."""
SYNTHETIC_BYTES_PER_PIXEL = 16  # float32 noise, templates and temporaries (measured: 15.3)


@dataclasses.dataclass(frozen=True)
class TensorData:
    """Images and labels of one split held in memory.

    ``images`` is ``(N, C, H, W)``: ``uint8`` (0..255), or float in [0, 1]; ``labels`` is
    ``(N,)`` int64. ``mean`` / ``std`` (per channel, in [0, 1] pixel units), set by
    :func:`prepare`, are what each batch is normalised with on its way to the model; without
    them float images go to the model as they are (``uint8`` ones scaled to [0, 1]).
    """

    images: Tensor
    labels: Tensor
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

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
        return dataclasses.replace(
            self, images=self.images.to(device), labels=self.labels.to(device)
        )

    def subset(self, index: Tensor) -> TensorData:
        return dataclasses.replace(self, images=self.images[index], labels=self.labels[index])

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        """``(image (C, H, W), label)``, like an item of a map-style ``Dataset``."""
        return self.images[index], int(self.labels[index])


Split = TensorData | Dataset
"""A split is a :class:`TensorData` (small datasets) or a map-style ``Dataset`` of
``(image (C, H, W) uint8 or float tensor, label int)`` pairs (files read on demand); a
``Dataset`` with ``mean`` / ``std`` attributes is normalised per batch like a ``TensorData``."""


def split_size(split: Split) -> int:
    """Examples in ``split``; a ``Dataset`` split must be map-style, with a length."""
    if not isinstance(split, Sized):
        raise TypeError(f"a split must have a length: {type(split).__name__} has none")
    return len(split)


@dataclasses.dataclass(frozen=True)
class DatasetSplits:
    """One dataset cut into fixed train / val / test splits.

    ``mean`` and ``std`` are the per-channel statistics (in [0, 1] pixel units) of the train
    split that every split's batches are normalised with; they are ``None`` until
    :func:`prepare` has run. The images themselves stay un-normalised (``uint8`` as loaded).
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
        return {
            "train": split_size(self.train),
            "val": split_size(self.val),
            "test": split_size(self.test),
        }


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
    train_per_class: int | None = None,
) -> DatasetSplits:
    """Load ``name`` (one of :data:`DATASETS`) as fixed splits drawn from ``seed``.

    ``train_per_class``: keep only the first this-many training images of each class (in the
    dataset's order, after the seeded split): a low-data task on which architectures differ
    more. Validation and test splits are unchanged.

    ``download`` lets torchvision fetch missing files; when they are missing and cannot be
    fetched, :class:`DatasetError` says which files to put where. ``synthetic_*`` shape the
    ``synthetic`` dataset (``synthetic_size`` images in all, test included).
    """
    for label, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < fraction < 1.0:
            raise DatasetError(
                f"{label} must be between 0 and 1 (exclusive), got {fraction}", label
            )
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
        if train_per_class is not None:
            raise DatasetError(
                "train_per_class works with the tensor datasets (digits, synthetic, the "
                "torchvision sets), not imagefolder",
                "train_per_class",
            )
        return load_imagefolder(path, seed=seed, val_fraction=val_fraction, test=test_fraction)
    else:
        close = difflib.get_close_matches(name, DATASETS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DatasetError(
            f"unknown dataset {name!r}{hint}; known: {', '.join(DATASETS)}", "dataset"
        )
    if test is None:
        rest, held = stratified_split(pool.labels, test_fraction, seed)
        pool, test = pool.subset(rest), pool.subset(held)
    train_idx, val_idx = stratified_split(pool.labels, val_fraction, seed)
    if train_per_class is not None:
        train_idx = first_per_class(pool.labels, train_idx, train_per_class)
    _, c, h, w = pool.images.shape
    return DatasetSplits(
        name=name,
        train=pool.subset(train_idx),
        val=pool.subset(val_idx),
        test=test,
        num_classes=len(classes),
        input_shape=(c, h, w),
        classes=classes,
    )


def first_per_class(labels: Tensor, indices: Tensor, per_class: int) -> Tensor:
    """The first ``per_class`` of ``indices`` (sorted) of each class, in index order."""
    if per_class < 1:
        raise DatasetError(
            f"train_per_class must be at least 1, got {per_class}", "train_per_class"
        )
    chosen = labels.cpu()[indices]
    keep = [indices[chosen == c][:per_class] for c in torch.unique(chosen).tolist()]
    return torch.cat(keep).sort().values


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
    """scikit-learn's bundled 8x8 digits (1797 images, pixel values 0..16), offline.

    The 17 grey levels are spread over 0..255 (``round(v * 255 / 16)``) so the images are
    ``uint8`` like every other dataset's.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).mul_(255.0 / 16.0).round_()
    return TensorData(
        images.to(torch.uint8).unsqueeze(1), torch.tensor(digits.target, dtype=torch.int64)
    )


def _synthetic(shape: Sequence[int], num_classes: int, size: int, seed: int) -> TensorData:
    """Learnable noise: each class is a smooth random template, each image one plus noise.

    Quantised to ``uint8`` pixels, like a real image dataset.
    """
    bad_shape = len(shape) != 3 or min(shape) < 1
    if bad_shape or num_classes < 2 or size < 2 * num_classes:
        field = "synthetic_shape" if bad_shape else "synthetic_classes"
        raise DatasetError(
            f"synthetic needs a (C, H, W) shape, at least 2 classes and 2 images per class; "
            f"got shape {tuple(shape)}, {num_classes} classes, {size} images",
            field if bad_shape or num_classes < 2 else "synthetic_size",
        )
    check_synthetic_memory(shape, size)
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
    return TensorData(images.mul_(255.0).round_().to(torch.uint8), labels)


def check_synthetic_memory(shape: Sequence[int], size: int) -> None:
    """Refuse, before allocating, a synthetic dataset whose generation would take more than
    :data:`SYNTHETIC_MEMORY_LIMIT` or half the available memory."""
    need = size * math.prod(int(s) for s in shape) * SYNTHETIC_BYTES_PER_PIXEL
    available = available_memory()
    limit = min(SYNTHETIC_MEMORY_LIMIT, available // 2) if available else SYNTHETIC_MEMORY_LIMIT
    if need > limit:
        raise DatasetError(
            f"{size} synthetic images of {list(shape)} need about {_gb(need)} of memory to "
            f"generate, more than the {_gb(limit)} allowed; make synthetic_size or "
            "synthetic_shape smaller",
            "synthetic_size",
        )


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux: MemAvailable), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB"


def prepare(
    splits: DatasetSplits,
    input_shape: Sequence[int] | None = None,
    *,
    device: torch.device | str | None = None,
) -> DatasetSplits:
    """Fit the images to a model's ``input_shape`` (C, H, W) and fix their normalisation.

    Images are resized (bilinear, antialiased when shrinking), converted 1 -> C channels by
    repeating or C -> 1 by averaging, and the per-channel mean / std of the converted train
    split (in [0, 1] units) is recorded on the splits and on each split. The pixels are not
    normalised here: ``uint8`` images stay ``uint8`` (rounded after resizing) and float ones
    float, on ``device`` (one copy); each batch is normalised on the device as it is drawn.
    ``imagefolder`` splits are decoded at ``target`` (each file resized by PIL) and go on as
    tensors; ones too large to hold get the statistics from a sample and stay on disk.
    Already-prepared splits of the right shape are only moved; preparing them for another
    shape starts from their (already resized) images.
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
        train, val, test = (
            dataclasses.replace(s.to(device), mean=splits.mean, std=splits.std)
            for s in _tensor_splits(splits)
        )
        return dataclasses.replace(splits, train=train, val=val, test=test)
    if not splits.in_memory:
        from nasblocks.train._imagefolder import decode_files, prepare_files

        decoded = decode_files(splits, target)  # images of `target` shape, cached on disk
        if decoded is None:  # too large to hold: read from disk per batch
            return prepare_files(splits, target)
        splits = decoded
    parts = _tensor_splits(splits)
    train_x, val_x, test_x = (_convert(s.images, target, device) for s in parts)
    mean_t, std_t = _channel_stats(train_x)
    mean, std = tuple(mean_t.tolist()), tuple(std_t.tolist())
    train, val, test = (
        TensorData(x, s.labels.to(device), mean, std)
        for x, s in zip((train_x, val_x, test_x), parts, strict=True)
    )
    return dataclasses.replace(
        splits, train=train, val=val, test=test, input_shape=target, mean=mean, std=std
    )


def splits_of(splits: DatasetSplits) -> tuple[Split, Split, Split]:
    return splits.train, splits.val, splits.test


def _tensor_splits(splits: DatasetSplits) -> tuple[TensorData, TensorData, TensorData]:
    """The three splits of in-memory ``splits``; all three must be :class:`TensorData`."""
    train, val, test = splits_of(splits)
    if not (
        isinstance(train, TensorData)
        and isinstance(val, TensorData)
        and isinstance(test, TensorData)
    ):
        kinds = ", ".join(type(s).__name__ for s in (train, val, test))
        raise DatasetError(
            f"the splits mix in-memory and Dataset splits ({kinds}): all three must be "
            "TensorData, or all three Datasets"
        )
    return train, val, test


_CHUNK = 2048  # images converted at a time: bounds the float copies while resizing


def _convert(images: Tensor, target: Shape3, device: torch.device | str | None) -> Tensor:
    """``(N, C, H, W)`` images -> ``(N, *target)`` of the same dtype on ``device``.

    Images already of the target shape are copied as they are; the others are converted in
    float chunk by chunk, and ``uint8`` ones rounded back to ``uint8``.
    """
    channels, height, width = target
    if tuple(images.shape[1:]) == target:
        return images.to(device)
    out = torch.empty((images.shape[0], *target), dtype=images.dtype, device=device)
    for start in range(0, images.shape[0], _CHUNK):
        x = images[start : start + _CHUNK].to(out.device).float()
        if x.shape[1] != channels:
            x = x.expand(-1, channels, -1, -1) if x.shape[1] == 1 else x.mean(1, keepdim=True)
        if x.shape[2:] != (height, width):
            shrink = height < x.shape[2] or width < x.shape[3]
            x = F.interpolate(
                x, size=(height, width), mode="bilinear", align_corners=False, antialias=shrink
            )
        if out.dtype == torch.uint8:
            x = x.round_().clamp_(0, 255)
        out[start : start + _CHUNK] = x
    return out


def _channel_stats(images: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std over ``(N, H, W)`` in [0, 1] units, summed in float64."""
    total = torch.zeros(images.shape[1], dtype=torch.float64, device=images.device)
    squares = torch.zeros_like(total)
    for start in range(0, images.shape[0], _CHUNK):
        x = images[start : start + _CHUNK].double()
        total += x.sum((0, 2, 3))
        squares += x.square().sum((0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0.0).sqrt()
    if images.dtype == torch.uint8:
        mean, std = mean / 255.0, std / 255.0
    return mean.float(), std.clamp_min(1e-6).float()
