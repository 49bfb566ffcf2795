"""HRNet's multi-resolution layers in timm's layout (``timm.models.hrnet``, Wang et al. 2019).

After its stem and ``layer1`` an HRNet keeps parallel branches, each at half the size of the
one before: ``hrnet_transition`` (timm's ``transitionN``) adds a branch, ``hrnet_stage``
(``stageN``) runs basic blocks on every branch and fuses each branch into every other;
the classification head's ``hrnet_incre`` (``incre_modules``) widens every branch with a
bottleneck and ``hrnet_downsample`` (``downsamp_modules``) sums them down to one map.

A layer passes one tensor on, so the branches travel packed: branch ``k`` of ``n`` is
space-to-depth folded by ``2**(n - 1 - k)`` down to the smallest branch's size and the
branches are concatenated. A packed map of widths ``[c_0, ..., c_{n-1}]`` at ``h x w`` has
``sum(c_k * 4**(n - 1 - k))`` channels, exactly the branches' elements; each branch halves
the size exactly (timm's upsampling needs it too), so the input size is a multiple of 32.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from nasblocks.blocks import _costs as cost
from nasblocks.blocks import _fields as f
from nasblocks.blocks._costs import Cost
from nasblocks.blocks._shapes import conv_shape, feature_map
from nasblocks.blocks.residual import BasicBlock, Bottleneck
from nasblocks.errors import ShapeError
from nasblocks.registry import BlockSpec, Shape, register_block

_M = "nasblocks.modules.hrnet"
SOURCE = (
    "Wang et al., Deep High-Resolution Representation Learning for Visual Recognition (2019), "
    "arXiv:1908.07919; timm.models.hrnet"
)
HEAD_CHANNELS = (32, 64, 128, 256)
"""Bottleneck widths of timm's classification head (``head_channels``), one per branch."""
HEAD_WIDTHS = tuple(4 * c for c in HEAD_CHANNELS)
"""Their outputs: what ``hrnet_downsample`` takes."""

Widths = list[f.Channels]


def transition_inputs(in_channels: int, channels: Sequence[int]) -> list[int]:
    """The branches a transition takes: layer1's one map, or the previous stage's branches."""
    return [in_channels] if len(channels) == 2 else list(channels[:-1])


def unpacked(in_shape: Shape, widths: Sequence[int], kind: str, field: str) -> list[Shape]:
    """The branches ``(C_k, H_k, W_k)`` packed in ``in_shape``."""
    c, h, w = feature_map(in_shape, kind)
    n = len(widths)
    packed = sum(ck * 4 ** (n - 1 - k) for k, ck in enumerate(widths))
    if c != packed:
        raise ShapeError(
            f"{n} branches of {list(widths)} channels pack into {packed} channels; the input "
            f"has {c}",
            field=field,
        )
    return [(ck, h * 2 ** (n - 1 - k), w * 2 ** (n - 1 - k)) for k, ck in enumerate(widths)]


def packed(branches: Sequence[Shape], field: str) -> Shape:
    """The one map the branches travel as; each must be twice the size of the next."""
    n = len(branches)
    _, h, w = branches[-1]
    for k, (_, hk, wk) in enumerate(branches):
        if (hk, wk) != (h * 2 ** (n - 1 - k), w * 2 ** (n - 1 - k)):
            raise ShapeError(
                f"each branch is half the size of the one before: branch {k} is {hk}x{wk}, "
                f"branch {n - 1} {h}x{w} (timm's HRNets take sizes that are multiples of 32)",
                field=field,
            )
    return (sum(s[0] * 4 ** (n - 1 - k) for k, s in enumerate(branches)), h, w)


def conv_bn(cin: int, cout: int, k: int, out: Shape, bias: bool = False) -> Cost:
    return cost.total(
        cost.conv(cin, cout, k, (cout, *out[1:]), bias=bias), cost.norm("batch", cout)
    )


def declared(block: BlockSpec, in_shape: Shape) -> Cost:
    """The analytic cost of a block that declares one (basic, bottleneck)."""
    out = block.cost(in_shape)
    assert out is not None
    return out


@register_block("hrnet_transition")
class HRNetTransition(BlockSpec):
    """timm's ``transitionN``: one more branch (a strided 3x3 conv of the smallest), and a 3x3
    conv where layer1's map changes width; the previous stage's branches pass as they are."""

    module = f"{_M}:HRNetTransition"
    source = SOURCE
    channels: Widths = Field(
        min_length=2,
        max_length=8,
        description="Branch widths after the transition: the input's branches and a new one "
        "(after layer1, whose one map may have any width: two).",
    )
    examples = (
        ({"channels": [4, 8]}, (6, 8, 8)),
        ({"channels": [6, 8]}, (6, 8, 8)),
        ({"channels": [4, 8, 16]}, (24, 4, 4)),
    )

    def _branches(self, in_shape: Shape) -> tuple[list[Shape], list[Shape]]:
        c = feature_map(in_shape, self.kind)[0]
        before = unpacked(in_shape, transition_inputs(c, self.channels), self.kind, "channels")
        after = [(ck, *s[1:]) for ck, s in zip(self.channels, before, strict=False)]
        after.append(conv_shape(before[-1], self.channels[-1], 3, 2, 1, kind=self.kind))
        return before, after

    def output_shape(self, in_shape: Shape) -> Shape:
        return packed(self._branches(in_shape)[1], "channels")

    def cost(self, in_shape: Shape) -> Cost:
        self.output_shape(in_shape)
        before, after = self._branches(in_shape)
        parts = [conv_bn(b[0], a[0], 3, a) for b, a in zip(before, after, strict=False) if b != a]
        return cost.total(*parts, conv_bn(before[-1][0], after[-1][0], 3, after[-1]))


@register_block("hrnet_stage")
class HRNetStage(BlockSpec):
    """timm's ``stageN``: ``num_modules`` HighResolutionModules, each ``depth`` basic blocks
    per branch (``branches.i``) then a fusion (``fuse_layers.i.j``): branch ``j`` reaches
    branch ``i`` by a 1x1 conv and nearest upsampling (``j > i``) or by strided 3x3 convs."""

    module = f"{_M}:HRNetStage"
    source = SOURCE
    channels: Widths = Field(
        min_length=2,
        max_length=8,
        description="Branch widths (timm's num_channels), finest first.",
    )
    depth: int = Field(4, ge=1, le=64, description="Basic blocks per branch (num_blocks).")
    num_modules: int = Field(1, ge=1, le=16, description="HighResolutionModules in the stage.")
    examples = (
        ({"channels": [4, 8], "depth": 1}, (24, 4, 4)),
        ({"channels": [2, 4, 8], "depth": 1, "num_modules": 2}, (56, 2, 2)),
        ({"channels": [2, 2, 4, 4], "depth": 1}, (180, 1, 1)),
    )

    def output_shape(self, in_shape: Shape) -> Shape:
        return packed(unpacked(in_shape, self.channels, self.kind, "channels"), "channels")

    def cost(self, in_shape: Shape) -> Cost:
        shapes = unpacked(in_shape, self.channels, self.kind, "channels")
        self.output_shape(in_shape)
        parts = []
        for s in shapes:
            parts += [declared(BasicBlock(channels=s[0]), s)] * self.depth
        for i, si in enumerate(shapes):
            for j, sj in enumerate(shapes):
                if j > i:
                    parts.append(conv_bn(sj[0], si[0], 1, sj))
                for k in range(j + 1, i):
                    parts.append(conv_bn(sj[0], sj[0], 3, shapes[k]))
                if j < i:
                    parts.append(conv_bn(sj[0], si[0], 3, si))
        one = cost.total(*parts)
        return one[0] * self.num_modules, one[1] * self.num_modules


@register_block("hrnet_incre")
class HRNetIncre(BlockSpec):
    """timm's ``incre_modules``: a bottleneck per branch (``k.0``), widening it to
    ``4 * channels[k]``."""

    module = f"{_M}:HRNetIncre"
    source = SOURCE
    branches: Widths = Field(
        min_length=1,
        max_length=8,
        description="Widths of the input's branches (the last stage's).",
    )
    channels: Widths = Field(
        list(HEAD_CHANNELS),
        min_length=1,
        max_length=8,
        description="Bottleneck width per branch (timm's head_channels).",
    )
    examples = (({"branches": [4, 8], "channels": [2, 4]}, (24, 4, 4)),)

    def _branches(self, in_shape: Shape) -> list[Shape]:
        if len(self.channels) != len(self.branches):
            raise ShapeError(
                f"one bottleneck width per branch: {len(self.channels)} for "
                f"{len(self.branches)} branches",
                field="channels",
            )
        return unpacked(in_shape, self.branches, self.kind, "branches")

    def output_shape(self, in_shape: Shape) -> Shape:
        outs = [
            (4 * c, *s[1:]) for c, s in zip(self.channels, self._branches(in_shape), strict=True)
        ]
        return packed(outs, "branches")

    def cost(self, in_shape: Shape) -> Cost:
        shapes = self._branches(in_shape)
        parts = [
            declared(Bottleneck(channels=c), s) for c, s in zip(self.channels, shapes, strict=True)
        ]
        return cost.total(*parts)


@register_block("hrnet_downsample")
class HRNetDownsample(BlockSpec):
    """timm's ``downsamp_modules``: from the finest branch down, ``y = x_k + down(y)``, each
    ``down`` (``k - 1``) a strided 3x3 conv, BN and ReLU; one map of the coarsest branch."""

    module = f"{_M}:HRNetDownsample"
    source = SOURCE
    branches: Widths = Field(
        list(HEAD_WIDTHS),
        min_length=2,
        max_length=8,
        description="Widths of the input's branches.",
    )
    bias: bool = Field(True, description="Bias in the convs (timm's head_conv_bias).")
    examples = (
        ({"branches": [4, 8, 16]}, (112, 2, 2)),
        ({"branches": [8, 16], "bias": False}, (48, 4, 4)),
    )

    def output_shape(self, in_shape: Shape) -> Shape:
        return unpacked(in_shape, self.branches, self.kind, "branches")[-1]

    def cost(self, in_shape: Shape) -> Cost:
        shapes = unpacked(in_shape, self.branches, self.kind, "branches")
        pairs = zip(shapes, shapes[1:], strict=False)
        return cost.total(*(conv_bn(a[0], b[0], 3, b, self.bias) for a, b in pairs))
