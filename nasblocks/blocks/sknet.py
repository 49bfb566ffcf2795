"""Selective-kernel residual blocks in timm's layout (``timm.models.sknet``).

``sk_basic`` and ``sk_bottleneck`` are ResNet's blocks with their 3x3 conv replaced by a
selective-kernel convolution: parallel 3x3 paths of dilation 1 and 2 (a 3x3 and a "5x5"),
fused by a softmax attention over the paths (Li et al. 2019). Child names follow timm's
``SelectiveKernelBasic`` / ``SelectiveKernelBottleneck`` (``conv1.paths.0.conv``,
``conv1.attn.fc_reduce`` ..., ``conv2.bn``), so timm's ``skresnet*`` / ``skresnext*`` weights
load unchanged. The shortcut, attention slot, ``avg_down`` and stochastic depth are those of
``basic`` / ``bottleneck``.
"""

from __future__ import annotations

from pydantic import Field

from nasblocks.blocks import _costs as cost
from nasblocks.blocks._costs import Cost
from nasblocks.blocks._shapes import make_divisible
from nasblocks.blocks.residual import _ResNetBlock
from nasblocks.errors import ShapeError
from nasblocks.registry import Shape, register_block

_M = "nasblocks.modules.sknet"

PATHS = 2  # a 3x3 and a 3x3 of dilation 2 (timm's kernel_size [3, 5] with keep_3x3)


def sk_attn_channels(channels: int, reduction: int, divisor: int) -> int:
    """Width of the path attention: ``make_divisible(channels / reduction, divisor)``."""
    return make_divisible(channels / reduction, divisor)


class _SKBlock(_ResNetBlock):
    source = "Li et al., Selective Kernel Networks (2019), arXiv:1903.06586; timm.models.sknet"

    sk_reduction: int = Field(
        16, ge=1, description="Channels / sk_reduction attention channels (timm's rd_ratio)."
    )
    sk_divisor: int = Field(
        8, ge=1, le=256, description="The attention width is a multiple of it (rd_divisor)."
    )
    split_input: bool = Field(
        False,
        description="Give each path its share of the input channels instead of all of them "
        "(timm's skresnet18/34: fewer parameters).",
    )

    def _sk_check(self, in_channels: int, groups: int) -> None:
        if self.norm != "batch" or self.activation != "relu":
            field = "norm" if self.norm != "batch" else "activation"
            raise ShapeError("timm's SK blocks use batch norm and ReLU", field=field)
        if self.split_input and in_channels % PATHS:
            raise ShapeError(
                f"split_input needs input channels divisible by {PATHS}, got {in_channels}",
                field="split_input",
            )
        if self.dilation != 1 or (self.first_dilation or 1) != 1:
            raise ShapeError(
                "an SK block sets its own dilations: use dilation 1", field="dilation"
            )
        if self.attention == "sk":
            raise ShapeError("an SK block's conv already is selective", field="attention")
        path_in = in_channels // PATHS if self.split_input else in_channels
        if path_in % groups:
            raise ShapeError(
                f"{path_in} path input channels are not divisible by {groups} groups",
                field="groups",
            )

    def _sk_cost(self, in_channels: int, out: Shape, groups: int) -> list[Cost]:
        """The selective-kernel conv from ``in_channels`` to ``out`` ``(C, H, W)``."""
        path_in = in_channels // PATHS if self.split_input else in_channels
        c = out[0]
        attn = sk_attn_channels(c, self.sk_reduction, self.sk_divisor)
        paths = [cost.conv(path_in, c, 3, out, groups), cost.norm("batch", c)] * PATHS
        return [
            *paths,
            cost.conv(c, attn, 1, (attn, 1, 1)),
            cost.norm("batch", attn),
            cost.conv(attn, c * PATHS, 1, (c * PATHS, 1, 1)),
        ]


@register_block("sk_basic")
class SKBasic(_SKBlock):
    """timm's ``SelectiveKernelBasic``: a selective-kernel conv (stride), then a 3x3
    conv-BN, an optional attention, plus the shortcut (skresnet18 / 34)."""

    module = f"{_M}:SKBasic"
    expansion: int = Field(1, ge=1, le=16, description="Output channels per unit of channels.")
    examples = (
        ({"channels": 8, "split_input": True, "sk_divisor": 4}, (8, 8, 8)),
        ({"channels": 16, "stride": 2, "avg_down": True, "attention": "se_conv"}, (8, 9, 9)),
    )

    def _check(self, in_channels: int) -> None:
        if self.groups != 1 or self.width_per_group != 64:
            raise ShapeError("an SK basic block supports only groups 1", field="groups")
        self._sk_check(in_channels, 1)
        super()._check(in_channels)

    def _branch(self, in_shape: Shape, out: Shape, bias: bool) -> list[Cost]:
        mid = (self.channels, *out[1:])
        return [
            *self._sk_cost(in_shape[0], mid, 1),
            cost.conv(self.channels, self.out_channels, 3, out),
            cost.norm("batch", self.out_channels),
        ]


@register_block("sk_bottleneck")
class SKBottleneck(_SKBlock):
    """timm's ``SelectiveKernelBottleneck``: 1x1 conv-BN-ReLU, a grouped selective-kernel
    conv (stride), 1x1 conv-BN, an optional attention, plus the shortcut (skresnet50,
    skresnext50_32x4d: the SKNet-50 of the paper)."""

    module = f"{_M}:SKBottleneck"
    expansion: int = Field(4, ge=1, le=16, description="Output channels per unit of channels.")
    examples = (
        ({"channels": 4, "sk_divisor": 4}, (16, 8, 8)),
        ({"channels": 8, "stride": 2, "groups": 4, "width_per_group": 16}, (16, 9, 9)),
    )

    def _check(self, in_channels: int) -> None:
        self._sk_check(self.width(), min(self.width(), self.groups))
        super()._check(in_channels)

    def _branch(self, in_shape: Shape, out: Shape, bias: bool) -> list[Cost]:
        width = self.width()
        return [
            cost.conv(in_shape[0], width, 1, (width, *in_shape[1:])),
            cost.norm("batch", width),
            *self._sk_cost(width, (width, *out[1:]), min(width, self.groups)),
            cost.conv(width, self.out_channels, 1, out),
            cost.norm("batch", self.out_channels),
        ]
