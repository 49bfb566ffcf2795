"""Where training and evaluation batches come from: device tensors, or a DataLoader for files.

In memory, a batch is one indexing of ``uint8`` tensors already on the device plus one fused
convert-and-normalise kernel: no worker processes, no collation, no host-to-device copy per
step. Files go through a ``DataLoader`` (pinned memory on CUDA) and :class:`Prefetch`, which
copies the next batch while the current one trains. Either way batches come out as
normalised float32 in the model's memory format.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from nasblocks.train.config import TrainConfig
from nasblocks.train.data import TensorData, split_size
from nasblocks.train.normalize import BatchNormalize
from nasblocks.train.prefetch import Prefetch


class TrainBatches:
    """An epoch's shuffled training batches, on the device and normalised.

    In-memory data: a fresh permutation (drawn on the CPU, so the order is the same on every
    device) indexes the device tensors. Files: a shuffling ``DataLoader``, prefetched.
    """

    def __init__(
        self,
        data: TensorData | Dataset,
        config: TrainConfig,
        device: torch.device,
        channels_last: bool,
    ) -> None:
        self.device = device
        self.generator = torch.Generator().manual_seed(config.seed)
        self.normalize = BatchNormalize.of(data, device, channels_last)
        n = split_size(data)
        if isinstance(data, TensorData):
            self.data = data.to(device)
            self.batch_size = min(config.batch_size, n)
            steps = n // self.batch_size
            self.loader = None
        else:
            workers = config.loader_workers
            self.loader = DataLoader(
                data,
                batch_size=config.batch_size,
                shuffle=True,
                drop_last=n > config.batch_size,
                num_workers=workers,
                pin_memory=device.type == "cuda",
                generator=self.generator,
                persistent_workers=workers > 0,
            )
            steps = len(self.loader)
        cap = config.max_train_batches
        self.steps = min(steps, cap) if cap is not None else steps

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        normalize = self.normalize
        if self.loader is None:
            n = len(self.data)
            order = torch.randperm(n, generator=self.generator)[: self.steps * self.batch_size]
            order = order.to(self.device, non_blocking=True).view(self.steps, self.batch_size)
            images, labels = self.data.images, self.data.labels
            for index in order:
                yield normalize(images[index]), labels[index]
            return
        # islice before Prefetch: reading one batch ahead must not read past the cap.
        for x, y in Prefetch(itertools.islice(self.loader, self.steps), self.device):
            yield normalize(x), y


def eval_batches(
    data: TensorData | Dataset, config: TrainConfig, device: torch.device, channels_last: bool
) -> Iterator[tuple[Tensor, Tensor]]:
    """``data`` in order, in ``eval_batch_size`` slices, on the device and normalised."""
    batch = config.eval_batch_size or 2 * config.batch_size
    normalize = BatchNormalize.of(data, device, channels_last)
    if isinstance(data, TensorData):
        images, labels = data.images.to(device), data.labels.to(device)
        for start in range(0, len(data), batch):
            yield normalize(images[start : start + batch]), labels[start : start + batch]
        return
    loader = DataLoader(
        data,
        batch_size=batch,
        num_workers=config.loader_workers,
        pin_memory=device.type == "cuda",
    )
    for x, y in Prefetch(loader, device):
        yield normalize(x), y
