"""DarkNet and Cross-Stage-Partial stages in timm's layout (``timm.models.cspnet``).

``conv_norm_act`` is timm's ``ConvNormAct`` (children ``conv``, ``bn``); ``dark_stage`` is a
strided 3x3 ``conv_down`` then ``blocks.0`` ... (DarkNet-53, Redmon & Farhadi 2018);
``csp_stage`` splits the expanded input in two halves, runs the blocks on one and
concatenates it back with the other before a transition conv (Wang et al., CSPNet, 2020).
Their blocks are timm's ``DarkBlock`` (1x1 then 3x3, plus the input) or ``BottleneckBlock``
(1x1, 3x3, 1x1, plus the input, then the activation). timm's CSP nets use leaky ReLU with
slope 0.01, the default of ``negative_slope`` here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from nasblocks.blocks import _costs as cost
from nasblocks.blocks import _fields as f
from nasblocks.blocks._costs import Cost
from nasblocks.blocks._shapes import conv_shape, feature_map
from nasblocks.errors import ShapeError
from nasblocks.registry import BlockSpec, Shape, register_block

_M = "nasblocks.modules.csp"
SOURCE = (
    "Wang et al., CSPNet (2020), arXiv:1911.11929; Redmon & Farhadi, YOLOv3 (2018); timm cspnet"
)

_CHECK, _SCHEMA = f.activation_checks(("leaky_relu", "relu", "silu", "mish", "none"))
CspActivation = Annotated[str | f.ActivationArgs, _CHECK, _SCHEMA]
ACT_DOC = (
    "Activation after each norm: leaky_relu (with negative_slope), relu, silu, mish or none; "
    "or {leaky_relu: SLOPE}."
)


def conv_bn(cin: int, cout: int, k: int, out: Shape, groups: int = 1) -> Cost:
    return cost.total(cost.conv(cin, cout, k, (cout, *out[1:]), groups), cost.norm("batch", cout))


def activation_field():
    return Field("leaky_relu", description=ACT_DOC)


def slope_field():
    return Field(0.01, ge=0, le=1, description="Slope of leaky_relu.")


@register_block("conv_norm_act")
class ConvNormAct(BlockSpec):
    """timm's ``ConvNormAct``: a bias-free conv (``conv``), BN (``bn``), then the activation."""

    module = f"{_M}:ConvNormAct"
    source = "timm.layers.ConvNormAct"
    shorthand = "out_channels"
    width_fields = ("out_channels",)
    out_channels: f.Channels = Field(description="Number of output channels.")
    kernel_size: int = Field(3, ge=1, le=15, description="Kernel size (padded to keep the size).")
    stride: int = Field(1, ge=1, le=8, description="Stride.")
    groups: int = Field(1, ge=1, description="Convolution groups.")
    activation: CspActivation = activation_field()
    negative_slope: float = slope_field()
    norm_eps: float = f.eps_field()
    examples = (
        ({"out_channels": 8}, (3, 8, 8)),
        ({"out_channels": 8, "stride": 2, "kernel_size": 7, "activation": "relu"}, (4, 9, 9)),
    )

    def output_shape(self, in_shape: Shape) -> Shape:
        c, _, _ = feature_map(in_shape, self.kind)
        if c % self.groups or self.out_channels % self.groups:
            raise ShapeError(f"channels are not divisible by {self.groups} groups", field="groups")
        return conv_shape(
            in_shape, self.out_channels, self.kernel_size, self.stride,
            ((self.stride - 1) + self.kernel_size - 1) // 2, kind=self.kind,
        )  # fmt: skip

    def cost(self, in_shape: Shape) -> Cost:
        out = self.output_shape(in_shape)
        return conv_bn(in_shape[0], self.out_channels, self.kernel_size, out, self.groups)


class _Stage(BlockSpec):
    source = SOURCE
    shorthand = "out_channels"
    width_fields = ("out_channels",)
    out_channels: f.Channels = Field(description="Output channels of the stage.")
    depth: int = Field(1, ge=1, le=100, description="Number of blocks.")
    stride: Literal[1, 2] = Field(2, description="Stride of conv_down (1: no conv_down in CSP).")
    block: Literal["dark", "bottle"] = Field(
        "dark", description="dark: 1x1 + 3x3 (DarkNet); bottle: 1x1, 3x3, 1x1 (ResNet)."
    )
    bottle_ratio: float = Field(0.5, gt=0, le=4, description="Block width / block output.")
    block_ratio: float = Field(1.0, gt=0, le=4, description="Block output / stage output.")
    groups: int = Field(1, ge=1, description="Groups of the 3x3 convs.")
    activation: CspActivation = activation_field()
    negative_slope: float = slope_field()

    def block_out(self) -> int:
        return int(round(self.out_channels * self.block_ratio))

    def block_mid(self) -> int:
        return int(round(self.block_out() * self.bottle_ratio))

    def _blocks_cost(self, cin: int, out: Shape) -> list[Cost]:
        """The blocks on an input of ``cin`` channels at the stage's output size."""
        b, mid, costs = self.block_out(), self.block_mid(), []
        for i in range(self.depth):
            c = cin if i == 0 else b
            if self.block == "dark":
                costs += [conv_bn(c, mid, 1, out), conv_bn(mid, b, 3, out, self.groups)]
            else:
                costs += [
                    conv_bn(c, mid, 1, out),
                    conv_bn(mid, mid, 3, out, self.groups),
                    conv_bn(mid, b, 1, out),
                ]
        return costs

    def _check_blocks(self, cin: int) -> None:
        b, mid = self.block_out(), self.block_mid()
        if cin != b:
            raise ShapeError(
                f"the blocks add their input: {cin} channels reach them, they make {b}",
                field="block_ratio",
            )
        if mid < 1 or mid % self.groups or (self.block == "dark" and b % self.groups):
            raise ShapeError(
                f"block width {mid} is not a positive multiple of {self.groups} groups",
                field="bottle_ratio",
            )


@register_block("dark_stage")
class DarkStage(_Stage):
    """timm's ``DarkStage``: ``conv_down`` (3x3, stride), then ``blocks.0`` ... (DarkNet-53)."""

    module = f"{_M}:DarkStage"
    examples = (
        ({"out_channels": 16, "depth": 2}, (8, 9, 9)),
        ({"out_channels": 8, "block": "bottle", "bottle_ratio": 0.5}, (4, 8, 8)),
    )

    def output_shape(self, in_shape: Shape) -> Shape:
        feature_map(in_shape, self.kind)
        self._check_blocks(self.out_channels)
        return conv_shape(in_shape, self.out_channels, 3, self.stride, 1, kind=self.kind)

    def cost(self, in_shape: Shape) -> Cost:
        out = self.output_shape(in_shape)
        down = conv_bn(in_shape[0], self.out_channels, 3, out, self.groups)
        return cost.total(down, *self._blocks_cost(self.out_channels, out))


@register_block("csp_stage")
class CSPStage(_Stage):
    """timm's ``CrossStage``: ``conv_down`` (when strided), ``conv_exp`` (1x1), split in two
    halves; ``blocks`` and ``conv_transition_b`` on the second; concatenated, then
    ``conv_transition`` (1x1) to ``out_channels``."""

    module = f"{_M}:CSPStage"
    expand_ratio: float = Field(1.0, gt=0, le=8, description="conv_exp output / out_channels.")
    down_growth: bool = Field(
        False, description="conv_down makes out_channels (else it keeps the input's)."
    )
    cross_linear: bool = Field(False, description="No activation after conv_exp.")
    examples = (
        ({"out_channels": 16, "expand_ratio": 2.0, "down_growth": True}, (8, 9, 9)),
        (
            {"out_channels": 16, "stride": 1, "block": "bottle", "expand_ratio": 2.0,
             "cross_linear": True},
            (8, 6, 6),
        ),
    )  # fmt: skip

    def channels(self, cin: int) -> tuple[int, int]:
        """``(conv_down output, conv_exp output)``."""
        down = cin if self.stride == 1 else (self.out_channels if self.down_growth else cin)
        return down, int(round(self.out_channels * self.expand_ratio))

    def output_shape(self, in_shape: Shape) -> Shape:
        c, _, _ = feature_map(in_shape, self.kind)
        _, exp = self.channels(c)
        if exp % 2:
            raise ShapeError(f"conv_exp makes {exp} channels: split in halves, it must be even",
                             field="expand_ratio")  # fmt: skip
        self._check_blocks(exp // 2)
        return conv_shape(in_shape, self.out_channels, 3, self.stride, 1, kind=self.kind)

    def cost(self, in_shape: Shape) -> Cost:
        out = self.output_shape(in_shape)
        c = in_shape[0]
        down, exp = self.channels(c)
        parts = [] if self.stride == 1 else [conv_bn(c, down, 3, out, self.groups)]
        parts += [conv_bn(down, exp, 1, out), *self._blocks_cost(exp // 2, out)]
        parts += [
            conv_bn(self.block_out(), exp // 2, 1, out),
            conv_bn(exp, self.out_channels, 1, out),
        ]
        return cost.total(*parts)
