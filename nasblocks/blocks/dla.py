"""Deep Layer Aggregation's tree (Yu et al. 2018) in timm's layout (``timm.models.dla``).

``dla_tree`` is timm's recursive ``DlaTree``: a tree of ``levels`` levels has subtrees
``tree1`` (strided) and ``tree2`` of ``levels - 1`` levels; a one-level tree has two blocks
``tree1``, ``tree2`` (``basic``: two 3x3 convs; ``bottleneck``: 1x1, grouped 3x3, 1x1, half
as wide as the output, wider by ``cardinality * base_width / 64`` in DLA-X) and a ``root``:
a 1x1 conv-BN-ReLU over the concatenation of both blocks' outputs and of every earlier
subtree's output on the way down (iterative deep aggregation). ``downsample`` (a max pool of
the stride) and ``project`` (1x1 conv-BN when the width changes) make the first block's
shortcut; with ``level_root`` the pooled input joins the deepest root too. The stem and the
first two levels are ``conv_bn_act`` layers.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from nasblocks.blocks import _costs as cost
from nasblocks.blocks import _fields as f
from nasblocks.blocks._costs import Cost
from nasblocks.blocks._shapes import feature_map
from nasblocks.errors import ShapeError
from nasblocks.registry import BlockSpec, Shape, register_block

_M = "nasblocks.modules.dla"
SOURCE = "Yu et al., Deep Layer Aggregation (2018), arXiv:1707.06484; timm.models.dla"


def bottleneck_width(out_channels: int, cardinality: int, base_width: int) -> int:
    """timm's ``DlaBottleneck`` width: ``floor(out * base_width / 64) * cardinality // 2``."""
    return int(math.floor(out_channels * (base_width / 64)) * cardinality) // 2


@register_block("dla_tree")
class DlaTree(BlockSpec):
    """DLA's recursive aggregation tree (timm's ``DlaTree``: ``tree1``, ``tree2``, ``root``)."""

    module = f"{_M}:DlaTree"
    source = SOURCE
    shorthand = "out_channels"
    width_fields = ("out_channels",)
    out_channels: f.Channels = Field(description="Output channels of the tree and its blocks.")
    levels: int = Field(1, ge=1, le=8, description="Depth of the tree: 2 ** levels blocks.")
    stride: Literal[1, 2] = Field(2, description="Stride of the first block (max-pooled input).")
    block: Literal["basic", "bottleneck"] = Field(
        "basic",
        description="basic: two 3x3 convs (DLA-34); bottleneck: 1x1, 3x3, 1x1 (DLA-46 up).",
    )
    level_root: bool = Field(
        False, description="The pooled input joins the deepest root (timm's level_root)."
    )
    root_residual: bool = Field(
        False, description="Each root adds its first input (timm's shortcut_root; DLA-102 up)."
    )
    cardinality: int = Field(1, ge=1, le=1024, description="Groups of a bottleneck's 3x3 conv.")
    base_width: int = Field(
        64, ge=1, le=1024, description="Bottleneck width per group: 4 in DLA-X (64: none)."
    )
    examples = (
        ({"out_channels": 8}, (4, 8, 8)),
        ({"out_channels": 8, "levels": 2, "level_root": True, "stride": 1}, (8, 6, 6)),
        (
            {"out_channels": 16, "levels": 3, "block": "bottleneck", "level_root": True,
             "root_residual": True, "cardinality": 4, "base_width": 8},
            (8, 8, 8),
        ),
    )  # fmt: skip

    def output_shape(self, in_shape: Shape) -> Shape:
        _, h, w = feature_map(in_shape, self.kind)
        s = self.stride
        if h % s or w % s:
            raise ShapeError(
                f"a {h}x{w} input: the {s}x{s} max pool of the shortcut and the strided 3x3 "
                "conv disagree on odd sizes (timm's too), give an even size",
                field="stride",
            )
        if self.block == "basic" and (self.cardinality, self.base_width) != (1, 64):
            raise ShapeError(
                "cardinality and base_width shape a bottleneck: a basic block has neither",
                field="cardinality" if self.cardinality != 1 else "base_width",
            )
        mid = bottleneck_width(self.out_channels, self.cardinality, self.base_width)
        if self.block == "bottleneck" and mid < 1:
            raise ShapeError(
                f"the bottleneck, floor({self.out_channels} * {self.base_width} / 64) * "
                f"{self.cardinality} // 2 channels wide, has none",
                field="base_width",
            )
        if self.block == "bottleneck" and mid % self.cardinality:
            raise ShapeError(
                f"the bottleneck is {mid} channels wide: not a multiple of {self.cardinality} "
                "groups",
                field="cardinality",
            )
        return (self.out_channels, h // s, w // s)

    def cost(self, in_shape: Shape) -> Cost:
        out = self.output_shape(in_shape)
        return self._tree(self.levels, in_shape, out, self.level_root, 0)

    # timm's DlaTree.__init__, recursively: the same widths, so the same counts
    def _tree(self, levels: int, in_shape: Shape, out: Shape, level_root: bool, root: int) -> Cost:
        cin, cout = in_shape[0], self.out_channels
        root = (root or 2 * cout) + (cin if level_root else 0)
        if levels > 1:
            return cost.total(
                self._tree(levels - 1, in_shape, out, False, 0),
                self._tree(levels - 1, out, out, False, root + cout),
            )
        parts = [self._block(in_shape, out), self._block(out, out)]
        if cin != cout:
            parts += [cost.conv(cin, cout, 1, out), cost.norm("batch", cout)]
        parts += [cost.conv(root, cout, 1, out), cost.norm("batch", cout)]
        return cost.total(*parts)

    def _block(self, in_shape: Shape, out: Shape) -> Cost:
        cin, cout = in_shape[0], self.out_channels
        if self.block == "basic":
            return cost.total(
                cost.conv(cin, cout, 3, out), cost.norm("batch", cout),
                cost.conv(cout, cout, 3, out), cost.norm("batch", cout),
            )  # fmt: skip
        mid = bottleneck_width(cout, self.cardinality, self.base_width)
        return cost.total(
            cost.conv(cin, mid, 1, (mid, *in_shape[1:])), cost.norm("batch", mid),
            cost.conv(mid, mid, 3, (mid, *out[1:]), self.cardinality), cost.norm("batch", mid),
            cost.conv(mid, cout, 1, out), cost.norm("batch", cout),
        )  # fmt: skip
