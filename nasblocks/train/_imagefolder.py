"""``imagefolder:PATH``: images on disk, one folder per class, listed by torchvision.

The files are listed by ``torchvision.datasets.ImageFolder`` (its class discovery and
extension filter); loading only lists them and draws the splits. Preparing the splits for a
model's input shape decodes every file of a folder once (:func:`decode_image`: converted to
the channels and resized by PIL, in a few threads) into one ``uint8`` tensor, which a cache
file keeps for later epochs, trials and runs. The splits are then
:class:`~nasblocks.train.data.TensorData`, kept on the device and normalised per batch like
the torchvision sets. A folder whose pixels would take more than :data:`HOLD_LIMIT` stays on
disk: :class:`ImageFiles` reads it through a ``DataLoader``, its statistics from a sample.

The cache (``$NASBLOCKS_CACHE``, else ``~/.cache/nasblocks/imagefolder``) holds one
``<key>.pt`` per folder and input shape. The key hashes the folder's listing (relative paths,
sizes and modification times: not the bytes, which would take as long as decoding) and the
shape (and the version of PIL, which decodes), so adding, removing or rewriting a file
decodes the folder again. Each file holds ``{"images": uint8 (N, C, H, W), "labels": int64
(N,), "classes": [...], "files": N}``; one that cannot be read, or does not match the listing
(count, labels, classes, shape), is decoded again and replaced.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import struct
import warnings
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import PIL
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset

from nasblocks.files import OutputError, reason, write_atomic
from nasblocks.train.data import (
    DatasetError,
    DatasetSplits,
    Shape3,
    TensorData,
    available_memory,
    stratified_split,
)

CACHE_FORMAT = 1
"""Version of the cache files and of the decoding rules: bumping it retires older files."""

HOLD_LIMIT = 4 << 30
"""Most bytes of decoded ``uint8`` pixels held in memory (and on the device); a folder that
needs more, or more than a quarter of the available memory, is read from disk per batch."""

_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})
_STATS_SAMPLES = 512  # train images read to estimate the statistics of on-disk splits
_DECODE_CHUNK = 256  # files a decoding thread takes at a time
# What PIL raises on a file that is not an image, or a truncated or corrupt one.
_READ_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
    Image.DecompressionBombError,
)


@dataclasses.dataclass(frozen=True, eq=False)
class Folder:
    """One folder of class folders as ``ImageFolder`` lists it: decoded and cached whole.

    ``files`` are the samples' paths relative to ``path`` (with ``/``), in the same order.
    """

    path: Path
    samples: tuple[tuple[str, int], ...]
    classes: tuple[str, ...]
    files: tuple[str, ...]


class ImageFiles(Dataset):
    """``(path, label)`` samples of ``folder`` read as ``uint8`` ``(C, H, W)`` of ``shape``.

    ``mean`` / ``std`` (per channel, [0, 1] units; set by ``prepare``) are what batches of
    these images are normalised with on the device; the items themselves stay raw.
    """

    def __init__(
        self,
        samples: Sequence[tuple[str, int]],
        shape: Shape3,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        *,
        folder: Folder,
    ) -> None:
        self.samples = list(samples)
        self.shape = shape
        self.mean = tuple(mean) if mean is not None else None
        self.std = tuple(std) if std is not None else None
        self.folder = folder

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        path, label = self.samples[index]
        return torch.tensor(decode_image(path, self.shape)), label  # (C, H, W) uint8

    def reformatted(
        self,
        shape: Shape3,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> ImageFiles:
        return ImageFiles(self.samples, shape, mean, std, folder=self.folder)


def load_imagefolder(path: Path, *, seed: int, val_fraction: float, test: float) -> DatasetSplits:
    """Splits of ``path``: its ``train``/``test`` (and ``val``) folders, or drawn from ``seed``."""
    name = f"imagefolder:{path}"
    if (path / "train").is_dir() and (path / "test").is_dir():
        pool = _list(path / "train")
        test_folder = _list(path / "test")
        _same_classes(test_folder, pool.classes)
        test_samples = list(test_folder.samples)
        if (path / "val").is_dir():
            val_folder = _list(path / "val")
            _same_classes(val_folder, pool.classes)
            train_samples, val_samples = list(pool.samples), list(val_folder.samples)
        else:
            val_folder = pool
            train_samples, val_samples = _draw(list(pool.samples), val_fraction, seed)
    else:
        pool = _list(path)
        val_folder = test_folder = pool
        rest, test_samples = _draw(list(pool.samples), test, seed)
        train_samples, val_samples = _draw(rest, val_fraction, seed)
    first = train_samples[0][0]
    try:
        with Image.open(first) as img:
            channels = 1 if img.mode in _GRAY_MODES else 3
            shape = (channels, img.size[1], img.size[0])
    except _READ_ERRORS as err:
        raise _unreadable(first, err) from err
    return DatasetSplits(
        name=name,
        train=ImageFiles(train_samples, shape, folder=pool),
        val=ImageFiles(val_samples, shape, folder=val_folder),
        test=ImageFiles(test_samples, shape, folder=test_folder),
        num_classes=len(pool.classes),
        input_shape=shape,
        classes=pool.classes,
    )


def decode_files(splits: DatasetSplits, target: Shape3) -> DatasetSplits | None:
    """:class:`ImageFiles` splits as ``TensorData`` of ``target`` shape, not yet normalised
    (:func:`~nasblocks.train.data.prepare` goes on from there), or None when their folders'
    pixels are too many to hold (:data:`HOLD_LIMIT`)."""
    parts = _file_splits(splits)
    folders = {id(part.folder): part.folder for part in parts}  # a flat folder's 3 splits: 1
    need = sum(len(folder.samples) for folder in folders.values()) * math.prod(target)
    available = available_memory()
    if need > HOLD_LIMIT or (available is not None and need > available // 4):
        return None
    pools = {
        key: (decoded(folder, target), {file: i for i, (file, _) in enumerate(folder.samples)})
        for key, folder in folders.items()
    }

    def held(part: ImageFiles) -> TensorData:
        pool, index = pools[id(part.folder)]
        return pool.subset(
            torch.tensor([index[file] for file, _ in part.samples], dtype=torch.long)
        )

    train, val, test = (held(part) for part in parts)
    return dataclasses.replace(splits, train=train, val=val, test=test, input_shape=target)


def prepare_files(splits: DatasetSplits, target: Shape3) -> DatasetSplits:
    """On-disk :func:`~nasblocks.train.data.prepare`: statistics from a train sample."""
    train, val, test = _file_splits(splits)
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


def decode_image(path: str, shape: Shape3) -> np.ndarray:
    """The image at ``path`` as ``uint8`` ``(C, H, W)`` of ``shape``: converted to L or RGB,
    resized (bilinear) when its size differs. Unreadable: :class:`DatasetError` naming it."""
    channels, height, width = shape
    try:
        with Image.open(path) as img:
            mode = "L" if channels == 1 else "RGB"
            if img.mode != mode:  # converting to its own mode would only copy it
                img = img.convert(mode)
            if img.size != (width, height):
                img = img.resize((width, height), Image.Resampling.BILINEAR)
            pixels = np.asarray(img)  # (H, W, C), or (H, W) for L
    except _READ_ERRORS as err:
        raise _unreadable(path, err) from err
    return pixels.reshape(height, width, channels).transpose(2, 0, 1)  # (C, H, W)


def decoded(folder: Folder, shape: Shape3) -> TensorData:
    """Every image of ``folder`` at ``shape``, from the cache, else decoded and cached."""
    path = cache_dir() / f"{cache_key(folder, shape)}.pt"
    data = _read_cache(path, folder, shape)
    if data is None:
        labels = torch.tensor([label for _, label in folder.samples], dtype=torch.int64)
        data = TensorData(_decode_all(folder, shape), labels)
        _write_cache(path, folder, data)
    return data


def cache_dir() -> Path:
    """Where decoded folders are kept: ``$NASBLOCKS_CACHE``, else the user's cache folder."""
    return Path(os.environ.get("NASBLOCKS_CACHE") or "~/.cache/nasblocks/imagefolder").expanduser()


def cache_key(folder: Folder, shape: Shape3) -> str:
    """A hash of ``folder``'s listing (relative paths, sizes, modification times), ``shape``
    and the decoding rules: what its decoded images depend on, read in a stat per file."""
    head = json.dumps(
        ["nasblocks imagefolder", CACHE_FORMAT, PIL.__version__, list(shape), list(folder.classes)]
    )
    digest = hashlib.sha256(head.encode())
    for file, (path, _) in sorted(zip(folder.files, folder.samples, strict=True)):
        try:
            stat = os.stat(path)
        except OSError as err:
            raise DatasetError(f"imagefolder: cannot read {path}: {reason(err)}") from err
        digest.update(f"\n{file}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:32]


def _decode_all(folder: Folder, shape: Shape3) -> Tensor:
    """Every image of ``folder`` -> ``(N, C, H, W)`` ``uint8``, decoded by a few threads.

    PIL decodes and resizes without the GIL, so threads pay off on large images (2.2x on two
    cores for 256x256 JPEGs); tiny ones (CIFAR's 32x32) are bound by Python and gain nothing.
    """
    paths = [path for path, _ in folder.samples]
    out = np.empty((len(paths), *shape), dtype=np.uint8)  # (N, C, H, W)

    def decode(start: int) -> None:
        for i in range(start, min(start + _DECODE_CHUNK, len(paths))):
            out[i] = decode_image(paths[i], shape)

    starts = range(0, len(paths), _DECODE_CHUNK)
    threads = min(torch.get_num_threads(), len(starts))
    if threads <= 1:
        for start in starts:
            decode(start)
    else:
        pool = ThreadPoolExecutor(threads, thread_name_prefix="nasblocks-imagefolder")
        try:
            for _ in pool.map(decode, starts):  # in order: the first bad file is reported
                pass
        finally:
            pool.shutdown(cancel_futures=True)
    return torch.from_numpy(out)


def _read_cache(path: Path, folder: Folder, shape: Shape3) -> TensorData | None:
    """The images saved at ``path``, or None: no file, an unreadable one, or another listing."""
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # truncated, corrupt, not a torch file: decoded again and replaced
        return None
    if not isinstance(saved, dict):
        return None
    images, labels = saved.get("images"), saved.get("labels")
    n = len(folder.samples)
    if not (
        isinstance(images, Tensor)
        and images.dtype == torch.uint8
        and tuple(images.shape) == (n, *shape)
        and isinstance(labels, Tensor)
        and labels.dtype == torch.int64
        and labels.tolist() == [label for _, label in folder.samples]
        and saved.get("classes") == list(folder.classes)
        and saved.get("files") == n
    ):
        return None
    return TensorData(images, labels)


def _write_cache(path: Path, folder: Folder, data: TensorData) -> None:
    """Save ``data`` at ``path`` atomically; a cache that cannot be written only warns."""
    saved = {
        "images": data.images,
        "labels": data.labels,
        "classes": list(folder.classes),
        "files": len(folder.files),  # the listing itself is in the key
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, lambda tmp: torch.save(saved, tmp))
    except (OSError, OutputError) as err:
        cause = reason(err) if isinstance(err, OSError) else str(err)
        warnings.warn(
            f"imagefolder: cannot keep the decoded images of {folder.path} in "
            f"{path.parent} ({cause}); they will be decoded again next time "
            "(NASBLOCKS_CACHE sets the cache folder)",
            RuntimeWarning,
            stacklevel=2,
        )


def _unreadable(path: str, err: BaseException) -> DatasetError:
    detail = "not an image file" if isinstance(err, UnidentifiedImageError) else str(err)
    return DatasetError(f"imagefolder: cannot read the image {path}: {detail}")


def _file_splits(splits: DatasetSplits) -> tuple[ImageFiles, ImageFiles, ImageFiles]:
    train, val, test = splits.train, splits.val, splits.test
    assert isinstance(train, ImageFiles)
    assert isinstance(val, ImageFiles) and isinstance(test, ImageFiles)
    return train, val, test


def _list(folder: Path) -> Folder:
    from torchvision.datasets import ImageFolder

    try:
        found = ImageFolder(str(folder))
    except (FileNotFoundError, NotADirectoryError) as err:
        raise DatasetError(
            f"imagefolder: {folder} must hold one folder of images per class "
            f"({folder}/CLASS/IMAGE.png), or train/ and test/ folders laid out that way ({err})"
        ) from err
    prefix = os.path.join(str(folder), "")  # ImageFolder joins it with CLASS/FILE
    files = [path[len(prefix) :] for path, _ in found.samples]
    assert all(path.startswith(prefix) for path, _ in found.samples)
    return Folder(
        path=folder,
        samples=tuple(found.samples),
        classes=tuple(found.classes),
        files=tuple(file.replace(os.sep, "/") for file in files),
    )


def _draw(
    samples: list[tuple[str, int]], fraction: float, seed: int
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    labels = torch.tensor([label for _, label in samples])
    rest, held = stratified_split(labels, fraction, seed)
    return [samples[i] for i in rest.tolist()], [samples[i] for i in held.tolist()]


def _same_classes(folder: Folder, expected: tuple[str, ...]) -> None:
    if folder.classes != expected:
        raise DatasetError(
            f"imagefolder: the class folders of {folder.path} ({', '.join(folder.classes)}) "
            f"differ from train's ({', '.join(expected)})"
        )
