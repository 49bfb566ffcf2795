"""timm's GhostNet (v1) modules, child for child: ``state_dict`` keys match timm's.

``GhostModule`` (``primary_conv`` / ``cheap_operation``, each Sequential conv, BN, act) and
``GhostBottleneck`` (``ghost1``, ``conv_dw``, ``bn_dw``, ``se``, ``ghost2``, ``shortcut``).
"""

from __future__ import annotations

import torch
from torch import nn

from nasblocks.blocks.ghostnet import primary_channels, projects_shortcut, se_hidden
from nasblocks.modules.common import make_activation
from nasblocks.modules.efficientnet import SqueezeExcite


class GhostModule(nn.Module):
    """A conv to ``ceil(out / ratio)`` channels and a depthwise conv on its output, concatenated
    and cut to ``out_channels``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        ratio: int = 2,
        cheap_kernel_size: int = 3,
        stride: int = 1,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        init = primary_channels(out_channels, ratio)
        new = init * (ratio - 1)
        k, dw = kernel_size, cheap_kernel_size
        self.out_channels = out_channels
        self.primary_conv = nn.Sequential(
            nn.Conv2d(in_channels, init, k, stride, k // 2, bias=False),
            nn.BatchNorm2d(init),
            make_activation(activation),
        )
        self.cheap_operation = nn.Sequential(
            nn.Conv2d(init, new, dw, 1, dw // 2, groups=init, bias=False),
            nn.BatchNorm2d(new),
            make_activation(activation),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.primary_conv(x)  # (B, init, H', W')
        out = torch.cat([x1, self.cheap_operation(x1)], 1)  # (B, ratio * init, H', W')
        return out[:, : self.out_channels]


class GhostBottleneck(nn.Module):
    """ghost1, [conv_dw, bn_dw], [se], ghost2, plus the shortcut (the input or a projection)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        mid_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        se: float = 0.0,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        pad = (kernel_size - 1) // 2
        self.ghost1 = GhostModule(in_channels, mid_channels, activation=activation)
        self.conv_dw: nn.Module = nn.Identity()
        self.bn_dw: nn.Module = nn.Identity()
        if stride > 1:
            self.conv_dw = nn.Conv2d(
                mid_channels, mid_channels, kernel_size, stride, pad, groups=mid_channels,
                bias=False,
            )  # fmt: skip
            self.bn_dw = nn.BatchNorm2d(mid_channels)
        self.se: nn.Module = nn.Identity()
        if se > 0:
            hidden = se_hidden(mid_channels, se)
            self.se = SqueezeExcite(mid_channels, hidden, activation, gate="hardsigmoid")
        self.ghost2 = GhostModule(mid_channels, out_channels, activation="none")
        self.shortcut = nn.Sequential()  # empty: the input itself
        if projects_shortcut(in_channels, out_channels, stride):
            self.shortcut = nn.Sequential(
                nn.Conv2d(
                    in_channels, in_channels, kernel_size, stride, pad, groups=in_channels,
                    bias=False,
                ),
                nn.BatchNorm2d(in_channels),
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels),
            )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn_dw(self.conv_dw(self.ghost1(x)))  # (B, mid, H', W')
        return self.ghost2(self.se(out)) + self.shortcut(x)  # (B, C_out, H', W')
