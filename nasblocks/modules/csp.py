"""timm-layout DarkNet / CSP stages (``timm.models.cspnet``): see :mod:`nasblocks.blocks.csp`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nasblocks.modules.common import make_activation


def _act(activation: Any, negative_slope: float) -> nn.Module:
    if activation == "leaky_relu":
        return nn.LeakyReLU(negative_slope, inplace=True)
    if activation == "mish":
        return nn.Mish(inplace=True)
    return make_activation(activation)


class ConvNormAct(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        activation: str = "leaky_relu",
        negative_slope: float = 0.01,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        pad = ((stride - 1) + kernel_size - 1) // 2
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, pad, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=norm_eps)
        self.act = _act(activation, negative_slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class DarkBlock(nn.Module):
    """conv2(conv1(x)) + x: a 1x1 to ``mid``, a 3x3 back (timm's ``DarkBlock``)."""

    def __init__(self, cin: int, cout: int, mid: int, groups: int, act: dict[str, Any]) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(cin, mid, 1, **act)
        self.conv2 = ConvNormAct(mid, cout, 3, groups=groups, **act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x)) + x


class BottleneckBlock(nn.Module):
    """act3(conv3(conv2(conv1(x))) + x), conv3 without activation (timm's ``BottleneckBlock``)."""

    def __init__(self, cin: int, cout: int, mid: int, groups: int, act: dict[str, Any]) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(cin, mid, 1, **act)
        self.conv2 = ConvNormAct(mid, mid, 3, groups=groups, **act)
        self.conv3 = ConvNormAct(mid, cout, 1, activation="none")
        self.act3 = _act(**act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act3(self.conv3(self.conv2(self.conv1(x))) + x)


def _blocks(
    cin: int, out: int, mid: int, depth: int, block: str, groups: int, act: dict[str, Any]
):
    cls = DarkBlock if block == "dark" else BottleneckBlock
    return nn.Sequential(
        *(cls(cin if i == 0 else out, out, mid, groups, act) for i in range(depth))
    )


class DarkStage(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        depth: int = 1,
        stride: int = 2,
        block: str = "dark",
        bottle_ratio: float = 0.5,
        block_ratio: float = 1.0,
        groups: int = 1,
        activation: str = "leaky_relu",
        negative_slope: float = 0.01,
    ) -> None:
        super().__init__()
        act: dict[str, Any] = {"activation": activation, "negative_slope": negative_slope}
        b = int(round(out_channels * block_ratio))
        self.conv_down = ConvNormAct(in_channels, out_channels, 3, stride, groups, **act)
        self.blocks = _blocks(
            out_channels, b, int(round(b * bottle_ratio)), depth, block, groups, act
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.conv_down(x))


class CSPStage(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        depth: int = 1,
        stride: int = 2,
        block: str = "dark",
        bottle_ratio: float = 0.5,
        block_ratio: float = 1.0,
        groups: int = 1,
        activation: str = "leaky_relu",
        negative_slope: float = 0.01,
        expand_ratio: float = 1.0,
        down_growth: bool = False,
        cross_linear: bool = False,
    ) -> None:
        super().__init__()
        act: dict[str, Any] = {"activation": activation, "negative_slope": negative_slope}
        down = in_channels if stride == 1 else (out_channels if down_growth else in_channels)
        self.conv_down: nn.Module = (
            nn.Identity()
            if stride == 1
            else ConvNormAct(in_channels, down, 3, stride, groups, **act)
        )
        exp = int(round(out_channels * expand_ratio))
        self.split_at = exp // 2
        exp_act = {**act, "activation": "none"} if cross_linear else act
        self.conv_exp = ConvNormAct(down, exp, 1, **exp_act)
        b = int(round(out_channels * block_ratio))
        self.blocks = _blocks(
            self.split_at, b, int(round(b * bottle_ratio)), depth, block, groups, act
        )
        self.conv_transition_b = ConvNormAct(b, self.split_at, 1, **act)
        self.conv_transition = ConvNormAct(exp, out_channels, 1, **act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_exp(self.conv_down(x))
        halves = torch.split(x, self.split_at, 1)
        xs, xb = halves[0], halves[1]
        xb = self.conv_transition_b(self.blocks(xb))
        return self.conv_transition(torch.cat([xs, xb], dim=1))
