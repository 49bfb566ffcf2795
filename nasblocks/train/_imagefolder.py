"""``imagefolder:PATH``: images on disk, one folder per class, listed by torchvision.

The files are listed by ``torchvision.datasets.ImageFolder`` (its class discovery and
extension filter) and read on demand by :class:`ImageFiles`, which also resizes and converts
the channels. Its items stay ``uint8``: the trainer's ``DataLoader`` pins and ships a quarter
of float32's bytes, and the batches are normalised on the device with the split's
``mean`` / ``std``, like in-memory data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from nasblocks.train.data import DatasetError, DatasetSplits, Shape3, stratified_split

_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})
_STATS_SAMPLES = 512  # train images read to estimate the normalisation statistics


class ImageFiles(Dataset):
    """``(path, label)`` samples read as ``uint8`` ``(C, H, W)`` tensors of ``shape``.

    ``mean`` / ``std`` (per channel, [0, 1] units; set by ``prepare``) are what batches of
    these images are normalised with on the device; the items themselves stay raw.
    """

    def __init__(
        self,
        samples: Sequence[tuple[str, int]],
        shape: Shape3,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        self.samples = list(samples)
        self.shape = shape
        self.mean = tuple(mean) if mean is not None else None
        self.std = tuple(std) if std is not None else None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        from torchvision.transforms.functional import pil_to_tensor

        path, label = self.samples[index]
        channels, height, width = self.shape
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB")
            if img.size != (width, height):
                img = img.resize((width, height), Image.Resampling.BILINEAR)
            return pil_to_tensor(img), label  # (C, H, W) uint8

    def reformatted(
        self,
        shape: Shape3,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> ImageFiles:
        return ImageFiles(self.samples, shape, mean, std)


def load_imagefolder(path: Path, *, seed: int, val_fraction: float, test: float) -> DatasetSplits:
    """Splits of ``path``: its ``train``/``test`` (and ``val``) folders, or drawn from ``seed``."""
    name = f"imagefolder:{path}"
    if (path / "train").is_dir() and (path / "test").is_dir():
        pool, classes = _list(path / "train")
        test_samples, test_classes = _list(path / "test")
        _same_classes(path / "test", classes, test_classes)
        if (path / "val").is_dir():
            val_samples, val_classes = _list(path / "val")
            _same_classes(path / "val", classes, val_classes)
            train_samples = pool
        else:
            train_samples, val_samples = _draw(pool, val_fraction, seed)
    else:
        pool, classes = _list(path)
        pool, test_samples = _draw(pool, test, seed)
        train_samples, val_samples = _draw(pool, val_fraction, seed)
    with Image.open(train_samples[0][0]) as first:
        channels = 1 if first.mode in _GRAY_MODES else 3
        shape = (channels, first.size[1], first.size[0])
    return DatasetSplits(
        name=name,
        train=ImageFiles(train_samples, shape),
        val=ImageFiles(val_samples, shape),
        test=ImageFiles(test_samples, shape),
        num_classes=len(classes),
        input_shape=shape,
        classes=tuple(classes),
    )


def prepare_files(splits: DatasetSplits, target: Shape3) -> DatasetSplits:
    """File-backed :func:`~nasblocks.train.data.prepare`: statistics from a train sample."""
    train, val, test = splits.train, splits.val, splits.test
    assert isinstance(train, ImageFiles)
    assert isinstance(val, ImageFiles) and isinstance(test, ImageFiles)
    raw = train.reformatted(target)
    step = max(1, len(raw) // _STATS_SAMPLES)
    sample = torch.stack([raw[i][0] for i in range(0, len(raw), step)])  # (S, C, H, W)
    sample = sample.double().div_(255.0)
    mean = sample.mean((0, 2, 3)).tolist()
    std = sample.std((0, 2, 3)).clamp_min(1e-6).tolist()
    return dataclasses.replace(
        splits,
        train=train.reformatted(target, mean, std),
        val=val.reformatted(target, mean, std),
        test=test.reformatted(target, mean, std),
        input_shape=target,
        mean=tuple(mean),
        std=tuple(std),
    )


def _list(folder: Path) -> tuple[list[tuple[str, int]], list[str]]:
    from torchvision.datasets import ImageFolder

    try:
        found = ImageFolder(str(folder))
    except (FileNotFoundError, NotADirectoryError) as err:
        raise DatasetError(
            f"imagefolder: {folder} must hold one folder of images per class "
            f"({folder}/CLASS/IMAGE.png), or train/ and test/ folders laid out that way ({err})"
        ) from err
    return list(found.samples), list(found.classes)


def _draw(
    samples: list[tuple[str, int]], fraction: float, seed: int
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    labels = torch.tensor([label for _, label in samples])
    rest, held = stratified_split(labels, fraction, seed)
    return [samples[i] for i in rest.tolist()], [samples[i] for i in held.tolist()]


def _same_classes(folder: Path, expected: list[str], found: list[str]) -> None:
    if found != expected:
        raise DatasetError(
            f"imagefolder: the class folders of {folder} ({', '.join(found)}) differ from "
            f"train's ({', '.join(expected)})"
        )
