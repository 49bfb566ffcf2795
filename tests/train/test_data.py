"""Datasets: splits, preparation, and torchvision's real readers on small files we write."""

from __future__ import annotations

import gzip
import hashlib
import pickle
import socket
import struct
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from torchvision import datasets as tv

from nasblocks.errors import NasBlocksError
from nasblocks.train.data import (
    TORCHVISION_SETS,
    DatasetError,
    DatasetSplits,
    TensorData,
    load_dataset,
    prepare,
    stratified_split,
)
from nasblocks.train.normalize import BatchNormalize


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to reach the network is recorded and fails like an offline machine."""
    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _all_pool(splits: DatasetSplits) -> TensorData:
    """Train + val back in file order, using the id each test image carries in pixel 0."""
    images = torch.cat([splits.train.images, splits.val.images])
    labels = torch.cat([splits.train.labels, splits.val.labels])
    order = images.flatten(1)[:, 0].argsort()
    return TensorData(images[order], labels[order])


# -- digits and synthetic ----------------------------------------------------------------------


def test_digits_loads_offline_with_fixed_sizes(no_network):
    splits = load_dataset("digits", seed=0)
    assert splits.sizes() == {"train": 1375, "val": 153, "test": 269}
    assert splits.input_shape == (1, 8, 8) and splits.num_classes == 10
    images = splits.train.images
    assert images.dtype == torch.uint8 and images.min() == 0 and images.max() == 255
    # The 17 grey levels 0..16 are spread over 0..255: round(v * 255 / 16).
    levels = torch.tensor([round(v * 255 / 16) for v in range(17)], dtype=torch.uint8)
    assert set(images.unique().tolist()) <= set(levels.tolist())
    assert torch.bincount(splits.test.labels, minlength=10).min() >= 25  # stratified
    assert not no_network


def test_digits_split_is_determined_by_the_seed():
    a, b, c = (load_dataset("digits", seed=s) for s in (3, 3, 4))
    torch.testing.assert_close(a.train.images, b.train.images)
    torch.testing.assert_close(a.test.labels, b.test.labels)
    assert a.sizes() == c.sizes()
    assert not torch.equal(a.test.images, c.test.images)


def test_train_per_class_keeps_the_first_images_of_each_class_of_the_train_split(no_network):
    full = load_dataset("digits", seed=0, val_fraction=0.35)
    small = load_dataset("digits", seed=0, val_fraction=0.35, train_per_class=25)
    # the main job's task: 250 training images, validation and test as without the cut
    assert small.sizes() == {"train": 250, "val": full.sizes()["val"], "test": 269}
    assert small.sizes()["val"] == 535
    assert torch.bincount(small.train.labels).tolist() == [25] * 10
    torch.testing.assert_close(small.val.images, full.val.images)
    for c in range(10):  # the first 25 of the class, in the train split's order
        first = full.train.images[full.train.labels == c][:25]
        torch.testing.assert_close(small.train.images[small.train.labels == c], first)
    with pytest.raises(DatasetError, match="train_per_class must be at least 1"):
        load_dataset("digits", train_per_class=0)


def test_train_per_class_is_refused_for_imagefolder(tmp_path):
    with pytest.raises(DatasetError, match="not imagefolder") as e:
        load_dataset(f"imagefolder:{tmp_path}", train_per_class=5)
    assert e.value.field == "train_per_class"


def test_stratified_split_is_a_partition_per_class():
    labels = torch.arange(100) % 4
    rest, held = stratified_split(labels, 0.2, seed=1)
    assert sorted(torch.cat([rest, held]).tolist()) == list(range(100))
    assert torch.bincount(labels[held]).tolist() == [5, 5, 5, 5]
    again, _ = stratified_split(labels, 0.2, seed=1)
    assert torch.equal(rest, again)


def test_synthetic_is_deterministic_and_learnable():
    kw = dict(synthetic_shape=(2, 8, 8), synthetic_classes=5, synthetic_size=500)
    a, b = load_dataset("synthetic", seed=7, **kw), load_dataset("synthetic", seed=7, **kw)
    assert torch.equal(a.train.images, b.train.images)
    assert a.input_shape == (2, 8, 8) and a.num_classes == 5
    other = load_dataset("synthetic", seed=8, **kw)
    assert not torch.equal(a.train.images, other.train.images)
    assert a.train.images.dtype == torch.uint8  # quantised like a real image dataset
    # Nearest class mean, fitted on train, must beat chance (0.2) by far on test.
    x, y = a.train.images.flatten(1).float(), a.train.labels
    means = torch.stack([x[y == k].mean(0) for k in range(5)])
    predicted = torch.cdist(a.test.images.flatten(1).float(), means).argmin(1)
    assert (predicted == a.test.labels).float().mean() > 0.9


def test_unknown_names_and_bad_fractions_raise_dataset_errors():
    with pytest.raises(DatasetError, match="did you mean 'cifar10'"):
        load_dataset("cifar-10")
    with pytest.raises(DatasetError, match="val_fraction"):
        load_dataset("digits", val_fraction=1.0)
    assert issubclass(DatasetError, NasBlocksError)


# -- prepare --------------------------------------------------------------------------------


def _normalised(split) -> torch.Tensor:
    """A whole split as the model sees it: converted and normalised like every batch."""
    return BatchNormalize.of(split, torch.device("cpu"), channels_last=False)(split.images)


def test_prepare_resizes_converts_channels_and_records_train_stats():
    digits = load_dataset("digits")
    ready = prepare(digits, (3, 32, 32))
    train = ready.train.images
    assert train.shape == (1375, 3, 32, 32) and ready.input_shape == (3, 32, 32)
    # Resident data stays uint8: a quarter of float32's memory.
    assert train.dtype == torch.uint8 and train.element_size() == 1
    assert all(s.images.dtype == torch.uint8 for s in (ready.val, ready.test))
    assert torch.equal(train[:, 0], train[:, 2])  # 1 -> 3 repeats the gray channel
    assert ready.train.mean == ready.val.mean == ready.test.mean == ready.mean
    assert ready.test.std == ready.std and len(ready.mean) == 3
    # Normalised with the train statistics, the train batches have mean 0 and std 1.
    x = _normalised(ready.train)
    assert x.dtype == torch.float32
    torch.testing.assert_close(x.mean((0, 2, 3)), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(x.std((0, 2, 3)), torch.ones(3), atol=1e-3, rtol=0)
    # Val: resized and rounded back to uint8, normalised with the train statistics.
    raw_val = torch.nn.functional.interpolate(
        digits.val.images.float(), size=(32, 32), mode="bilinear", align_corners=False
    )
    resized = raw_val.round().clamp(0, 255).to(torch.uint8)
    torch.testing.assert_close(ready.val.images[:, 1:2], resized, atol=1, rtol=0)
    expected = (ready.val.images[:, 1:2].double() / 255 - ready.mean[1]) / ready.std[1]
    torch.testing.assert_close(_normalised(ready.val)[:, 1:2], expected.float())
    assert prepare(ready).train.images is ready.train.images  # already prepared: no copy


def test_prepare_keeps_float_images_float_and_normalises_them_alike():
    """A float dataset in [0, 1] is kept as it is and normalised exactly like its uint8 twin."""
    raw = load_dataset("synthetic", synthetic_shape=(3, 8, 8), synthetic_size=200)
    floats = DatasetSplits(
        "floats",
        *(TensorData(s.images.float() / 255, s.labels) for s in (raw.train, raw.val, raw.test)),
        num_classes=raw.num_classes,
        input_shape=raw.input_shape,
    )
    as_uint8, as_float = prepare(raw), prepare(floats)
    assert as_float.train.images.dtype == torch.float32
    assert as_float.mean == pytest.approx(as_uint8.mean, abs=1e-6)
    assert as_float.std == pytest.approx(as_uint8.std, abs=1e-6)
    torch.testing.assert_close(_normalised(as_float.val), _normalised(as_uint8.val))


def test_prepare_averages_rgb_to_gray_and_rejects_other_channel_changes():
    rgb = load_dataset("synthetic", synthetic_shape=(3, 8, 8), synthetic_size=200)
    gray = prepare(rgb, (1, 4, 4))
    assert gray.train.images.shape[1:] == (1, 4, 4) and len(gray.mean) == 1
    two = DatasetSplits(
        "two",
        *(TensorData(torch.rand(4, 2, 4, 4), torch.zeros(4).long()),) * 3,
        num_classes=1,
        input_shape=(2, 4, 4),
    )
    with pytest.raises(DatasetError, match="cannot convert 2-channel"):
        prepare(two, (3, 4, 4))


# -- torchvision formats, written small -------------------------------------------------------


def _write_cifar(root: Path, cls, monkeypatch, per_file: int, classes: int) -> np.ndarray:
    """Pickled batches in CIFAR's layout; each image carries its index in its first pixel."""
    folder = root / cls.base_folder
    folder.mkdir(parents=True)
    key = "labels" if cls is tv.CIFAR10 else "fine_labels"
    rng = np.random.default_rng(0)
    written, index = [], 0
    for name, _ in cls.train_list + cls.test_list:
        data = rng.integers(0, 256, (per_file, 3, 32, 32), dtype=np.uint8)
        data[:, 0, 0, 0] = np.arange(index, index + per_file)
        labels = [(index + i) % 5 for i in range(per_file)]
        index += per_file
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data.reshape(per_file, 3072), key: labels}, f)
        written.append((data, labels))
    with open(folder / cls.meta["filename"], "wb") as f:
        pickle.dump({cls.meta["key"]: [f"c{i}" for i in range(classes)]}, f)
    # Our files are not the real ones: give torchvision their checksums instead.
    for attr in ("train_list", "test_list"):
        monkeypatch.setattr(cls, attr, [[n, _md5(folder / n)] for n, _ in getattr(cls, attr)])
    meta = dict(cls.meta, md5=_md5(folder / cls.meta["filename"]))
    monkeypatch.setattr(cls, "meta", meta)
    return written


@pytest.mark.parametrize(
    ("name", "cls", "per_file", "classes"),
    [
        ("cifar10", tv.CIFAR10, 10, 10),
        ("cifar100", tv.CIFAR100, 50, 100),
    ],
)
def test_cifar_batches_are_read_by_torchvision(
    tmp_path, monkeypatch, no_network, name, cls, per_file, classes
):
    written = _write_cifar(tmp_path, cls, monkeypatch, per_file, classes)
    splits = load_dataset(name, tmp_path, download=False, val_fraction=0.2)
    assert splits.num_classes == classes and splits.input_shape == (3, 32, 32)
    assert splits.sizes() == {"train": 40, "val": 10, "test": per_file}
    pool = _all_pool(splits)
    train_images = np.concatenate([d for d, _ in written[:-1]])
    assert pool.images.dtype == torch.uint8
    assert torch.equal(pool.images, torch.from_numpy(train_images))
    assert pool.labels.tolist() == [label for _, labels in written[:-1] for label in labels]
    assert torch.equal(splits.test.images, torch.from_numpy(written[-1][0]))
    assert not no_network


def _write_idx(path: Path, array: np.ndarray, packed: bool) -> None:
    """The big-endian idx format: 0x0000, type 0x08 (uint8), rank, then each dimension."""
    header = struct.pack(">I", 0x0800 + array.ndim)
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    if packed:
        with gzip.open(f"{path}.gz", "wb") as f:
            f.write(header + array.tobytes())
    else:
        path.write_bytes(header + array.tobytes())


@pytest.mark.parametrize(
    ("name", "folder", "packed"),
    [
        ("mnist", "MNIST", False),
        ("fashion_mnist", "FashionMNIST", True),  # only the .gz files, as downloaded
    ],
)
def test_mnist_idx_files_are_read_by_torchvision(tmp_path, no_network, name, folder, packed):
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(1)
    sets = {}
    for prefix, n in (("train", 40), ("t10k", 10)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        images[:, 0, 0] = np.arange(n)
        labels = (np.arange(n) % 10).astype(np.uint8)
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images, packed)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels, packed)
        sets[prefix] = images, labels
    splits = load_dataset(name, tmp_path, download=False, val_fraction=0.25)
    assert splits.input_shape == (1, 28, 28) and splits.num_classes == 10
    assert splits.sizes() == {"train": 30, "val": 10, "test": 10}
    pool = _all_pool(splits)
    assert torch.equal(pool.images[:, 0], torch.from_numpy(sets["train"][0]))
    assert pool.labels.tolist() == sets["train"][1].tolist()
    assert torch.equal(splits.test.images[:, 0], torch.from_numpy(sets["t10k"][0]))
    assert not no_network


def test_svhn_mat_files_are_read_by_torchvision(tmp_path, monkeypatch, no_network):
    rng = np.random.default_rng(2)
    written = {}
    split_list = dict(tv.SVHN.split_list)
    for split, n in (("train", 30), ("test", 10)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)  # (H, W, C, N) as SVHN ships
        x[0, 0, 0, :] = np.arange(n)
        digit = np.arange(n) % 5
        y = np.where(digit == 0, 10, digit).astype(np.uint8).reshape(n, 1)  # SVHN: 0 is 10
        filename = split_list[split][1]
        scipy.io.savemat(tmp_path / filename, {"X": x, "y": y})
        split_list[split] = [split_list[split][0], filename, _md5(tmp_path / filename)]
        written[split] = x, y
    monkeypatch.setattr(tv.SVHN, "split_list", split_list)
    splits = load_dataset("svhn", tmp_path, download=False, val_fraction=0.2)
    assert splits.sizes() == {"train": 25, "val": 5, "test": 10}
    pool = _all_pool(splits)
    x, y = written["train"]
    assert torch.equal(pool.images, torch.from_numpy(x).permute(3, 2, 0, 1))
    assert pool.labels.tolist() == (y[:, 0] % 10).tolist()  # 10 -> 0
    assert not no_network


EXPECTED_FILE = {
    "cifar10": "cifar-10-batches-py",
    "cifar100": "cifar-100-python",
    "mnist": "MNIST/raw",
    "fashion_mnist": "FashionMNIST/raw",
    "svhn": "train_32x32.mat",
}


@pytest.mark.parametrize("name", TORCHVISION_SETS)
def test_missing_files_name_what_goes_where_without_network(tmp_path, no_network, name):
    with pytest.raises(DatasetError) as info:
        load_dataset(name, tmp_path, download=False)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{name}: missing ")
    assert EXPECTED_FILE[name] in message and str(tmp_path) in message
    assert not no_network


def test_failed_download_is_a_dataset_error(tmp_path, no_network):
    with pytest.raises(DatasetError, match="download failed") as info:
        load_dataset("cifar10", tmp_path, download=True)
    assert "\n" not in str(info.value) and "data_batch_1" in str(info.value)
    assert no_network  # it did try, and was refused


def test_unreadable_files_are_a_dataset_error(tmp_path, monkeypatch, no_network):
    _write_cifar(tmp_path, tv.CIFAR10, monkeypatch, 2, 10)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"truncated")
    with pytest.raises(DatasetError, match="could not be read"):
        load_dataset("cifar10", tmp_path, download=False)


# -- imagefolder ----------------------------------------------------------------------------


def _write_pngs(folder: Path, per_class: int, mode: str = "RGB", size=(10, 8)) -> None:
    rng = np.random.default_rng(3)
    for label, name in enumerate(("cat", "dog")):
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            pixels = rng.integers(0, 100, shape) + 150 * label
            Image.fromarray(pixels.astype(np.uint8), mode).save(folder / name / f"{i}.png")


def test_imagefolder_splits_from_the_seed_and_prepares(tmp_path):
    _write_pngs(tmp_path, per_class=10)
    splits = load_dataset(f"imagefolder:{tmp_path}", seed=1)
    assert splits.classes == ("cat", "dog") and splits.num_classes == 2
    assert splits.input_shape == (3, 8, 10)
    assert splits.sizes() == {"train": 14, "val": 2, "test": 4}
    x, label = splits.train[0]
    assert x.shape == (3, 8, 10) and x.dtype == torch.uint8 and label in (0, 1)
    again = load_dataset(f"imagefolder:{tmp_path}", seed=1)
    assert again.test.samples == splits.test.samples
    other = load_dataset(f"imagefolder:{tmp_path}", seed=2)
    assert other.test.samples != splits.test.samples
    ready = prepare(splits, (1, 4, 4))
    assert ready.train[0][0].shape == (1, 4, 4) and len(ready.mean) == 1
    assert ready.train.mean == ready.val.mean == ready.mean and ready.test.std == ready.std
    train = torch.stack([ready.train[i][0] for i in range(len(ready.train))])
    assert train.dtype == torch.uint8  # items stay raw; batches are normalised on the device
    x = BatchNormalize.of(ready.train, torch.device("cpu"), channels_last=False)(train)
    assert abs(x.mean().item()) < 1e-4  # the statistics come from these very images


def test_imagefolder_uses_train_and_test_folders_and_gray_images(tmp_path):
    _write_pngs(tmp_path / "train", per_class=5, mode="L")
    _write_pngs(tmp_path / "test", per_class=2, mode="L")
    splits = load_dataset(f"imagefolder:{tmp_path}", val_fraction=0.2)
    assert splits.input_shape == (1, 8, 10)
    assert splits.sizes() == {"train": 8, "val": 2, "test": 4}
    (tmp_path / "test" / "bird").mkdir()
    Image.new("L", (10, 8)).save(tmp_path / "test" / "bird" / "0.png")
    with pytest.raises(DatasetError, match="differ from train"):
        load_dataset(f"imagefolder:{tmp_path}")


def test_imagefolder_without_class_folders_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="one folder of images per class"):
        load_dataset(f"imagefolder:{tmp_path}")
