"""Implementations of the primitive blocks that are not plain ``torch.nn`` classes."""

from __future__ import annotations

import torch
from torch import nn

from nasblocks.blocks._shapes import IntOrPair
from nasblocks.modules.common import conv2d, conv_bias, make_activation, make_norm


class ConvNormAct(nn.Module):
    """conv -> norm -> activation, with timm/torchvision-compatible child names."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrPair = 3,
        stride: IntOrPair = 1,
        padding: IntOrPair | str = 1,
        dilation: IntOrPair = 1,
        groups: int = 1,
        depthwise: bool = False,
        bias: bool | None = None,
        norm: str = "batch",
        norm_eps: float = 1e-5,
        norm_momentum: float = 0.1,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if depthwise:
            groups = in_channels
        bias = conv_bias(bias, norm)
        self.conv = conv2d(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias
        )
        self.bn = make_norm(norm, out_channels, norm_eps, norm_momentum)
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


def GroupNorm(in_channels: int, num_groups: int = 32, norm_eps: float = 1e-5) -> nn.GroupNorm:  # noqa: N802
    return nn.GroupNorm(num_groups, in_channels, eps=norm_eps)


def Linear(in_channels: int, out_features: int, bias: bool = True) -> nn.Linear:  # noqa: N802
    return nn.Linear(in_channels, out_features, bias=bias)


class ClassifierHead(nn.Module):
    """Global pool -> flatten -> dropout -> ``fc``.

    ``flat_input=True`` (chosen by the builder for a vector input) drops the pooling.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        dropout: float = 0.0,
        pool: str = "avg",
        flat_input: bool = False,
    ) -> None:
        super().__init__()
        if flat_input:
            self.pool: nn.Module = nn.Identity()
        else:
            self.pool = nn.AdaptiveAvgPool2d(1) if pool == "avg" else nn.AdaptiveMaxPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.flatten(self.pool(x))))  # (B, C[, H, W]) -> (B, K)
