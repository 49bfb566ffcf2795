"""Dual Path Networks' block in timm's layout: see :mod:`nasblocks.blocks.dpn`."""

from __future__ import annotations

import torch
from torch import nn


class BnAct(nn.Module):
    def __init__(self, in_channels: int, norm_eps: float = 1e-3) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_channels, eps=norm_eps)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(x))


class BnActConv(nn.Module):
    """Pre-activation unit: BN (``bn``), ReLU, then a bias-free conv (``conv``)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, groups: int, eps: float):
        super().__init__()
        self.bn = nn.BatchNorm2d(cin, eps=eps)
        self.act = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.act(self.bn(x)))


class DualPathBlock(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        inc: int,
        mid_channels: int,
        groups: int = 32,
        type: str = "normal",
        norm_eps: float = 1e-3,
    ) -> None:
        super().__init__()
        stride = 2 if type == "down" else 1
        self.width = out_channels
        self.proj: str | None = None
        if type != "normal":
            self.proj = "c1x1_w_s2" if type == "down" else "c1x1_w_s1"
            unit = BnActConv(in_channels, out_channels + 2 * inc, 1, stride, 1, norm_eps)
            self.add_module(self.proj, unit)
        self.c1x1_a = BnActConv(in_channels, mid_channels, 1, 1, 1, norm_eps)
        self.c3x3_b = BnActConv(mid_channels, mid_channels, 3, stride, groups, norm_eps)
        self.c1x1_c = BnActConv(mid_channels, out_channels + inc, 1, 1, 1, norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        paths = x if self.proj is None else getattr(self, self.proj)(x)
        residual, dense = paths[:, : self.width], paths[:, self.width :]
        out = self.c1x1_c(self.c3x3_b(self.c1x1_a(x)))  # (B, width + inc, H', W')
        return torch.cat([residual + out[:, : self.width], dense, out[:, self.width :]], dim=1)
