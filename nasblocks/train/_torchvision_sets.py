"""CIFAR-10/100, MNIST, Fashion-MNIST and SVHN, read by torchvision's own dataset classes.

torchvision does the parsing (and the download when allowed); this module checks the files
first so that a missing file gives one line naming it and where it goes, and converts the
result to ``uint8`` tensors ``(N, C, H, W)``.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasblocks.files import write_atomic
from nasblocks.train.data import DatasetError, TensorData


@dataclasses.dataclass(frozen=True)
class _Source:
    """Where one dataset's files live under ``root``, where they come from, how to read them."""

    folder: Callable[[Path], Path]
    files: tuple[str, ...]
    origin: str
    open: Callable[[Path, bool, bool], Any]  # (root, train, download) -> torchvision dataset
    to_tensors: Callable[[Any], TensorData]


def _cifar(cls_name: str) -> _Source:
    from torchvision import datasets

    cls = getattr(datasets, cls_name)
    files = [name for name, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    return _Source(
        folder=lambda root: root / cls.base_folder,
        files=tuple(files),
        origin=f"from {cls.url}, extracted into ROOT",
        open=lambda root, train, download: cls(root, train=train, download=download),
        to_tensors=lambda ds: TensorData(
            torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous(),
            torch.tensor(ds.targets, dtype=torch.int64),
        ),
    )


def _mnist(cls_name: str) -> _Source:
    from torchvision import datasets

    cls = getattr(datasets, cls_name)
    files = tuple(name.removesuffix(".gz") for name, _ in cls.resources)
    return _Source(
        folder=lambda root: root / cls.__name__ / "raw",
        files=files,
        origin=f"from {cls.mirrors[0]}FILE.gz, gunzipped or as .gz",
        open=lambda root, train, download: cls(root, train=train, download=download),
        to_tensors=lambda ds: TensorData(ds.data.unsqueeze(1).contiguous(), ds.targets.long()),
    )


def _svhn() -> _Source:
    from torchvision import datasets

    cls = datasets.SVHN
    return _Source(
        folder=lambda root: root,
        files=tuple(cls.split_list[split][1] for split in ("train", "test")),
        origin="from http://ufldl.stanford.edu/housenumbers/",
        open=lambda root, train, download: cls(
            root, split="train" if train else "test", download=download
        ),
        to_tensors=lambda ds: TensorData(
            torch.from_numpy(np.ascontiguousarray(ds.data)), torch.from_numpy(ds.labels).long()
        ),
    )


_SOURCES: dict[str, Callable[[], _Source]] = {
    "cifar10": lambda: _cifar("CIFAR10"),
    "cifar100": lambda: _cifar("CIFAR100"),
    "mnist": lambda: _mnist("MNIST"),
    "fashion_mnist": lambda: _mnist("FashionMNIST"),
    "svhn": _svhn,
}


def load_torchvision(
    name: str, root: Path, *, download: bool
) -> tuple[TensorData, TensorData, tuple[str, ...]]:
    """``(train pool, test, class names)`` of ``name`` under ``root``."""
    source = _SOURCES[name]()
    folder = source.folder(root)
    missing = _missing(folder, source.files)
    if missing and download:
        try:
            for train in (True, False):
                source.open(root, train, True)
        # A failed download surfaces as URLError, HTTPError, socket errors, RuntimeError or a
        # broken archive, depending on where it broke: all mean "the files are not there".
        except Exception as err:
            raise DatasetError(_missing_message(name, root, missing, source, err)) from err
        missing = _missing(folder, source.files)
    if missing:
        raise DatasetError(_missing_message(name, root, missing, source, None))
    try:
        train_set, test_set = (source.open(root, train, False) for train in (True, False))
    except Exception as err:  # checksum mismatch, truncated pickle / idx / mat file
        reason = _one_line(err)
        raise DatasetError(
            f"{name}: the files in {folder} could not be read ({reason}); "
            f"replace them with the originals ({source.origin.replace('ROOT', str(root))})"
        ) from err
    classes = tuple(str(c) for c in getattr(train_set, "classes", range(10)))
    return source.to_tensors(train_set), source.to_tensors(test_set), classes


def _missing(folder: Path, files: tuple[str, ...]) -> list[str]:
    """Names of ``files`` absent from ``folder``; a lone ``NAME.gz`` is unpacked first."""
    missing = []
    for name in files:
        path = folder / name
        packed = folder / f"{name}.gz"
        if not path.is_file() and packed.is_file():  # whole or not at all: a cache
            write_atomic(path, functools.partial(_gunzip, packed))
        if not path.is_file():
            missing.append(name)
    return missing


def _gunzip(packed: Path, path: Path) -> None:
    with gzip.open(packed, "rb") as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)


def _missing_message(
    name: str, root: Path, missing: list[str], source: _Source, err: Exception | None
) -> str:
    folder = source.folder(root)
    origin = source.origin.replace("ROOT", str(root))
    why = f"download failed: {_one_line(err)}" if err is not None else "download=False"
    return f"{name}: missing {', '.join(missing)} in {folder} — put them there ({origin}); {why}"


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
