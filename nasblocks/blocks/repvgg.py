"""RepVGG's training-time block (Ding et al. 2021), in timm's layout (``byobnet.RepVggBlock``).

relu(bn(conv3x3(x)) + bn(conv1x1(x)) [+ bn(x)]): children ``conv_kxk.conv/bn``,
``conv_1x1.conv/bn`` and, when the input can be added (same channels, stride 1), ``identity``
(a BN). :func:`nasblocks.reparameterize` fuses the three branches into one 3x3 conv with a
bias for deployment (``reparam_conv``), with the same outputs in eval mode.
"""

from __future__ import annotations

from pydantic import Field

from nasblocks.blocks import _costs as cost
from nasblocks.blocks import _fields as f
from nasblocks.blocks._costs import Cost
from nasblocks.blocks._shapes import conv_shape, feature_map
from nasblocks.errors import ShapeError
from nasblocks.registry import BlockSpec, Shape, register_block


@register_block("repvgg")
class RepVGGBlock(BlockSpec):
    """RepVGG block: 3x3 conv-BN + 1x1 conv-BN (+ identity BN), summed, then ReLU."""

    module = "nasblocks.modules.repvgg:RepVGGBlock"
    source = "Ding et al., RepVGG: Making VGG-style ConvNets Great Again (2021); timm byobnet"
    shorthand = "out_channels"
    width_fields = ("out_channels",)
    out_channels: f.Channels = Field(description="Number of output channels.")
    stride: int = Field(1, ge=1, le=8, description="Stride of both convs.")
    groups: int = Field(1, ge=1, description="Groups of both convs.")
    examples = (
        ({"out_channels": 8}, (8, 6, 6)),
        ({"out_channels": 12, "stride": 2}, (4, 9, 9)),
        ({"out_channels": 8, "groups": 2}, (8, 5, 5)),
    )

    def identity(self, in_channels: int) -> bool:
        """Whether the block adds a BN of its input (timm: same channels, stride 1)."""
        return in_channels == self.out_channels and self.stride == 1

    def output_shape(self, in_shape: Shape) -> Shape:
        c, _, _ = feature_map(in_shape, self.kind)
        for what, n in (("input", c), ("output", self.out_channels)):
            if n % self.groups:
                raise ShapeError(
                    f"{what} channels ({n}) are not divisible by {self.groups} groups",
                    field="groups",
                )
        return conv_shape(in_shape, self.out_channels, 3, self.stride, 1, kind=self.kind)

    def cost(self, in_shape: Shape) -> Cost:
        out = self.output_shape(in_shape)
        c, o = in_shape[0], self.out_channels
        bn = cost.norm("batch", o)
        parts = [
            cost.conv(c, o, 3, out, self.groups),
            bn,
            cost.conv(c, o, 1, out, self.groups),
            bn,
        ]
        return cost.total(*parts, bn if self.identity(c) else cost.FREE)
