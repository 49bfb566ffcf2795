"""Res2Net's bottleneck (Gao et al. 2019) in timm's layout (``timm.models.res2net``).

The 3x3 conv of a bottleneck becomes ``scale`` groups of channels processed hierarchically:
each group's 3x3 conv also sees the previous group's output (``convs.i`` / ``bns.i``), the last
group passes through (average-pooled in a stage's first block), and the groups are
concatenated before the 1x1 expansion. Children are timm's ``Bottle2neck``'s, so its weights
load unchanged; the shortcut, attention slot, ``avg_down`` and stochastic depth are those of
``bottleneck``.
"""

from __future__ import annotations

from pydantic import Field

from nasblocks.blocks import _costs as cost
from nasblocks.blocks._costs import Cost
from nasblocks.blocks.residual import _ResNetBlock
from nasblocks.errors import ShapeError
from nasblocks.registry import Shape, register_block


@register_block("res2net_bottleneck")
class Res2NetBottleneck(_ResNetBlock):
    """Res2Net bottleneck: 1x1 to ``scale`` groups of ``width``, hierarchical 3x3s, 1x1."""

    module = "nasblocks.modules.res2net:Res2NetBottleneck"
    source = "Gao et al., Res2Net (2019), arXiv:1904.01169; timm.models.res2net"
    width_per_group: int = Field(
        26, ge=1, description="Width of one scale group at channels=64 (timm's base_width)."
    )
    scale: int = Field(4, ge=1, le=16, description="Number of scale groups (the s of 26w4s).")
    expansion: int = Field(4, ge=1, le=16, description="Output channels per unit of channels.")
    examples = (
        ({"channels": 8}, (32, 8, 8)),
        ({"channels": 8, "stride": 2, "scale": 3, "width_per_group": 16}, (16, 9, 9)),
        ({"channels": 8, "scale": 1, "downsample": True, "attention": "se_conv"}, (32, 5, 5)),
    )

    def scale_width(self) -> int:
        """Channels of one scale group: timm's ``floor(planes * base_width / 64) * groups``."""
        return self.channels * self.width_per_group // 64 * self.groups

    def width(self) -> int:
        return self.scale_width() * self.scale

    def first(self, in_channels: int) -> bool:
        """A stage's first block (strided or projecting): groups do not cascade, and the
        last group is average-pooled."""
        return self.stride > 1 or self.uses_downsample(in_channels)

    def _check(self, in_channels: int) -> None:
        if self.attention == "sk":
            raise ShapeError("a Res2Net block has no SK conv", field="attention")
        if self.dilation != 1 or (self.first_dilation or 1) != 1:
            raise ShapeError("use dilation 1 in a Res2Net block", field="dilation")
        if self.scale_width() % self.groups:
            raise ShapeError(
                f"scale groups of {self.scale_width()} channels are not divisible by "
                f"{self.groups} groups",
                field="groups",
            )
        super()._check(in_channels)

    def _branch(self, in_shape: Shape, out: Shape, bias: bool) -> list[Cost]:
        w, n = self.scale_width(), max(1, self.scale - 1)
        mid = (w, *out[1:])
        return [
            cost.conv(in_shape[0], w * self.scale, 1, (w * self.scale, *in_shape[1:]), bias=bias),
            cost.norm(self.norm, w * self.scale),
            *[cost.conv(w, w, 3, mid, self.groups, bias=bias) for _ in range(n)],
            *[cost.norm(self.norm, w) for _ in range(n)],
            cost.conv(w * self.scale, self.out_channels, 1, out, bias=bias),
            cost.norm(self.norm, self.out_channels),
        ]
