"""Batches: uint8 resident data normalised per batch, channels-last, and the prefetcher."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from nasblocks.train import TensorData, TrainConfig
from nasblocks.train.batches import TrainBatches, eval_batches
from nasblocks.train.normalize import BatchNormalize
from nasblocks.train.prefetch import Prefetch

CPU = torch.device("cpu")
MEAN, STD = (0.2, 0.5, 0.7), (0.1, 0.25, 0.3)


def _uint8_data(n: int = 40, seed: int = 0) -> TensorData:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 5, 6), dtype=torch.uint8, generator=generator)
    return TensorData(images, torch.arange(n), mean=MEAN, std=STD)


def _reference(images: torch.Tensor) -> torch.Tensor:
    """``(x / 255 - mean) / std``, written out in float64."""
    mean = torch.tensor(MEAN, dtype=torch.float64).view(1, -1, 1, 1)
    std = torch.tensor(STD, dtype=torch.float64).view(1, -1, 1, 1)
    return ((images.double() / 255 - mean) / std).float()


# -- normalisation ----------------------------------------------------------------------------


@pytest.mark.parametrize("channels_last", [False, True])
def test_uint8_batches_become_normalised_float_in_the_asked_memory_format(channels_last):
    data = _uint8_data()
    out = BatchNormalize.of(data, CPU, channels_last)(data.images)
    assert out.dtype == torch.float32
    assert out.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert out.is_contiguous() != channels_last
    torch.testing.assert_close(out, _reference(data.images))


def test_without_statistics_uint8_is_scaled_and_float_passes():
    images = torch.randint(0, 256, (4, 3, 2, 2), dtype=torch.uint8)
    plain = BatchNormalize(None, None, CPU)
    torch.testing.assert_close(plain(images), images.float() / 255)
    ready = torch.randn(4, 3, 2, 2)
    assert plain(ready) is ready  # model-ready floats are not copied
    assert plain(ready.half()).dtype == torch.float32


# -- prefetching ------------------------------------------------------------------------------


def test_prefetch_yields_the_same_batches_in_order_reading_one_ahead():
    batches = [(torch.full((2, 3), float(i)), torch.tensor([i, i])) for i in range(5)]
    taken: list[int] = []

    def source():
        for i, batch in enumerate(batches):
            taken.append(i)
            yield batch

    out = []
    for k, (x, y) in enumerate(Prefetch(source(), CPU)):
        assert len(taken) == min(k + 2, 5)  # batch k+1 is already on its way
        out.append((x, y))
    assert len(out) == 5
    for (x, y), (ex, ey) in zip(out, batches, strict=True):
        assert torch.equal(x, ex) and torch.equal(y, ey)
    assert list(Prefetch([], CPU)) == []


def test_prefetch_passes_a_data_loaders_batches_through_unchanged():
    data = TensorDataset(torch.arange(30.0).view(10, 3), torch.arange(10))
    loader = DataLoader(data, batch_size=4)
    for (x, y), (ex, ey) in zip(Prefetch(loader, CPU), loader, strict=True):
        assert torch.equal(x, ex) and torch.equal(y, ey)


# -- training and evaluation batches ----------------------------------------------------------


def test_in_memory_batches_index_the_uint8_data_without_copying_it():
    data = _uint8_data()
    config = TrainConfig(batch_size=8, seed=3, device="cpu")
    batches = TrainBatches(data, config, CPU, channels_last=True)
    assert batches.data.images.dtype == torch.uint8
    assert batches.data.images.data_ptr() == data.images.data_ptr()  # no per-fit copy
    order = torch.randperm(40, generator=torch.Generator().manual_seed(3)).view(5, 8)
    got = list(batches)
    assert len(got) == batches.steps == 5
    for (x, y), index in zip(got, order, strict=True):
        assert torch.equal(y, data.labels[index])
        assert x.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(x, _reference(data.images[index]))
    again = [y for _, y in batches]
    assert not torch.equal(torch.cat(again), torch.cat([y for _, y in got]))  # new epoch order


def test_eval_batches_cover_the_split_in_order():
    data = _uint8_data(n=19)
    config = TrainConfig(eval_batch_size=8, device="cpu")
    got = list(eval_batches(data, config, CPU, channels_last=False))
    assert [len(y) for _, y in got] == [8, 8, 3]
    torch.testing.assert_close(torch.cat([x for x, _ in got]), _reference(data.images))
    assert torch.equal(torch.cat([y for _, y in got]), data.labels)


class CountingImages(Dataset):
    """uint8 images with the normalisation a prepared file dataset carries; counts reads."""

    mean, std = MEAN, STD

    def __init__(self, n: int) -> None:
        self.data = _uint8_data(n)
        self.reads = 0

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        self.reads += 1
        return self.data.images[index], int(self.data.labels[index])


def test_loader_batches_are_capped_normalised_and_never_read_past_the_cap():
    files = CountingImages(40)
    config = TrainConfig(batch_size=4, max_train_batches=3, loader_workers=0, device="cpu")
    batches = TrainBatches(files, config, CPU, channels_last=True)
    got = list(batches)
    assert len(got) == 3 and files.reads == 12  # the look-ahead stops at the cap
    for x, y in got:
        assert x.dtype == torch.float32 and x.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(x, _reference(files.data.images[y]))
