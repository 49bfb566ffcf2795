"""Implementations of ``transform_input`` and ``pixel_classifier`` (see the block file)."""

from __future__ import annotations

import torch
from torch import nn


class _ChannelAffine(nn.Module):
    """x * scale + shift with per-channel constants (buffers left out of the state_dict)."""

    scale: torch.Tensor
    shift: torch.Tensor

    def __init__(self, scale: list[float], shift: list[float]) -> None:
        super().__init__()
        # Constants, not state: torchvision's checkpoints have no such keys.
        self.register_buffer("scale", torch.tensor(scale).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("shift", torch.tensor(shift).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift  # (B, C, H, W)


class TransformInput(nn.Module):
    """torchvision's ``transform_input``: channel c -> x * std/0.5 + (mean - 0.5)/0.5."""

    def __init__(
        self,
        in_channels: int,
        enabled: bool = True,
        mean: list[float] | None = None,
        std: list[float] | None = None,
    ) -> None:
        super().__init__()
        mean = [0.485, 0.456, 0.406] if mean is None else mean
        std = [0.229, 0.224, 0.225] if std is None else std
        self.transform: nn.Module = (
            _ChannelAffine([s / 0.5 for s in std], [(m - 0.5) / 0.5 for m in mean])
            if enabled
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.transform(x)


def pixel_classifier(in_channels: int, num_classes: int, bias: bool = True) -> nn.Conv2d:
    """The 1x1 class-score convolution, a plain ``nn.Conv2d`` (keys ``weight``, ``bias``)."""
    return nn.Conv2d(in_channels, num_classes, kernel_size=1, bias=bias)
