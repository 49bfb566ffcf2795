"""Multi-input nodes. Each ``forward`` takes the inputs as separate arguments."""

from __future__ import annotations

import torch
from torch import nn


class Concat(nn.Module):
    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=1)


class Add(nn.Module):
    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Multiply(nn.Module):
    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out


class ChannelSlice(nn.Module):
    def __init__(self, start: int, channels: int) -> None:
        super().__init__()
        self.start, self.stop = start, start + channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.start : self.stop]
