"""Batches reach the model as normalised float32, made from ``uint8`` pixels on the device.

Resident data stays ``uint8`` (a quarter of float32's memory, and a quarter of the bytes per
host-to-device copy for file-backed data); each batch is converted in one fused kernel,
``x * scale + shift`` (``torch.addcmul``, with ``scale = 1 / (255 std)`` and
``shift = -mean / std``), written straight into the memory format the model wants, so
channels-last costs no extra copy either.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


class BatchNormalize:
    """``uint8`` (0..255) or float ([0, 1]) batches -> normalised float32 in ``memory_format``.

    Without ``mean`` / ``std``, ``uint8`` batches are only scaled to [0, 1] and float ones are
    taken as ready for the model (only their memory format is set).
    """

    def __init__(
        self,
        mean: Sequence[float] | None,
        std: Sequence[float] | None,
        device: torch.device,
        channels_last: bool = False,
    ) -> None:
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.identity = mean is None
        m = torch.tensor(mean if mean is not None else [0.0], dtype=torch.float64)
        s = torch.tensor(std if std is not None else [1.0], dtype=torch.float64)
        # Products formed in float64 and rounded once, so uint8 and float inputs agree.
        self.shift = (-m / s).float().view(1, -1, 1, 1).to(device)  # (1, C, 1, 1)
        self.scale = (1.0 / s).float().view(1, -1, 1, 1).to(device)
        self.scale_uint8 = (1.0 / (255.0 * s)).float().view(1, -1, 1, 1).to(device)

    @classmethod
    def of(cls, split: object, device: torch.device, channels_last: bool) -> BatchNormalize:
        """The normalisation a split asks for through its ``mean`` / ``std`` attributes."""
        mean, std = getattr(split, "mean", None), getattr(split, "std", None)
        if not isinstance(mean, Sequence) or not isinstance(std, Sequence):
            mean = std = None  # e.g. a user's Dataset whose ``mean`` is something else
        return cls(mean, std, device, channels_last)

    def __call__(self, x: Tensor) -> Tensor:
        """``x`` (B, C, H, W) on the device -> float32 (B, C, H, W) in the memory format."""
        if x.dtype != torch.uint8 and self.identity:
            return x.float().contiguous(memory_format=self.memory_format)
        scale = self.scale_uint8 if x.dtype == torch.uint8 else self.scale
        out = torch.empty(
            x.shape, dtype=torch.float32, device=x.device, memory_format=self.memory_format
        )
        return torch.addcmul(self.shift, x, scale, out=out)  # (B, C, H, W) float32
