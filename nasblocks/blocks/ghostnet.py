"""GhostNet blocks in timm's layout: the Ghost module and the Ghost bottleneck.

Han et al., GhostNet: More Features from Cheap Operations (CVPR 2020). A Ghost module makes
part of its output with an ordinary conv (``primary_conv``) and the rest from those features
by a cheap depthwise conv (``cheap_operation``), concatenated and cut to ``out_channels``. A
Ghost bottleneck is two of them (``ghost1`` expanding, ``ghost2`` linear) with a strided
depthwise conv (``conv_dw``, ``bn_dw``) and timm's EfficientNet-style squeeze-excitation
(``se``, hard-sigmoid gate) between, plus a ``shortcut``: the input, or a depthwise +
pointwise projection when the shape changes. Children and keys are timm's
``timm.models.ghostnet`` (v1) ones, so its state dicts load strictly.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, field_validator

from nasblocks.blocks import _costs as cost
from nasblocks.blocks import _fields as f
from nasblocks.blocks._costs import Cost
from nasblocks.blocks._shapes import conv_size, feature_map, make_divisible
from nasblocks.blocks.efficientnet import _check_odd, se_cost
from nasblocks.registry import BlockSpec, Shape, register_block

_M = "nasblocks.modules.ghostnet"
SOURCE = "Han et al., GhostNet (2020), arXiv:1911.11907; timm.models.ghostnet"
SE_DIVISOR = 4
"""timm's GhostNet rounds the SE gate's hidden width to a multiple of 4 (its ``_SE_LAYER``)."""

_Odd = Annotated[int, Field(ge=1, le=31)]


def primary_channels(out_channels: int, ratio: int) -> int:
    """The primary conv's width: ``ceil(out / ratio)``; the cheap op makes ``ratio - 1`` times
    as many, and the concatenation is cut back to ``out_channels``."""
    return math.ceil(out_channels / ratio)


def se_hidden(channels: int, se: float) -> int:
    """The SE gate's hidden width on ``channels``: timm's ``make_divisible(c * se, 4)``."""
    return make_divisible(channels * se, SE_DIVISOR)


def projects_shortcut(in_channels: int, out_channels: int, stride: int) -> bool:
    """A Ghost bottleneck's shortcut is a conv projection unless stride 1 keeps the channels."""
    return stride > 1 or in_channels != out_channels


def spatial(in_shape: Shape, kernel_size: int, stride: int) -> tuple[int, int]:
    """H x W after an odd ``kernel_size`` conv padded by ``kernel_size // 2``."""
    _, h, w = in_shape
    pad = kernel_size // 2
    return conv_size(h, kernel_size, stride, pad), conv_size(w, kernel_size, stride, pad)


def ghost_cost(
    in_channels: int,
    out_channels: int,
    hw: tuple[int, int],
    kernel_size: int = 1,
    ratio: int = 2,
    cheap_kernel_size: int = 3,
) -> Cost:
    """A Ghost module producing ``hw``: the primary conv and BN, the cheap conv and BN."""
    init = primary_channels(out_channels, ratio)
    new = init * (ratio - 1)
    return cost.total(
        cost.conv(in_channels, init, kernel_size, (init, *hw)),
        cost.norm("batch", init),
        cost.conv(init, new, cheap_kernel_size, (new, *hw), groups=init),
        cost.norm("batch", new),
    )


@register_block("ghost_module")
class GhostModule(BlockSpec):
    """timm's ``GhostModule``: ``primary_conv`` (kxk conv, BN, act) to ``ceil(out / ratio)``
    channels, ``cheap_operation`` (depthwise conv, BN, act) to ``ratio - 1`` times as many
    from them, both concatenated and cut to ``out_channels``."""

    module = f"{_M}:GhostModule"
    source = SOURCE
    shorthand = "out_channels"
    width_fields = ("out_channels",)
    out_channels: f.Channels = Field(description="Number of output channels.")
    kernel_size: _Odd = Field(1, description="Odd kernel size of the primary conv.")
    ratio: int = Field(
        2, ge=2, le=16, description="Output channels / primary channels (timm's ratio): >= 2."
    )
    cheap_kernel_size: _Odd = Field(
        3, description="Odd kernel size of the depthwise cheap operation (timm's dw_size)."
    )
    stride: Literal[1, 2] = Field(1, description="Stride of the primary conv: 1 or 2.")
    activation: f.Activation = f.activation_field()
    examples = (
        ({"out_channels": 8}, (4, 6, 6)),
        ({"out_channels": 7, "kernel_size": 3, "stride": 2}, (5, 7, 7)),
        (
            {"out_channels": 9, "ratio": 3, "cheap_kernel_size": 5, "activation": "none"},
            (6, 5, 5),
        ),
    )

    odd_kernels = field_validator("kernel_size", "cheap_kernel_size")(_check_odd)

    def output_shape(self, in_shape: Shape) -> Shape:
        feature_map(in_shape, self.kind)
        return (self.out_channels, *spatial(in_shape, self.kernel_size, self.stride))

    def cost(self, in_shape: Shape) -> Cost:
        hw = self.output_shape(in_shape)[1:]
        return ghost_cost(
            in_shape[0],
            self.out_channels,
            (hw[0], hw[1]),
            self.kernel_size,
            self.ratio,
            self.cheap_kernel_size,
        )


@register_block("ghost_bottleneck")
class GhostBottleneck(BlockSpec):
    """timm's ``GhostBottleneck`` (GhostNet v1): ``ghost1`` (a Ghost module to
    ``mid_channels``, with the activation), strided depthwise ``conv_dw`` + ``bn_dw`` (only
    when strided), ``se``, linear ``ghost2`` to ``out_channels``, plus ``shortcut``: the input
    where stride 1 keeps the channels, else depthwise kxk + BN + 1x1 + BN on it.
    """

    module = f"{_M}:GhostBottleneck"
    source = SOURCE
    shorthand = "out_channels"
    width_fields = ("out_channels", "mid_channels")
    out_channels: f.Channels = Field(description="Number of output channels.")
    mid_channels: f.Channels = Field(
        description="Hidden width, the output of ghost1 (timm's exp_size / mid_chs)."
    )
    kernel_size: _Odd = Field(
        3, description="Odd kernel size of the depthwise convs (conv_dw, the shortcut's)."
    )
    stride: Literal[1, 2] = Field(1, description="Stride of conv_dw and the shortcut: 1 or 2.")
    se: float = Field(
        0.0,
        ge=0,
        le=4,
        description="Squeeze-excitation ratio on the hidden width, the gate's width rounded to "
        "a multiple of 4 (timm's GhostNet SE, hard-sigmoid gate); 0: no gate (se an Identity).",
    )
    activation: f.Activation = f.activation_field()
    examples = (
        ({"out_channels": 8, "mid_channels": 16}, (8, 6, 6)),
        (
            {"out_channels": 12, "mid_channels": 24, "kernel_size": 5, "stride": 2, "se": 0.25},
            (8, 9, 9),
        ),
        ({"out_channels": 6, "mid_channels": 11, "se": 0.25, "activation": "silu"}, (4, 5, 5)),
    )

    odd_kernels = field_validator("kernel_size")(_check_odd)

    def output_shape(self, in_shape: Shape) -> Shape:
        feature_map(in_shape, self.kind)
        return (self.out_channels, *spatial(in_shape, self.kernel_size, self.stride))

    def cost(self, in_shape: Shape) -> Cost:
        c, mid, out = in_shape[0], self.mid_channels, self.out_channels
        k = self.kernel_size
        hw = self.output_shape(in_shape)[1:]
        hw2 = (hw[0], hw[1])
        parts = [ghost_cost(c, mid, (in_shape[1], in_shape[2])), ghost_cost(mid, out, hw2)]
        if self.stride > 1:
            parts += [cost.conv(mid, mid, k, (mid, *hw2), groups=mid), cost.norm("batch", mid)]
        if self.se:
            parts.append(se_cost(mid, se_hidden(mid, self.se)))
        if projects_shortcut(c, out, self.stride):
            parts += [
                cost.conv(c, c, k, (c, *hw2), groups=c),
                cost.norm("batch", c),
                cost.conv(c, out, 1, (out, *hw2)),
                cost.norm("batch", out),
            ]
        return cost.total(*parts)
