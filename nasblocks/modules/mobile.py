"""MobileNetV2's inverted residual and the Sequential conv-norm-activation it is made of.

Both are laid out as torchvision's (``Conv2dNormActivation`` is an ``nn.Sequential`` of conv,
norm, activation), so ``state_dict`` keys match one for one.
"""

from __future__ import annotations

import torch
from torch import nn

from nasblocks.blocks._shapes import IntOrPair, same_padding
from nasblocks.modules.common import NormActKwargs
from nasblocks.modules.core import ConvNormAct


class ConvBnAct(nn.Sequential):
    """conv -> norm -> activation as children ``0``, ``1``, ``2`` (Identity when off)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrPair = 3,
        stride: IntOrPair = 1,
        padding: IntOrPair | str | None = None,
        dilation: IntOrPair = 1,
        groups: int = 1,
        depthwise: bool = False,
        bias: bool | None = None,
        norm: str = "batch",
        norm_eps: float = 1e-5,
        norm_momentum: float = 0.1,
        activation: str = "relu",
    ) -> None:
        if padding is None or padding == "same":  # other strings are nn.Conv2d's own
            padding = same_padding(kernel_size, dilation)
        # The ``conv`` block's layers, re-parented as torchvision's flat Sequential.
        layers = ConvNormAct(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            depthwise,
            bias,
            norm,
            norm_eps,
            norm_momentum,
            activation,
        )
        super().__init__(*layers.children())


class _AddInput(nn.Module):
    def forward(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return x + out


class _OutputOnly(nn.Module):
    def forward(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return out


class InvertedResidual(nn.Module):
    """torchvision's MobileNetV2 ``InvertedResidual``: child ``conv`` = [expand], dw, project.

    ``conv.0`` / ``conv.1`` are ConvBnAct (keys ``conv.0.0.weight``, ``conv.0.1.*``), the
    projection is a bare 1x1 conv and norm with no activation (the linear bottleneck).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        expand_ratio: float = 6,
        norm_eps: float = 1e-5,
        norm_momentum: float = 0.1,
        activation: str = "relu6",
    ) -> None:
        super().__init__()
        hidden = int(round(in_channels * expand_ratio))
        bn = NormActKwargs(
            norm="batch", norm_eps=norm_eps, norm_momentum=norm_momentum, activation=activation
        )
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBnAct(in_channels, hidden, 1, **bn))
        layers += [
            ConvBnAct(hidden, hidden, 3, stride, groups=hidden, **bn),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels, eps=norm_eps, momentum=norm_momentum),
        ]
        self.conv = nn.Sequential(*layers)
        # The residual exists only where shapes allow it (torchvision's use_res_connect).
        self.use_res_connect = stride == 1 and in_channels == out_channels
        self.skip = _AddInput() if self.use_res_connect else _OutputOnly()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x, self.conv(x))  # (B, C_out, H', W')
