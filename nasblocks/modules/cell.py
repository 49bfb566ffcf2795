"""Modules of :mod:`nasblocks.blocks.cell`."""

from __future__ import annotations

import torch
from torch import nn


class ReLUConvBN(nn.Module):
    """``op = Sequential(ReLU, Conv2d(bias=False), BatchNorm2d)``, NAS-Bench-201's layout."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 3,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 1,
        dilation: int | tuple[int, int] = 1,
        affine: bool = True,
        norm_eps: float = 1e-5,
        norm_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),  # the input is another edge's input too
            nn.Conv2d(
                in_channels, out_channels, kernel_size, stride, padding, dilation, bias=False
            ),
            nn.BatchNorm2d(out_channels, eps=norm_eps, momentum=norm_momentum, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Zero(nn.Module):
    """``x * 0``: the ``none`` edge."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)
