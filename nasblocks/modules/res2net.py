"""Res2Net's bottleneck in timm's layout: see :mod:`nasblocks.blocks.res2net`."""

from __future__ import annotations

import torch
from torch import nn

from nasblocks.modules.common import conv2d, make_activation, make_norm
from nasblocks.modules.residual import _ResNetBlock


class Res2NetBottleneck(_ResNetBlock):
    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        groups: int = 1,
        width_per_group: int = 26,
        dilation: int = 1,
        first_dilation: int | None = None,
        attention: str = "none",
        attention_reduction: int = 16,
        zero_init_last: bool = False,
        downsample: bool | None = None,
        avg_down: bool = False,
        drop_path: float = 0.0,
        norm: str = "batch",
        norm_eps: float = 1e-5,
        norm_momentum: float = 0.1,
        activation: str = "relu",
        scale: int = 4,
        expansion: int = 4,
    ) -> None:
        super().__init__()
        w = channels * width_per_group // 64 * groups
        out_channels = channels * expansion
        bias = norm == "none"
        if downsample is None:
            downsample = stride != 1 or in_channels != out_channels
        self.width, self.scale = w, scale
        self.is_first = stride > 1 or downsample
        self.conv1 = conv2d(in_channels, w * scale, 1, bias=bias)
        self.bn1 = make_norm(norm, w * scale, norm_eps, norm_momentum)
        n = max(1, scale - 1)
        self.convs = nn.ModuleList(
            conv2d(w, w, 3, stride, groups=groups, bias=bias) for _ in range(n)
        )
        self.bns = nn.ModuleList(make_norm(norm, w, norm_eps, norm_momentum) for _ in range(n))
        # timm (after Res2Net's code): a 3x3 average pool, padding counted, in first blocks
        self.pool: nn.Module = nn.AvgPool2d(3, stride, 1) if self.is_first else nn.Identity()
        self.conv3 = conv2d(w * scale, out_channels, 1, bias=bias)
        self.bn3 = make_norm(norm, out_channels, norm_eps, norm_momentum)
        self.relu = make_activation(activation)
        self._finish_init(
            in_channels, out_channels, stride, attention, attention_reduction, zero_init_last,
            downsample, avg_down, drop_path, norm, norm_eps, norm_momentum, "bn3",
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))  # (B, width * scale, H, W)
        parts = torch.split(out, self.width, 1)  # one split: its backward is one concat
        outs = []
        sp = parts[0]
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns, strict=True)):
            sp = parts[i] if i == 0 or self.is_first else sp + parts[i]
            sp = self.relu(bn(conv(sp)))  # (B, width, H', W')
            outs.append(sp)
        if self.scale > 1:
            outs.append(self.pool(parts[self.scale - 1]))
        out = self.bn3(self.conv3(torch.cat(outs, 1)))
        return self._merge(x, out)
