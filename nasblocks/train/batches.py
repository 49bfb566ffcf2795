"""Where training and evaluation batches come from: device tensors, or a DataLoader for files.

In memory, a batch is one indexing of tensors already on the device: no worker processes, no
collation, no host-to-device copy per step.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from nasblocks.train.config import TrainConfig
from nasblocks.train.data import TensorData


class TrainBatches:
    """An epoch's shuffled training batches, already on the device.

    In-memory data: a fresh permutation (drawn on the CPU, so the order is the same on every
    device) indexes the device tensors. Files: a shuffling ``DataLoader``.
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
        self.memory_format = torch.channels_last if channels_last else torch.preserve_format
        n = len(data)
        if isinstance(data, TensorData):
            self.data = data
            if channels_last:
                images = data.images.contiguous(memory_format=torch.channels_last)
                self.data = TensorData(images, data.labels)
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
        if self.loader is None:
            n = len(self.data)
            order = torch.randperm(n, generator=self.generator)[: self.steps * self.batch_size]
            order = order.to(self.device, non_blocking=True).view(self.steps, self.batch_size)
            images, labels = self.data.images, self.data.labels
            for index in order:
                yield images[index], labels[index]
            return
        for step, (x, y) in enumerate(self.loader):
            if step == self.steps:
                break
            x = x.to(self.device, non_blocking=True, memory_format=self.memory_format)
            yield x, y.to(self.device, non_blocking=True)


def eval_batches(
    data: TensorData | Dataset, config: TrainConfig, device: torch.device, channels_last: bool
) -> Iterator[tuple[Tensor, Tensor]]:
    """``data`` in order, in ``eval_batch_size`` slices (views, for in-memory data)."""
    batch = config.eval_batch_size or 2 * config.batch_size
    if isinstance(data, TensorData):
        images, labels = data.images.to(device), data.labels.to(device)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        for start in range(0, len(data), batch):
            yield images[start : start + batch], labels[start : start + batch]
        return
    fmt = torch.channels_last if channels_last else torch.preserve_format
    loader = DataLoader(
        data,
        batch_size=batch,
        num_workers=config.loader_workers,
        pin_memory=device.type == "cuda",
    )
    for x, y in loader:
        yield x.to(device, non_blocking=True, memory_format=fmt), y.to(device, non_blocking=True)
