"""Dual Path Networks' block (Chen et al. 2017) in timm's layout (``timm.models.dpn``).

A DPN carries one tensor whose first ``out_channels`` channels are a residual path (added to)
and whose remaining channels are a dense path (concatenated to, ``inc`` more per block).
``dual_path`` is timm's ``DualPathBlock``: pre-activation BN-ReLU-conv units ``c1x1_a``,
``c3x3_b`` (grouped), ``c1x1_c``, and a projection ``c1x1_w_s1`` / ``c1x1_w_s2`` in a stage's
first block; ``bn_act`` is its final ``BnAct`` (child ``bn``, then ReLU). timm's DPNs use BN
epsilon 1e-3, the default here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from nasblocks.blocks import _costs as cost
from nasblocks.blocks import _fields as f
from nasblocks.blocks._costs import Cost
from nasblocks.blocks._shapes import conv_shape, feature_map
from nasblocks.errors import ShapeError
from nasblocks.registry import BlockSpec, Shape, register_block

_M = "nasblocks.modules.dpn"
SOURCE = "Chen et al., Dual Path Networks (2017), arXiv:1707.01629; timm.models.dpn"


@register_block("dual_path")
class DualPath(BlockSpec):
    """DPN block: residual path ``out_channels`` wide plus a dense path growing by ``inc``."""

    module = f"{_M}:DualPathBlock"
    source = SOURCE
    out_channels: f.Channels = Field(description="Width of the residual path (num_1x1_c).")
    inc: int = Field(ge=1, le=1 << 14, description="Dense-path channels this block adds.")
    mid_channels: f.Channels = Field(description="Width of c1x1_a and c3x3_b (num_1x1_a).")
    groups: int = Field(32, ge=1, description="Groups of the 3x3 conv.")
    type: Literal["normal", "proj", "down"] = Field(
        "normal",
        description="normal: the input is the dual-path tensor; proj: a 1x1 projection starts "
        "the paths (c1x1_w_s1); down: the same at stride 2 (c1x1_w_s2).",
    )
    norm_eps: float = f.eps_field(1e-3)
    examples = (
        (
            {"out_channels": 16, "inc": 4, "mid_channels": 8, "groups": 4, "type": "proj"},
            (8, 6, 6),
        ),
        ({"out_channels": 16, "inc": 4, "mid_channels": 8, "groups": 2}, (24, 6, 6)),
        ({"out_channels": 8, "inc": 2, "mid_channels": 4, "groups": 2, "type": "down"}, (6, 9, 9)),
    )

    def stride(self) -> int:
        return 2 if self.type == "down" else 1

    def out_total(self, in_channels: int) -> int:
        dense = 2 * self.inc if self.type != "normal" else in_channels - self.out_channels
        return self.out_channels + dense + self.inc

    def output_shape(self, in_shape: Shape) -> Shape:
        c, _, _ = feature_map(in_shape, self.kind)
        if self.type == "normal" and c <= self.out_channels:
            raise ShapeError(
                f"a normal dual-path block takes a residual path of {self.out_channels} channels "
                f"plus a dense path: {c} input channels leave none for the dense path",
                field="out_channels",
            )
        if self.mid_channels % self.groups:
            raise ShapeError(
                f"mid_channels {self.mid_channels} are not divisible by {self.groups} groups",
                field="groups",
            )
        return conv_shape(in_shape, self.out_total(c), 3, self.stride(), 1, kind=self.kind)

    def cost(self, in_shape: Shape) -> Cost:
        out = self.output_shape(in_shape)
        c, m = in_shape[0], self.mid_channels
        parts = [
            cost.norm("batch", c),
            cost.conv(c, m, 1, (m, *in_shape[1:])),
            cost.norm("batch", m),
            cost.conv(m, m, 3, (m, *out[1:]), self.groups),
            cost.norm("batch", m),
            cost.conv(m, self.out_channels + self.inc, 1, out),
        ]
        if self.type != "normal":
            proj = self.out_channels + 2 * self.inc
            parts += [cost.norm("batch", c), cost.conv(c, proj, 1, out)]
        return cost.total(*parts)


@register_block("bn_act")
class BnAct(BlockSpec):
    """BN then ReLU as one module with child ``bn`` (timm's ``BnAct``, DPN's last layer)."""

    module = f"{_M}:BnAct"
    source = SOURCE
    norm_eps: float = f.eps_field(1e-3)
    examples = (({}, (8, 4, 4)),)

    def output_shape(self, in_shape: Shape) -> Shape:
        feature_map(in_shape, self.kind)
        return tuple(in_shape)

    def cost(self, in_shape: Shape) -> Cost:
        return cost.norm("batch", in_shape[0])
