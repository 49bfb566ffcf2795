"""EfficientNet-family blocks in timm's layout: MBConv, depthwise-separable, MixConv, BN+act.

``mb_conv`` is timm's ``InvertedResidual`` (MobileNetV2's inverted residual with optional
squeeze-excitation: the MBConv of MnasNet and EfficientNet), ``ds_conv`` its
``DepthwiseSeparableConv``, ``mixed_conv`` its ``MixedConv2d`` (MixNet's MixConv),
``batchnorm_act`` its ``BatchNormAct2d`` and ``cn_conv`` its ``ConvBnAct``, child for child
(``conv_pw``, ``bn1``, ``conv_dw``, ``se.conv_reduce`` ...), so timm's EfficientNet, MixNet and
MobileNetV2 state dicts load strictly into nets written with them. Convolutions pad as timm's
PyTorch-style ones do (``((stride - 1) + (k - 1)) // 2``), batch norms default to PyTorch's eps
and momentum.

A kernel size given as a list makes that convolution a MixConv (Tan & Le, 2019): the channels
split into one group per kernel (the first group takes the remainder), one convolution each,
concatenated; timm's ``k3.5.7``, ``a1.1``, ``p1.1`` in MixNet's architecture strings.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from nasblocks.blocks import _costs as cost
from nasblocks.blocks import _fields as f
from nasblocks.blocks._costs import Cost
from nasblocks.blocks._shapes import conv_size, feature_map, make_divisible
from nasblocks.errors import ShapeError
from nasblocks.registry import BlockSpec, Shape, register_block

_M = "nasblocks.modules.efficientnet"

_Odd = Annotated[int, Field(ge=1, le=31)]
MixKernel = _Odd | Annotated[list[_Odd], Field(min_length=1, max_length=16)]
"""A square kernel size, or a list of them: a MixConv with one channel group per kernel."""

MIX_DOC = "a list (e.g. [3, 5, 7]) splits the channels into one group per kernel (MixConv)"
SE_DOC = (
    "Squeeze-excitation ratio (timm's se_ratio): the gate's hidden width is this fraction of "
    "the block's input channels, rounded; 0: no gate (child se is an Identity)."
)
RESIDUAL_DOC = (
    "Add the input when the stride is 1 and the channel count is kept (timm's has_skip); "
    "false: never (timm's noskip)."
)
DROP_PATH_DOC = (
    "Stochastic depth (Huang et al. 2016): in training, drop the residual branch per sample "
    "with this probability (timm's DropPath; only where the input is added)."
)


def kernels(kernel_size: int | list[int]) -> list[int]:
    return [kernel_size] if isinstance(kernel_size, int) else list(kernel_size)


def timm_padding(kernel_size: int, stride: int = 1, dilation: int = 1) -> int:
    """timm's ``get_padding``: the symmetric padding of its PyTorch-style convolutions."""
    return ((stride - 1) + dilation * (kernel_size - 1)) // 2


def split_channels(channels: int, groups: int) -> list[int]:
    """timm's MixConv split: equal parts, the remainder added to the first."""
    split = [channels // groups] * groups
    split[0] += channels - sum(split)
    return split


def mid_channels(in_channels: int, expand_ratio: float) -> int:
    """The hidden width of an MBConv: timm's ``make_divisible(in_chs * exp_ratio)``."""
    return make_divisible(in_channels * expand_ratio)


def se_channels(channels: int, se: float, expand_ratio: float = 1.0) -> int:
    """The hidden width of an SE gate on ``channels`` (a block's hidden width, expanded by
    ``expand_ratio`` from its input): timm divides se_ratio by exp_ratio and applies it to the
    gate's input, kept verbatim so that the float rounding (and the width) is timm's."""
    return round(channels * (se / expand_ratio))


def _check_odd(value: int | list[int]) -> int | list[int]:
    even = [k for k in kernels(value) if k % 2 == 0]
    if even:
        raise ValueError(
            f"kernel size {even[0]} is even: timm's symmetric padding keeps the size (and lets "
            "mixed kernels line up) only for odd kernels"
        )
    return value


def _check_split(channels: int, kernel_size: int | list[int], what: str, field: str) -> None:
    n = len(kernels(kernel_size))
    if isinstance(kernel_size, list) and channels < n:
        raise ShapeError(f"{what} ({channels}) cannot split into {n} kernel groups", field=field)


def mix_conv_cost(
    in_channels: int,
    out_channels: int,
    kernel_size: int | list[int],
    hw: tuple[int, ...],
    depthwise: bool = False,
) -> Cost:
    """A plain convolution (an int kernel) or a MixConv (a list), without bias."""
    ks = kernels(kernel_size)
    ins, outs = split_channels(in_channels, len(ks)), split_channels(out_channels, len(ks))
    return cost.total(
        *(
            cost.conv(i, o, k, (o, *hw), groups=i if depthwise else 1)
            for k, i, o in zip(ks, ins, outs, strict=True)
        )
    )


def out_hw(in_shape: Shape, kernel_size: int | list[int], stride: int) -> tuple[int, int]:
    """H x W after a (mixed) convolution padded as timm's: every odd kernel gives the same."""
    _, h, w = in_shape
    k = kernels(kernel_size)[0]
    p = timm_padding(k, stride)
    return conv_size(h, k, stride, p), conv_size(w, k, stride, p)  # >= 1: odd, padded k // 2


def se_cost(channels: int, hidden: int) -> Cost:
    """timm's EfficientNet SqueezeExcite: 1x1 convs with bias, C -> hidden -> C, on 1x1."""
    return cost.total(
        cost.conv(channels, hidden, 1, (hidden, 1, 1), bias=True),
        cost.conv(hidden, channels, 1, (channels, 1, 1), bias=True),
    )


@register_block("batchnorm_act")
class BatchNormAct(BlockSpec):
    """timm's ``BatchNormAct2d``: a BatchNorm2d whose child ``act`` applies the activation.

    Keys are a BatchNorm2d's (``bn1.weight``, ``bn1.running_mean`` ...): timm's EfficientNet
    stem and head norms (``bn1``, ``bn2``) are written with it.
    """

    module = f"{_M}:BatchNormAct2d"
    source = "timm.layers.norm_act.BatchNormAct2d"
    shorthand = "activation"
    activation: f.Activation = f.activation_field()
    norm_eps: float = f.eps_field()
    norm_momentum: float = f.momentum_field()
    examples = (({}, (4, 5, 5)), ({"activation": "silu", "norm_eps": 1e-3}, (6, 3, 3)))

    def output_shape(self, in_shape: Shape) -> Shape:
        return feature_map(in_shape, self.kind)

    def cost(self, in_shape: Shape) -> Cost:
        return cost.norm("batch", in_shape[0])


@register_block("mixed_conv")
class MixedConv(BlockSpec):
    """MixConv (Tan & Le, 2019), timm's ``MixedConv2d``: the channels split into one group
    per kernel size, each convolved by its own bias-free conv (children ``0``, ``1`` ...),
    the outputs concatenated."""

    module = f"{_M}:MixedConv2d"
    source = "Tan & Le, MixConv (2019), arXiv:1907.09595; timm.layers.mixed_conv2d"
    shorthand = "out_channels"
    width_fields = ("out_channels",)
    out_channels: f.Channels = Field(description="Number of output channels.")
    kernel_size: list[_Odd] = Field(
        [3, 5, 7], min_length=1, max_length=16, description="One odd kernel size per group."
    )
    stride: Literal[1, 2] = Field(1, description="Stride of every group's conv: 1 or 2.")
    depthwise: bool = Field(
        False, description="Depthwise convs (each group's conv has one group per channel)."
    )
    examples = (
        ({"out_channels": 8, "kernel_size": [3, 5]}, (6, 7, 7)),
        ({"out_channels": 9, "kernel_size": [3, 5, 7], "stride": 2, "depthwise": True}, (9, 9, 9)),
    )

    odd_kernels = field_validator("kernel_size")(_check_odd)

    def output_shape(self, in_shape: Shape) -> Shape:
        c, _, _ = feature_map(in_shape, self.kind)
        if self.depthwise and self.out_channels != c:
            raise ShapeError(
                f"a depthwise mixed conv keeps the channels: out_channels {self.out_channels} "
                f"!= {c} input channels",
                field="out_channels",
            )
        _check_split(c, self.kernel_size, "input channels", "kernel_size")
        _check_split(self.out_channels, self.kernel_size, "out_channels", "kernel_size")
        return (self.out_channels, *out_hw(in_shape, self.kernel_size, self.stride))

    def cost(self, in_shape: Shape) -> Cost:
        hw = self.output_shape(in_shape)[1:]
        return mix_conv_cost(in_shape[0], self.out_channels, self.kernel_size, hw, self.depthwise)


class _TimmBlock(BlockSpec):
    """Fields shared by ``ds_conv`` and ``mb_conv``: timm's block arguments."""

    source = "Tan & Le, EfficientNet (2019); timm.models._efficientnet_blocks"
    shorthand = "out_channels"
    width_fields = ("out_channels",)
    out_channels: f.Channels = Field(description="Number of output channels.")
    kernel_size: MixKernel = Field(
        3, description=f"Odd kernel size of the depthwise conv (conv_dw); {MIX_DOC}."
    )
    stride: Literal[1, 2] = Field(1, description="Stride of the depthwise conv: 1 or 2.")

    odd_kernels = field_validator("kernel_size")(_check_odd)

    def se_channels(self, in_channels: int) -> int:
        """Hidden channels of the block's SE (timm rounds them per block kind); each
        subclass."""
        raise NotImplementedError

    def _check_se(self, in_channels: int) -> None:
        se: float = getattr(self, "se")  # noqa: B009 - declared by the subclasses
        if se and self.se_channels(in_channels) < 1:
            raise ShapeError(
                f"se {se} of {in_channels} input channels rounds to no hidden channel",
                field="se",
            )


@register_block("ds_conv")
class DepthwiseSeparable(_TimmBlock):
    """timm's ``DepthwiseSeparableConv`` (MobileNet's separable conv with optional SE): depthwise
    kxk (``conv_dw``, ``bn1`` with the activation), ``se``, pointwise (``conv_pw``, ``bn2``,
    linear unless ``project_activation``); the input is added where the shape allows.

    EfficientNet's and MobileNetV2's first block (timm's ``ds`` / ``dsa`` arch strings).
    """

    module = f"{_M}:DepthwiseSeparableConv"
    project_kernel_size: MixKernel = Field(
        1, description=f"Kernel of the pointwise projection (conv_pw); {MIX_DOC}."
    )
    se: float = Field(0.0, ge=0, le=4, description=SE_DOC)
    project_activation: bool = Field(
        False, description="Apply the activation after bn2 too (timm's dsa / pw_act)."
    )
    residual: bool = Field(True, description=RESIDUAL_DOC)
    drop_path: float = Field(0.0, ge=0, lt=1, description=DROP_PATH_DOC)
    activation: f.Activation = f.activation_field()
    norm_eps: float = f.eps_field()
    norm_momentum: float = f.momentum_field()
    examples = (
        ({"out_channels": 8}, (8, 8, 8)),
        ({"out_channels": 16, "stride": 2, "se": 0.25, "activation": "silu"}, (8, 9, 9)),
        (
            {
                "out_channels": 8,
                "kernel_size": [3, 5],
                "project_kernel_size": [1, 1],
                "project_activation": True,
                "drop_path": 0.1,
            },
            (8, 6, 6),
        ),  # fmt: skip
    )

    odd_pointwise_kernels = field_validator("project_kernel_size")(_check_odd)

    def se_channels(self, in_channels: int) -> int:
        return se_channels(in_channels, self.se)  # the gate sits on the input's width

    def output_shape(self, in_shape: Shape) -> Shape:
        c, _, _ = feature_map(in_shape, self.kind)
        _check_split(c, self.kernel_size, "input channels", "kernel_size")
        _check_split(c, self.project_kernel_size, "input channels", "project_kernel_size")
        _check_split(
            self.out_channels, self.project_kernel_size, "out_channels", "project_kernel_size"
        )
        self._check_se(c)
        return (self.out_channels, *out_hw(in_shape, self.kernel_size, self.stride))

    def cost(self, in_shape: Shape) -> Cost:
        c = in_shape[0]
        out = self.output_shape(in_shape)
        parts = [
            mix_conv_cost(c, c, self.kernel_size, out[1:], depthwise=True),
            cost.norm("batch", c),
            mix_conv_cost(c, self.out_channels, self.project_kernel_size, out[1:]),
            cost.norm("batch", self.out_channels),
        ]
        if self.se:
            parts.append(se_cost(c, self.se_channels(c)))
        return cost.total(*parts)


@register_block("mb_conv")
class MBConv(_TimmBlock):
    """timm's ``InvertedResidual``, the MBConv of MnasNet / EfficientNet (Tan & Le, 2019):
    1x1 expansion (``conv_pw``, ``bn1``), depthwise kxk (``conv_dw``, ``bn2``), ``se``, linear
    1x1 projection (``conv_pwl``, ``bn3``); the input is added where the shape allows.

    The expansion is kept at ``expand_ratio`` 1 (timm's layout); the hidden width is
    ``make_divisible(in_channels * expand_ratio, 8)``.
    """

    module = f"{_M}:InvertedResidual"
    expand_ratio: float = Field(
        6, ge=1, le=64, description="Hidden width / input channels (rounded to a multiple of 8)."
    )
    expand_kernel_size: MixKernel = Field(
        1, description=f"Kernel of the expansion (conv_pw); {MIX_DOC}."
    )
    project_kernel_size: MixKernel = Field(
        1, description=f"Kernel of the linear projection (conv_pwl); {MIX_DOC}."
    )
    se: float = Field(0.0, ge=0, le=4, description=SE_DOC)
    residual: bool = Field(True, description=RESIDUAL_DOC)
    drop_path: float = Field(0.0, ge=0, lt=1, description=DROP_PATH_DOC)
    activation: f.Activation = f.activation_field()
    norm_eps: float = f.eps_field()
    norm_momentum: float = f.momentum_field()
    examples = (
        ({"out_channels": 8}, (8, 8, 8)),
        (
            {"out_channels": 16, "stride": 2, "kernel_size": 5, "se": 0.25,
             "activation": "silu", "drop_path": 0.2},
            (8, 9, 9),
        ),
        (
            {"out_channels": 12, "expand_ratio": 3, "kernel_size": [3, 5, 7],
             "expand_kernel_size": [1, 1], "project_kernel_size": [1, 1], "se": 0.5},
            (12, 7, 7),
        ),
        ({"out_channels": 8, "expand_ratio": 1, "residual": False, "activation": "relu6"},
         (8, 5, 5)),
    )  # fmt: skip

    odd_pointwise_kernels = field_validator("expand_kernel_size", "project_kernel_size")(
        _check_odd
    )

    def mid_channels(self, in_channels: int) -> int:
        return mid_channels(in_channels, self.expand_ratio)

    def se_channels(self, in_channels: int) -> int:
        return se_channels(self.mid_channels(in_channels), self.se, self.expand_ratio)

    def output_shape(self, in_shape: Shape) -> Shape:
        c, _, _ = feature_map(in_shape, self.kind)
        mid = self.mid_channels(c)
        _check_split(c, self.expand_kernel_size, "input channels", "expand_kernel_size")
        _check_split(mid, self.kernel_size, "hidden channels", "kernel_size")
        _check_split(mid, self.project_kernel_size, "hidden channels", "project_kernel_size")
        _check_split(
            self.out_channels, self.project_kernel_size, "out_channels", "project_kernel_size"
        )
        self._check_se(c)
        return (self.out_channels, *out_hw(in_shape, self.kernel_size, self.stride))

    def cost(self, in_shape: Shape) -> Cost:
        c = in_shape[0]
        mid = self.mid_channels(c)
        out = self.output_shape(in_shape)
        parts = [
            mix_conv_cost(c, mid, self.expand_kernel_size, in_shape[1:]),
            cost.norm("batch", mid),
            mix_conv_cost(mid, mid, self.kernel_size, out[1:], depthwise=True),
            cost.norm("batch", mid),
            mix_conv_cost(mid, self.out_channels, self.project_kernel_size, out[1:]),
            cost.norm("batch", self.out_channels),
        ]
        if self.se:
            parts.append(se_cost(mid, self.se_channels(c)))
        return cost.total(*parts)


@register_block("cn_conv")
class ConvBnAct(BlockSpec):
    """timm's ``ConvBnAct`` (the ``cn`` of its arch strings): a bias-free conv (``conv``), then
    BN and the activation (``bn1``, a ``batchnorm_act``).

    The 1x1 conv closing GhostNet's blocks (``blocks.9.0``) and MobileNetV3's is written with it.
    """

    module = f"{_M}:ConvBnAct"
    source = "timm.models._efficientnet_blocks.ConvBnAct"
    shorthand = "out_channels"
    width_fields = ("out_channels",)
    out_channels: f.Channels = Field(description="Number of output channels.")
    kernel_size: MixKernel = Field(1, description=f"Odd kernel size of the conv; {MIX_DOC}.")
    stride: Literal[1, 2] = Field(1, description="Stride of the conv: 1 or 2.")
    activation: f.Activation = f.activation_field()
    norm_eps: float = f.eps_field()
    norm_momentum: float = f.momentum_field()
    examples = (
        ({"out_channels": 8}, (4, 5, 5)),
        ({"out_channels": 6, "kernel_size": [3, 5], "stride": 2, "activation": "silu"}, (4, 9, 9)),
    )

    odd_kernels = field_validator("kernel_size")(_check_odd)

    def output_shape(self, in_shape: Shape) -> Shape:
        c, _, _ = feature_map(in_shape, self.kind)
        _check_split(c, self.kernel_size, "input channels", "kernel_size")
        _check_split(self.out_channels, self.kernel_size, "out_channels", "kernel_size")
        return (self.out_channels, *out_hw(in_shape, self.kernel_size, self.stride))

    def cost(self, in_shape: Shape) -> Cost:
        hw = self.output_shape(in_shape)[1:]
        return cost.total(
            mix_conv_cost(in_shape[0], self.out_channels, self.kernel_size, hw),
            cost.norm("batch", self.out_channels),
        )
