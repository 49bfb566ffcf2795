"""Residual units: ResNet's basic and bottleneck blocks (with SE / SK / CBAM), ShuffleNet units.

``basic`` and ``bottleneck`` mirror torchvision's ``BasicBlock`` / ``Bottleneck`` child for
child (``conv1``, ``bn1``, ..., ``relu``, ``downsample.0/1``), so torchvision's ResNet, ResNeXt
and Wide ResNet weights load strictly into nets built from them; ``shufflenet_v2_unit`` does
the same for torchvision's ShuffleNetV2 ``InvertedResidual``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from nasblocks.blocks import _costs as cost
from nasblocks.blocks import _fields as f
from nasblocks.blocks._costs import Cost
from nasblocks.blocks._shapes import conv_shape, conv_size, feature_map
from nasblocks.errors import RegistryError, ShapeError
from nasblocks.registry import BlockSpec, Shape, attention_block, register_block

_M = "nasblocks.modules.residual"

ATTENTION_DOC = (
    "Attention in the residual branch: none; an attention kind (se, se_conv, eca, cbam, or a "
    "plugin's block with the attention role) after the last norm, before the addition "
    "(SENet's SE-ResNet, CBAM's and timm's placement), as child 'se'; sk makes conv2 a "
    "selective-kernel convolution (SKNet)."
)


def sk_reduction(attention_reduction: int) -> int:
    """Reduction of the SK fuse layer: a quarter of ``attention_reduction`` (4 by default).

    SE and CBAM use ``C // 16`` hidden units, SKNet's reference SKConv ``C // 4``; scaling one
    knob keeps the defaults of both.
    """
    return max(1, attention_reduction // 4)


class _ResNetBlock(BlockSpec):
    """Fields, width arithmetic and shape contract shared by ``basic`` and ``bottleneck``."""

    shorthand = "channels"
    width_fields = ("channels",)
    source = "He et al., Deep Residual Learning (2016); torchvision.models.resnet"

    channels: f.Channels = Field(
        description="Base width (torchvision's planes); the block outputs channels * expansion."
    )
    stride: int = Field(1, ge=1, le=64, description="Stride of the strided 3x3 conv.")
    groups: int = Field(1, ge=1, description="Groups of the 3x3 conv (ResNeXt cardinality).")
    width_per_group: int = Field(
        64,
        ge=1,
        description="Channels per group at channels=64 (torchvision's base_width; 128 for "
        "Wide ResNet-50-2, 4 for ResNeXt-50 32x4d).",
    )
    dilation: int = Field(1, ge=1, le=64, description="Dilation (and padding) of the 3x3 convs.")
    first_dilation: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Dilation of the first 3x3 conv (bottleneck: its only one) when it differs: "
        "torchvision gives a stage's first block the previous stage's dilation when a stride "
        "is replaced by dilation. Omitted: dilation.",
    )
    attention: str = Field("none", description=ATTENTION_DOC)
    attention_reduction: int = Field(
        16,
        ge=1,
        description="Channel reduction of the SE / CBAM bottleneck; the SK fuse layer uses a "
        "quarter of it.",
    )
    zero_init_last: bool = Field(
        False,
        description="Start the last norm's scale at zero so the block begins as the identity "
        "(torchvision's zero_init_residual, Goyal et al. 2017).",
    )
    downsample: bool | None = Field(
        None,
        description="1x1 conv + norm shortcut; omitted: only when the stride or the channel "
        "count changes (torchvision's rule). false requires an identity-compatible input.",
    )
    avg_down: bool = Field(
        False,
        description="Shortcut of a strided block: 2x2 average pool (ceil mode, padding not "
        "counted), then a stride-1 1x1 conv + norm (ResNet-D, He et al. 2019 'Bag of Tricks'; "
        "timm's avg_down): children downsample.0 (pool), .1 (conv), .2 (norm).",
    )
    drop_path: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Stochastic depth (Huang et al. 2016): in training, drop the residual "
        "branch per sample with this probability (timm's DropPath; no parameters).",
    )
    norm: f.Norm = f.norm_field()
    norm_eps: float = f.eps_field()
    norm_momentum: float = f.momentum_field()
    activation: f.Activation = f.activation_field()

    @field_validator("attention")
    @classmethod
    def _known_attention(cls, value: str) -> str:
        if value not in ("none", "sk"):
            try:
                attention_block(value)
            except (RegistryError, ValueError) as e:
                raise ValueError(str(e)) from None
        return value

    @property
    def out_channels(self) -> int:
        return self.channels * self.expansion  # type: ignore[attr-defined]

    def attention_spec(self) -> BlockSpec | None:
        """The attention after the last norm as a block (None: none, or sk's conv2)."""
        if self.attention in ("none", "sk"):
            return None
        return attention_block(self.attention, self.attention_reduction)

    def width(self) -> int:
        """Inner channels: torchvision's ``int(planes * base_width / 64) * groups``."""
        return self.channels * self.width_per_group // 64 * self.groups

    def uses_downsample(self, in_channels: int) -> bool:
        if self.downsample is None:
            return self.stride != 1 or in_channels != self.out_channels
        return self.downsample

    def _check(self, in_channels: int) -> None:
        width = self.width()
        if width < 1:
            raise ShapeError(
                f"channels {self.channels} * width_per_group {self.width_per_group} / 64 rounds "
                "down to no channel per group",
                field="width_per_group",
            )
        if not self.uses_downsample(in_channels) and (
            self.stride != 1 or in_channels != self.out_channels
        ):
            raise ShapeError(
                f"downsample is false but the block maps {in_channels} channels at stride "
                f"{self.stride} to {self.out_channels} channels: the identity cannot be added",
                field="downsample",
            )
        if self.attention == "sk" and width // sk_reduction(self.attention_reduction) < 1:
            raise ShapeError(
                f"sk attention on {width} channels reduced by "
                f"{sk_reduction(self.attention_reduction)} leaves no hidden channel",
                field="attention_reduction",
            )
        if self.avg_down and (self.dilation != 1 or (self.first_dilation or 1) != 1):
            raise ShapeError(
                "avg_down shortcuts are not dilated: use dilation 1", field="avg_down"
            )
        if self.attention == "sk" and self.groups != 1:
            raise ShapeError(
                "an SK conv2 is not grouped: use groups 1 (set the width with width_per_group)",
                field="groups",
            )
        if self.attention == "sk" and (self.dilation != 1 or (self.first_dilation or 1) != 1):
            raise ShapeError(
                "an SK conv2 sets its own dilations (1, 2): use dilation 1", field="dilation"
            )

    def output_shape(self, in_shape: Shape) -> Shape:
        c, _, _ = feature_map(in_shape, self.kind)
        self._check(c)
        # Every 3x3 pads by its dilation and the shortcut is a 1x1 (or a 2x2 ceil-mode pool):
        # (H - 1) // stride + 1.
        out = conv_shape(in_shape, self.out_channels, 1, self.stride, kind=self.kind)
        attention = self.attention_spec()
        if attention is not None:
            try:
                attention.output_shape(out)
            except ShapeError as e:
                at = "attention_reduction" if e.field == "reduction" else "attention"
                raise ShapeError(f"{self.attention} attention: {e}", field=at) from None
        return out

    def cost(self, in_shape: Shape) -> Cost | None:
        """Analytic, with the attention kind's own cost (SK blocks, and attention kinds
        without a cost, are counted built)."""
        if self.attention == "sk":
            return None
        out = self.output_shape(in_shape)
        attention = self.attention_spec()
        gate = cost.FREE if attention is None else attention.cost(out)
        if gate is None:
            return None
        c, bias = in_shape[0], self.norm == "none"
        shortcut = (0, 0)
        if self.uses_downsample(c):
            conv = cost.conv(c, self.out_channels, 1, out, bias=bias)
            shortcut = cost.total(conv, cost.norm(self.norm, self.out_channels))
        return cost.total(shortcut, gate, *self._branch(in_shape, out, bias))

    def _branch(self, in_shape: Shape, out: Shape, bias: bool) -> list[Cost]:
        """Costs of the residual branch's layers; each block kind (basic, bottleneck)."""
        raise NotImplementedError


@register_block("basic")
class BasicBlock(_ResNetBlock):
    """ResNet's basic block: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), both 3x3.

    Dilated like timm: conv1 uses ``first_dilation`` (default ``dilation``), conv2 ``dilation``.
    """

    module = f"{_M}:BasicBlock"
    expansion: int = Field(1, ge=1, le=16, description="Output channels per unit of channels.")
    examples = (
        ({"channels": 8}, (8, 8, 8)),
        ({"channels": 16, "stride": 2, "attention": "se", "attention_reduction": 4}, (8, 9, 9)),
        ({"channels": 8, "attention": "cbam", "attention_reduction": 4, "dilation": 2}, (8, 8, 8)),
        ({"channels": 8, "attention": "sk", "downsample": True}, (8, 8, 8)),
        ({"channels": 16, "stride": 2, "avg_down": True, "attention": "eca"}, (8, 9, 9)),
    )

    def _check(self, in_channels: int) -> None:
        if self.groups != 1:
            raise ShapeError("a basic block supports only groups 1", field="groups")
        if self.width_per_group != 64:
            raise ShapeError(
                "a basic block supports only width_per_group 64", field="width_per_group"
            )
        if self.attention == "sk" and self.expansion != 1:
            raise ShapeError("an SK conv2 keeps its width: use expansion 1", field="expansion")
        super()._check(in_channels)

    def _branch(self, in_shape: Shape, out: Shape, bias: bool) -> list[Cost]:
        mid = (self.channels, *out[1:])
        return [
            cost.conv(in_shape[0], self.channels, 3, mid, bias=bias),
            cost.norm(self.norm, self.channels),
            cost.conv(self.channels, self.out_channels, 3, out, bias=bias),
            cost.norm(self.norm, self.out_channels),
        ]


@register_block("bottleneck")
class Bottleneck(_ResNetBlock):
    """ResNet v1.5 bottleneck: 1x1 reduce, 3x3 (stride, groups), 1x1 expand, + shortcut.

    The stride sits in the 3x3 conv as in torchvision (ResNet v1.5); ResNeXt and Wide ResNet
    are ``groups`` / ``width_per_group`` settings of it.
    """

    module = f"{_M}:Bottleneck"
    expansion: int = Field(4, ge=1, le=16, description="Output channels per unit of channels.")
    examples = (
        ({"channels": 4}, (16, 8, 8)),
        ({"channels": 8, "stride": 2, "groups": 4, "width_per_group": 16}, (16, 9, 9)),
        ({"channels": 4, "dilation": 2, "first_dilation": 1, "zero_init_last": True}, (8, 8, 8)),
        ({"channels": 8, "attention": "se", "expansion": 2}, (16, 8, 8)),
        ({"channels": 8, "attention": "sk", "stride": 2, "width_per_group": 32}, (32, 8, 8)),
        ({"channels": 8, "attention": "cbam", "attention_reduction": 8}, (32, 6, 6)),
        ({"channels": 4, "avg_down": True, "attention": "se_conv", "drop_path": 0.2}, (8, 7, 7)),
        ({"channels": 8, "stride": 2, "avg_down": True, "groups": 2}, (16, 7, 7)),
    )

    def _branch(self, in_shape: Shape, out: Shape, bias: bool) -> list[Cost]:
        width = self.width()
        return [
            cost.conv(in_shape[0], width, 1, (width, *in_shape[1:]), bias=bias),
            cost.norm(self.norm, width),
            cost.conv(width, width, 3, (width, *out[1:]), self.groups, bias=bias),
            cost.norm(self.norm, width),
            cost.conv(width, self.out_channels, 1, out, bias=bias),
            cost.norm(self.norm, self.out_channels),
        ]


def _check_stride_1_identity(in_channels: int, out_channels: int, stride: int) -> None:
    if stride == 1 and in_channels != out_channels:
        raise ShapeError(
            f"a stride-1 unit adds or splits its input, so out_channels ({out_channels}) must "
            f"equal the {in_channels} input channels",
            field="out_channels",
        )


@register_block("shufflenet_v2_unit")
class ShuffleNetV2Unit(BlockSpec):
    """ShuffleNet v2 unit (Ma et al., 2018), torchvision's ``shufflenetv2.InvertedResidual``.

    Stride 1 splits the channels in halves and transforms one; stride 2 transforms the whole
    input in two branches. The halves are concatenated and shuffled (2 groups).
    """

    module = f"{_M}:ShuffleNetV2Unit"
    source = "Ma et al., ShuffleNet V2 (2018); torchvision.models.shufflenetv2"
    shorthand = "out_channels"
    width_fields = ("out_channels",)
    out_channels: f.Channels = Field(description="Number of output channels (even).")
    stride: Literal[1, 2] = Field(1, description="1 keeps the size; 2 halves it.")
    examples = (
        ({"out_channels": 16}, (16, 8, 8)),
        ({"out_channels": 24, "stride": 2}, (8, 9, 9)),
    )

    def output_shape(self, in_shape: Shape) -> Shape:
        c, _, _ = feature_map(in_shape, self.kind)
        if self.out_channels % 2:
            raise ShapeError(
                f"out_channels {self.out_channels} must be even (two concatenated halves)",
                field="out_channels",
            )
        _check_stride_1_identity(c, self.out_channels, self.stride)
        return conv_shape(in_shape, self.out_channels, 3, self.stride, 1, kind=self.kind)


@register_block("shufflenet_v1_unit")
class ShuffleNetV1Unit(BlockSpec):
    """ShuffleNet v1 unit (Zhang et al., 2018): group 1x1, shuffle, depthwise 3x3, group 1x1.

    Stride 1 adds the input; stride 2 concatenates a 3x3 average pool of it, so the branch
    makes ``out_channels - in_channels`` channels. ReLU follows the merge.
    """

    module = f"{_M}:ShuffleNetV1Unit"
    source = "Zhang et al., ShuffleNet (2018); megvii-model/ShuffleNet-Series"
    shorthand = "out_channels"
    width_fields = ("out_channels",)
    out_channels: f.Channels = Field(
        description="Number of output channels (at stride 2 including the pooled input)."
    )
    stride: Literal[1, 2] = Field(1, description="1 adds the input; 2 halves the size, concats.")
    groups: int = Field(3, ge=1, description="Groups of the 1x1 convs and of the shuffle.")
    first_group: bool = Field(
        True,
        description="Group the first 1x1 conv; the paper leaves it dense in the first unit of "
        "stage 2, whose input is too thin to split.",
    )
    bottleneck_ratio: float = Field(
        0.25, gt=0, le=4, description="Bottleneck channels as a fraction of out_channels."
    )
    examples = (
        ({"out_channels": 24}, (24, 8, 8)),
        ({"out_channels": 24, "stride": 2, "first_group": False}, (6, 9, 9)),
        ({"out_channels": 32, "stride": 2, "groups": 2, "bottleneck_ratio": 0.5}, (8, 8, 8)),
    )

    def mid_channels(self) -> int:
        return int(self.out_channels * self.bottleneck_ratio)

    def branch_channels(self, in_channels: int) -> int:
        return self.out_channels - (in_channels if self.stride == 2 else 0)

    def output_shape(self, in_shape: Shape) -> Shape:
        c, h, w = feature_map(in_shape, self.kind)
        _check_stride_1_identity(c, self.out_channels, self.stride)
        branch, mid = self.branch_channels(c), self.mid_channels()
        if branch < 1:
            raise ShapeError(
                f"at stride 2 the output concatenates the {c} input channels: out_channels "
                f"({self.out_channels}) must exceed them",
                field="out_channels",
            )
        if mid < 1:
            raise ShapeError(
                f"bottleneck_ratio {self.bottleneck_ratio} of {self.out_channels} leaves no "
                "bottleneck channel",
                field="bottleneck_ratio",
            )
        first = self.groups if self.first_group else 1
        for what, n, g in (
            ("input channels", c, first),
            ("bottleneck channels", mid, self.groups),
            ("branch output channels", branch, self.groups),
        ):
            if n % g:
                raise ShapeError(f"{what} ({n}) are not divisible by {g} groups", field="groups")
        return (
            self.out_channels,
            conv_size(h, 3, self.stride, 1),
            conv_size(w, 3, self.stride, 1),
        )
