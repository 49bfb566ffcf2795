"""Mobile blocks: MobileNetV2's inverted residual and torchvision's Conv2dNormActivation.

Both mirror torchvision's nesting (``conv.0.0.weight``, ``0.weight``, ``1.running_mean`` ...)
so MobileNetV2 and ShuffleNetV2 weights load strictly into nets written with them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from nasblocks.blocks import _costs as cost
from nasblocks.blocks import _fields as f
from nasblocks.blocks._costs import Cost
from nasblocks.blocks._shapes import conv_shape
from nasblocks.blocks.core import Conv
from nasblocks.registry import BlockSpec, Shape, register_block

_M = "nasblocks.modules.mobile"


@register_block("conv_bn_act")
class ConvBnAct(Conv):
    """The ``conv`` block as a flat Sequential (children ``0`` conv, ``1`` norm, ``2`` act).

    torchvision's ``Conv2dNormActivation`` layout: MobileNetV2's first and last layers and
    ShuffleNetV2's conv1 / conv5 are written with it.
    """

    module = f"{_M}:ConvBnAct"
    source = "torchvision.ops.misc.Conv2dNormActivation"
    examples = (
        ({"out_channels": 8, "stride": 2}, (3, 9, 9)),
        ({"out_channels": 16, "kernel_size": 1, "activation": "relu6"}, (8, 4, 4)),
        ({"out_channels": 8, "depthwise": True, "dilation": 2, "norm": "none"}, (8, 8, 8)),
    )


@register_block("inverted_residual")
class InvertedResidual(BlockSpec):
    """MobileNetV2's inverted residual (Sandler et al., 2018), torchvision's layout exactly.

    1x1 expansion (skipped when ``expand_ratio`` is 1), 3x3 depthwise (stride), linear 1x1
    projection; the input is added when the stride is 1 and the channel count is kept.
    """

    module = f"{_M}:InvertedResidual"
    source = "Sandler et al., MobileNetV2 (2018); torchvision.models.mobilenetv2"
    shorthand = "out_channels"
    width_fields = ("out_channels",)
    out_channels: f.Channels = Field(description="Number of output channels.")
    stride: Literal[1, 2] = Field(1, description="Stride of the depthwise conv: 1 or 2.")
    expand_ratio: float = Field(
        6, ge=1, le=64, description="Hidden channels = round(in_channels * expand_ratio)."
    )
    norm_eps: float = f.eps_field()
    norm_momentum: float = f.momentum_field()
    activation: f.Activation = f.activation_field("relu6")
    examples = (
        ({"out_channels": 8}, (8, 8, 8)),
        ({"out_channels": 16, "stride": 2, "expand_ratio": 1}, (8, 9, 9)),
        ({"out_channels": 12, "expand_ratio": 2.5, "activation": "hardswish"}, (8, 5, 5)),
    )

    def output_shape(self, in_shape: Shape) -> Shape:
        return conv_shape(in_shape, self.out_channels, 3, self.stride, 1, kind=self.kind)

    def cost(self, in_shape: Shape) -> Cost:
        c = in_shape[0]
        hidden = int(round(c * self.expand_ratio))
        out = self.output_shape(in_shape)
        parts = [
            cost.conv(hidden, hidden, 3, (hidden, *out[1:]), groups=hidden),  # depthwise
            cost.norm("batch", hidden),
            cost.conv(hidden, self.out_channels, 1, out),  # the linear projection
            cost.norm("batch", self.out_channels),
        ]
        if self.expand_ratio != 1:
            parts += [cost.conv(c, hidden, 1, (hidden, *in_shape[1:])), cost.norm("batch", hidden)]
        return cost.total(*parts)
