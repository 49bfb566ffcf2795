"""``imagefolder:PATH`` is decoded once into a cache file, then read back as tensors."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nasblocks.train import DatasetError, TensorData, _imagefolder, load_dataset, prepare
from nasblocks.train._imagefolder import ImageFiles

CIFAR10 = Path(__file__).resolve().parents[2].parent / "shared" / "cifar10" / "cifar10_jpg.tar.gz"
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("NASBLOCKS_CACHE", str(folder))
    return folder


def _write_images(folder: Path, per_class: int = 10, size=(10, 8), mode: str = "RGB") -> None:
    """Two classes of random images, PNG and JPEG in turn."""
    rng = np.random.default_rng(0)
    for label, name in enumerate(("cat", "dog")):
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            pixels = (rng.integers(0, 100, shape) + 150 * label).astype(np.uint8)
            suffix = "png" if i % 2 == 0 else "jpg"
            Image.fromarray(pixels, mode).save(folder / name / f"{i}.{suffix}")


def _reference(path: str, shape: tuple[int, int, int]) -> torch.Tensor:
    """The decoding rules as they were when files were read on demand: PIL, then to a tensor."""
    from torchvision.transforms.functional import pil_to_tensor

    channels, height, width = shape
    with Image.open(path) as img:
        img = img.convert("L" if channels == 1 else "RGB")
        if img.size != (width, height):
            img = img.resize((width, height), Image.Resampling.BILINEAR)
        return pil_to_tensor(img)


def _ready(root: Path, shape=(3, 8, 10), seed: int = 0):
    return prepare(load_dataset(f"imagefolder:{root}", seed=seed), shape)


def _cache_files(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.pt")) if cache.is_dir() else []


def test_decoded_once_then_read_from_the_cache(tmp_path, cache, monkeypatch):
    _write_images(tmp_path / "images")
    first = _ready(tmp_path / "images")
    (file,) = _cache_files(cache)
    saved = torch.load(file, weights_only=True)
    assert set(saved) == {"images", "labels", "classes", "files"}
    assert saved["images"].dtype == torch.uint8 and saved["images"].shape == (20, 3, 8, 10)
    assert saved["labels"].tolist() == [0] * 10 + [1] * 10 and saved["classes"] == ["cat", "dog"]
    assert saved["files"] == 20
    written = file.stat().st_mtime_ns

    def no_decoding(path, shape):
        raise AssertionError(f"decoded {path} again")

    monkeypatch.setattr(_imagefolder, "decode_image", no_decoding)
    again = _ready(tmp_path / "images")
    assert _cache_files(cache) == [file] and file.stat().st_mtime_ns == written
    for old, new in zip(
        (first.train, first.val, first.test),
        (again.train, again.val, again.test),
        strict=True,
    ):
        assert isinstance(new, TensorData)
        assert torch.equal(old.images, new.images) and torch.equal(old.labels, new.labels)
    assert again.mean == first.mean and again.std == first.std


def test_prepared_splits_are_tensors_with_the_train_statistics(tmp_path):
    _write_images(tmp_path)
    splits = load_dataset(f"imagefolder:{tmp_path}", seed=1)
    ready = prepare(splits, (3, 4, 4))
    assert ready.in_memory and ready.input_shape == (3, 4, 4)
    assert ready.sizes() == splits.sizes() == {"train": 14, "val": 2, "test": 4}
    for split, files in zip(
        (ready.train, ready.val, ready.test),
        (splits.train, splits.val, splits.test),
        strict=True,
    ):
        assert isinstance(split, TensorData) and isinstance(files, ImageFiles)
        assert split.images.dtype == torch.uint8 and split.mean == ready.mean
        assert split.labels.tolist() == [label for _, label in files.samples]
    pixels = ready.train.images.double() / 255.0  # (N, C, H, W)
    torch.testing.assert_close(torch.tensor(ready.mean).double(), pixels.mean((0, 2, 3)))


@pytest.mark.parametrize("shape", [(3, 8, 10), (3, 5, 7), (1, 6, 6)])
def test_cached_images_equal_a_direct_decode_in_every_split(tmp_path, cache, shape):
    _write_images(tmp_path / "train", per_class=5)
    _write_images(tmp_path / "test", per_class=3)
    splits = load_dataset(f"imagefolder:{tmp_path}", val_fraction=0.2)
    for ready in (prepare(splits, shape), prepare(splits, shape)):  # decoded, then cached
        for split, files in zip(
            (ready.train, ready.val, ready.test),
            (splits.train, splits.val, splits.test),
            strict=True,
        ):
            assert len(split) == len(files.samples)
            for image, (path, _) in zip(split.images, files.samples, strict=True):
                assert torch.equal(image, _reference(path, shape)), path
    assert len(_cache_files(cache)) == 2  # one per folder: train (val drawn from it), test


def test_gray_images_are_decoded_as_gray(tmp_path):
    _write_images(tmp_path, mode="L")
    splits = load_dataset(f"imagefolder:{tmp_path}")
    ready = prepare(splits, splits.input_shape)
    assert ready.input_shape == (1, 8, 10) and ready.train.images.shape[1:] == (1, 8, 10)
    path = splits.train.samples[0][0]
    assert torch.equal(ready.train.images[0], _reference(path, (1, 8, 10)))


def test_another_input_size_is_another_cache_file(tmp_path, cache):
    _write_images(tmp_path / "images")
    _ready(tmp_path / "images", (3, 8, 10))
    _ready(tmp_path / "images", (3, 4, 4))
    _ready(tmp_path / "images", (1, 4, 4))
    assert len(_cache_files(cache)) == 3


def test_a_changed_folder_is_another_cache_key(tmp_path, cache):
    _write_images(tmp_path / "images")
    assert sum(_ready(tmp_path / "images").sizes().values()) == 20
    (before,) = _cache_files(cache)
    Image.new("RGB", (10, 8), "red").save(tmp_path / "images" / "cat" / "new.png")
    assert sum(_ready(tmp_path / "images").sizes().values()) == 21
    (after,) = set(_cache_files(cache)) - {before}
    assert torch.load(after, weights_only=True)["files"] == 21
    Image.new("RGB", (10, 8), "blue").save(tmp_path / "images" / "cat" / "new.png")  # rewritten
    _ready(tmp_path / "images")
    assert len(_cache_files(cache)) == 3


@pytest.mark.parametrize(
    "content",
    [b"this is not an image\n", "truncated"],
    ids=["text", "truncated"],
)
def test_a_corrupt_image_is_one_error_naming_it(tmp_path, content):
    _write_images(tmp_path)
    bad = tmp_path / "dog" / "9.jpg"
    if content == "truncated":
        buffer = io.BytesIO()
        Image.new("RGB", (10, 8), "green").save(buffer, "JPEG")
        content = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    bad.write_bytes(content)
    with pytest.raises(DatasetError) as e:
        _ready(tmp_path)
    message = str(e.value)
    assert str(bad) in message and "\n" not in message and message.startswith("imagefolder:")


def test_a_corrupt_first_image_is_named_when_loading(tmp_path):
    _write_images(tmp_path)
    bad = tmp_path / "cat" / "0.png"
    bad.write_text("not a png")
    with pytest.raises(DatasetError, match="not an image file") as e:
        load_dataset(f"imagefolder:{tmp_path}")
    assert str(bad) in str(e.value)


def test_threads_decode_in_order_and_report_the_first_bad_file(tmp_path, cache, monkeypatch):
    _write_images(tmp_path, per_class=8)
    monkeypatch.setattr(_imagefolder, "_DECODE_CHUNK", 3)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    splits = load_dataset(f"imagefolder:{tmp_path}")
    ready = prepare(splits, (3, 4, 4))
    for image, (path, _) in zip(ready.train.images, splits.train.samples, strict=True):
        assert torch.equal(image, _reference(path, (3, 4, 4)))
    for name in ("5.jpg", "7.jpg"):
        (tmp_path / "dog" / name).write_text("broken")
    with pytest.raises(DatasetError, match="5.jpg"):
        prepare(splits, (3, 8, 8))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "other content"])
def test_a_corrupt_cache_file_is_decoded_again(tmp_path, cache, damage):
    _write_images(tmp_path / "images")
    first = _ready(tmp_path / "images")
    (file,) = _cache_files(cache)
    if damage == "truncated":
        file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    elif damage == "garbage":
        file.write_text("not a torch file")
    else:  # a readable file that does not hold this folder
        torch.save({"images": torch.zeros(3, 3, 8, 10, dtype=torch.uint8)}, file)
    again = _ready(tmp_path / "images")
    assert torch.equal(again.train.images, first.train.images)
    assert torch.equal(torch.load(file, weights_only=True)["images"][:1], first.train.images[:1])
    assert _cache_files(cache) == [file] and not list(cache.glob(".*.tmp"))


def test_an_unwritable_cache_warns_and_goes_on(tmp_path, monkeypatch):
    _write_images(tmp_path / "images")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("NASBLOCKS_CACHE", str(blocker / "cache"))
    with pytest.warns(RuntimeWarning, match="decoded again next time"):
        ready = _ready(tmp_path / "images")
    assert ready.in_memory and sum(ready.sizes().values()) == 20


def test_a_folder_too_large_to_hold_is_read_from_disk(tmp_path, cache, monkeypatch):
    _write_images(tmp_path / "images")
    monkeypatch.setattr(_imagefolder, "HOLD_LIMIT", 100)
    ready = _ready(tmp_path / "images", (3, 4, 4))
    assert not ready.in_memory and isinstance(ready.train, ImageFiles)
    assert ready.train[0][0].shape == (3, 4, 4) and ready.train.mean == ready.mean
    assert _cache_files(cache) == []


def test_the_cache_folder_defaults_to_the_user_cache(monkeypatch):
    monkeypatch.delenv("NASBLOCKS_CACHE")
    assert _imagefolder.cache_dir() == Path("~/.cache/nasblocks/imagefolder").expanduser()


@pytest.mark.skipif(not CIFAR10.is_file(), reason=f"needs the CIFAR-10 JPEGs at {CIFAR10}")
def test_cifar10_jpegs(tmp_path, cache):
    per_class, counts = 30, dict.fromkeys(CIFAR10_CLASSES, 0)
    root = tmp_path / "cifar10"
    with tarfile.open(CIFAR10, "r|gz") as tar:  # the test split comes first: stop early
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) != 3 or parts[0] != "test":
                continue
            label = parts[1]
            if counts.get(label, per_class) >= per_class:
                continue
            source = tar.extractfile(member)
            assert source is not None
            (root / label).mkdir(parents=True, exist_ok=True)
            (root / label / Path(parts[2]).name).write_bytes(source.read())
            counts[label] += 1
            if min(counts.values()) == per_class:
                break
    splits = load_dataset(f"imagefolder:{root}")
    assert splits.classes == CIFAR10_CLASSES and splits.input_shape == (3, 32, 32)
    ready = prepare(splits, (3, 32, 32))
    assert len(_cache_files(cache)) == 1
    labels = torch.cat([ready.train.labels, ready.val.labels, ready.test.labels])
    assert torch.bincount(labels).tolist() == [per_class] * 10
    for split in (ready.train, ready.val, ready.test):
        assert split.images.shape[1:] == (3, 32, 32) and split.images.dtype == torch.uint8
    assert all(90 < 255 * m < 150 for m in ready.mean)  # CIFAR-10: 114 to 126
