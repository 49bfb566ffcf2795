"""The convolution family beyond ``conv``: factorized, shuffled, deformable and upsampling convs.

``conv``, ``conv2d`` and ``pointwise`` live in :mod:`nasblocks.blocks.core`; dilated convolution
is ``conv`` with ``dilation``. Every block here pads to keep the size at stride 1 unless it says
otherwise, so swapping one for another in a search space keeps the network's shapes.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator

from nasblocks.blocks import _fields as f
from nasblocks.blocks._shapes import (
    check_divisible,
    check_groups,
    conv_shape,
    feature_map,
    pair,
    resolve_padding,
    same_padding,
)
from nasblocks.errors import ShapeError
from nasblocks.registry import BlockSpec, Shape, register_block

_M = "nasblocks.modules.conv"

_SAME = "Zero padding; omitted or 'same' keeps the size at stride 1."


@register_block("separable")
class Separable(BlockSpec):
    """Depthwise-separable conv (MobileNet v1, Howard et al. 2017; Xception, Chollet 2017).

    A per-channel kxk ``depthwise`` conv+norm+act, then a 1x1 ``pointwise`` conv+norm+act.
    """

    module = f"{_M}:SeparableConv"
    source = "Howard et al. 2017, MobileNets; Chollet 2017, Xception"
    shorthand = "out_channels"
    width_fields = ("out_channels",)
    out_channels: f.Channels = Field(description="Number of output channels (of the 1x1 conv).")
    kernel_size: f.Kernel = Field(3, description="Depthwise kernel size, an int or [kh, kw].")
    stride: f.Stride = Field(1, description="Stride of the depthwise conv, an int or [sh, sw].")
    dilation: f.Stride = Field(1, description="Dilation of the depthwise conv.")
    norm: f.Norm = f.norm_field()
    norm_eps: float = f.eps_field()
    norm_momentum: float = f.momentum_field()
    activation: f.Activation = f.activation_field()
    depthwise_activation: bool = Field(
        True, description="Apply the activation after the depthwise stage too (false: linear)."
    )

    def output_shape(self, in_shape: Shape) -> Shape:
        feature_map(in_shape, self.kind)
        padding = same_padding(self.kernel_size, self.dilation)
        return conv_shape(
            in_shape, self.out_channels, self.kernel_size, self.stride, padding, self.dilation
        )

    examples = (
        ({"out_channels": 16}, (8, 16, 16)),
        (
            {"out_channels": 8, "kernel_size": 5, "stride": 2, "dilation": 2},
            (4, 15, 15),
        ),
        ({"out_channels": 6, "kernel_size": [1, 3], "depthwise_activation": False}, (4, 8, 8)),
    )


@register_block("spatial_separable")
class SpatialSeparable(BlockSpec):
    """Spatially separable conv: 1xN then Nx1 (Szegedy et al. 2016, Inception-v3 factorization).

    ``conv1`` (1xN) strides along the width and ``conv2`` (Nx1) along the height, so the pair
    has the output size of one NxN conv. The children load torchvision's ``BasicConv2d``.
    """

    module = f"{_M}:SpatialSeparableConv"
    source = "Szegedy et al. 2016, Rethinking the Inception Architecture (Inception-v3)"
    shorthand = "out_channels"
    width_fields = ("out_channels", "mid_channels")
    out_channels: f.Channels = Field(description="Number of output channels.")
    kernel_size: Annotated[int, Field(ge=1, le=64)] = Field(
        7, description="N: the 1xN and Nx1 kernel length."
    )
    stride: f.Stride = Field(1, description="Stride, an int or [sh, sw].")
    mid_channels: f.Channels | None = Field(
        None, description="Channels between the 1xN and Nx1 convs; omitted: out_channels."
    )
    norm: f.Norm = f.norm_field()
    norm_eps: float = f.eps_field()
    norm_momentum: float = f.momentum_field()
    activation: f.Activation = f.activation_field()

    def output_shape(self, in_shape: Shape) -> Shape:
        k, (sh, sw), p = self.kernel_size, pair(self.stride), (self.kernel_size - 1) // 2
        mid = self.mid_channels or self.out_channels
        shape = conv_shape(in_shape, mid, (1, k), (1, sw), (0, p), kind=self.kind)
        return conv_shape(shape, self.out_channels, (k, 1), (sh, 1), (p, 0))

    examples = (
        ({"out_channels": 8}, (4, 9, 9)),
        ({"out_channels": 8, "kernel_size": 3, "stride": [2, 1], "mid_channels": 6}, (4, 9, 8)),
    )


@register_block("shuffle_conv")
class ShuffleConv(BlockSpec):
    """Grouped conv+norm+act, then a channel shuffle (Zhang et al. 2018, ShuffleNet v1).

    The shuffle lets the next grouped conv see channels from every group of this one.
    """

    module = f"{_M}:ShuffleConv"
    source = "Zhang et al. 2018, ShuffleNet"
    shorthand = "out_channels"
    width_fields = ("out_channels",)
    out_channels: f.Channels = Field(description="Number of output channels.")
    groups: int = Field(ge=1, description="Channel groups of the conv, and of the shuffle.")
    kernel_size: f.Kernel = Field(1, description="Kernel size, an int or [kh, kw].")
    stride: f.Stride = Field(1, description="Stride, an int or [sh, sw].")
    norm: f.Norm = f.norm_field()
    norm_eps: float = f.eps_field()
    norm_momentum: float = f.momentum_field()
    activation: f.Activation = f.activation_field()

    def output_shape(self, in_shape: Shape) -> Shape:
        check_groups(feature_map(in_shape, self.kind)[0], self.out_channels, self.groups)
        padding = same_padding(self.kernel_size)
        return conv_shape(in_shape, self.out_channels, self.kernel_size, self.stride, padding)

    examples = (
        ({"out_channels": 12, "groups": 3}, (6, 8, 8)),
        ({"out_channels": 8, "kernel_size": 3, "stride": 2, "groups": 4}, (8, 9, 9)),
    )


@register_block("channel_shuffle")
class ChannelShuffle(BlockSpec):
    """Channel shuffle alone (Zhang et al. 2018), in torchvision ShuffleNetV2's element order."""

    module = f"{_M}:ChannelShuffle"
    source = "Zhang et al. 2018, ShuffleNet"
    shorthand = "groups"
    groups: int = Field(2, ge=1, description="Number of groups whose channels are interleaved.")

    def output_shape(self, in_shape: Shape) -> Shape:
        c = feature_map(in_shape, self.kind)[0]
        check_divisible(c, self.groups, "channel count", field="groups")
        return tuple(in_shape)

    examples = (({}, (8, 4, 4)), ({"groups": 3}, (12, 5, 5)))


@register_block("deform_conv")
class DeformConv(BlockSpec):
    """Deformable conv v1 (Dai et al. 2017) or, ``modulated: true``, v2 (Zhu et al. 2019).

    ``torchvision.ops.DeformConv2d`` fed by a zero-initialised offset conv (so it starts as a
    plain conv) and, for v2, a sigmoid mask conv; then norm and activation.
    """

    module = f"{_M}:DeformConvNormAct"
    source = "Dai et al. 2017, Deformable ConvNets; Zhu et al. 2019, DCNv2"
    shorthand = "out_channels"
    width_fields = ("out_channels",)
    out_channels: f.Channels = Field(description="Number of output channels.")
    kernel_size: f.Kernel = Field(3, description="Kernel size, an int or [kh, kw].")
    stride: f.Stride = Field(1, description="Stride, an int or [sh, sw].")
    padding: f.Padding | Literal["same"] | None = Field(None, description=_SAME)
    dilation: f.Stride = Field(1, description="Spacing between kernel taps.")
    groups: int = Field(1, ge=1, description="Number of channel groups of the weight.")
    offset_groups: int = Field(
        1, ge=1, description="Channel groups that each learn their own offsets (and masks)."
    )
    modulated: bool = Field(False, description="DCNv2: also learn a sigmoid mask per tap.")
    bias: bool = Field(False, description="Add a learnable bias to the deformable conv.")
    norm: f.Norm = f.norm_field()
    norm_eps: float = f.eps_field()
    norm_momentum: float = f.momentum_field()
    activation: f.Activation = f.activation_field()

    def output_shape(self, in_shape: Shape) -> Shape:
        c = feature_map(in_shape, self.kind)[0]
        check_groups(c, self.out_channels, self.groups)
        if c % self.offset_groups:
            raise ShapeError(
                f"{c} input channels are not divisible by {self.offset_groups} offset groups",
                field="offset_groups",
            )
        padding = resolve_padding(self.padding, self.kernel_size, self.dilation)
        return conv_shape(
            in_shape, self.out_channels, self.kernel_size, self.stride, padding, self.dilation
        )

    examples = (
        ({"out_channels": 8}, (4, 8, 8)),
        (
            {"out_channels": 8, "stride": 2, "groups": 2, "offset_groups": 2, "modulated": True},
            (4, 9, 9),
        ),
        ({"out_channels": 4, "kernel_size": [3, 1], "dilation": 2, "padding": 0}, (4, 8, 8)),
    )


@register_block("conv_transpose")
class ConvTranspose(BlockSpec):
    """Transposed conv (``nn.ConvTranspose2d``) with optional norm and activation (U-Net ``up``).

    Output size ``(H - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1``.
    """

    module = f"{_M}:ConvTransposeNormAct"
    source = "Ronneberger et al. 2015, U-Net (up-convolution)"
    shorthand = "out_channels"
    width_fields = ("out_channels",)
    out_channels: f.Channels = Field(description="Number of output channels.")
    kernel_size: f.Kernel = Field(2, description="Kernel size, an int or [kh, kw].")
    stride: f.Stride = Field(2, description="Upsampling factor, an int or [sh, sw].")
    padding: f.Padding = Field(0, description="Rows/columns cropped from each side.")
    dilation: f.Stride = Field(1, description="Spacing between kernel taps.")
    output_padding: f.Padding = Field(
        0, description="Extra rows/columns on one side; below the stride or the dilation."
    )
    groups: int = Field(1, ge=1, description="Number of channel groups.")
    bias: bool | None = Field(None, description="Conv bias; omitted: only when there is no norm.")
    norm: f.Norm = f.norm_field("none")
    norm_eps: float = f.eps_field()
    norm_momentum: float = f.momentum_field()
    activation: f.Activation = f.activation_field("none")

    @field_validator("output_padding")
    @classmethod
    def _below_stride_or_dilation(cls, value: f.Padding, info: ValidationInfo) -> f.Padding:
        stride, dilation = info.data.get("stride", 1), info.data.get("dilation", 1)
        for op, s, d in zip(pair(value), pair(stride), pair(dilation), strict=True):
            if op >= max(s, d):
                raise ValueError(
                    f"output_padding {op} must be smaller than the stride ({s}) or the "
                    f"dilation ({d})"
                )
        return value

    def output_shape(self, in_shape: Shape) -> Shape:
        c, h, w = feature_map(in_shape, self.kind)
        check_groups(c, self.out_channels, self.groups)
        sizes = []
        for size, k, s, p, d, op in zip(
            (h, w),
            *map(pair, (self.kernel_size, self.stride, self.padding, self.dilation)),
            pair(self.output_padding),
            strict=True,
        ):
            sizes.append((size - 1) * s - 2 * p + d * (k - 1) + op + 1)
        if min(sizes) < 1:
            raise ShapeError(
                f"a {h}x{w} input gives a {sizes[0]}x{sizes[1]} output: padding too large",
                field="padding",
            )
        return (self.out_channels, *sizes)

    examples = (
        ({"out_channels": 8}, (4, 5, 5)),
        (
            {
                "out_channels": 6,
                "kernel_size": 3,
                "stride": 2,
                "padding": 1,
                "output_padding": 1,
                "groups": 2,
                "norm": "batch",
                "activation": "relu",
            },
            (4, 5, 6),
        ),
        ({"out_channels": 4, "kernel_size": 3, "stride": 1, "dilation": 2}, (4, 4, 4)),
    )


@register_block("upsample")
class Upsample(BlockSpec):
    """``nn.Upsample``: parameter-free resizing by a scale factor (FPN, U-Net, YOLO necks)."""

    module = f"{_M}:Upsample"
    shorthand = "scale_factor"
    scale_factor: float = Field(2.0, gt=0, le=64, description="Size multiplier (H and W).")
    mode: Literal["nearest", "bilinear", "bicubic"] = Field(
        "nearest", description="Interpolation: nearest, bilinear or bicubic."
    )
    align_corners: bool | None = Field(
        None, description="Align the corner pixels (bilinear and bicubic only)."
    )

    @field_validator("align_corners")
    @classmethod
    def _interpolating_only(cls, value: bool | None, info: ValidationInfo) -> bool | None:
        if value is not None and info.data.get("mode") == "nearest":
            raise ValueError("align_corners applies to bilinear and bicubic, not nearest")
        return value

    def output_shape(self, in_shape: Shape) -> Shape:
        c, h, w = feature_map(in_shape, self.kind)
        oh, ow = math.floor(h * self.scale_factor), math.floor(w * self.scale_factor)
        if oh < 1 or ow < 1:
            raise ShapeError(
                f"scaling {h}x{w} by {self.scale_factor} leaves {oh}x{ow}", field="scale_factor"
            )
        return (c, oh, ow)

    examples = (
        ({}, (4, 5, 6)),
        ({"scale_factor": 1.5, "mode": "bilinear", "align_corners": True}, (4, 5, 7)),
        ({"scale_factor": 0.5, "mode": "bicubic"}, (4, 9, 8)),
    )


@register_block("depthwise")
class Depthwise(BlockSpec):
    """Depthwise kxk conv+norm+act: one group per input channel (MobileNet, Howard et al. 2017).

    Outputs ``in_channels * channel_multiplier`` channels; children ``conv``, ``bn``, ``act``.
    """

    module = f"{_M}:DepthwiseConv"
    source = "Howard et al. 2017, MobileNets"
    shorthand = "kernel_size"
    channel_multiplier: int = Field(
        1, ge=1, le=64, description="Output channels per input channel."
    )
    kernel_size: f.Kernel = Field(3, description="Kernel size, an int or [kh, kw].")
    stride: f.Stride = Field(1, description="Stride, an int or [sh, sw].")
    padding: f.Padding | Literal["same"] | None = Field(None, description=_SAME)
    dilation: f.Stride = Field(1, description="Spacing between kernel taps.")
    norm: f.Norm = f.norm_field()
    norm_eps: float = f.eps_field()
    norm_momentum: float = f.momentum_field()
    activation: f.Activation = f.activation_field()

    def output_shape(self, in_shape: Shape) -> Shape:
        c = feature_map(in_shape, self.kind)[0]
        padding = resolve_padding(self.padding, self.kernel_size, self.dilation)
        return conv_shape(
            in_shape,
            c * self.channel_multiplier,
            self.kernel_size,
            self.stride,
            padding,
            self.dilation,
        )

    examples = (
        ({}, (8, 8, 8)),
        ({"channel_multiplier": 2, "kernel_size": 5, "stride": 2}, (4, 9, 9)),
        ({"kernel_size": [3, 5], "dilation": 2, "padding": 1}, (4, 8, 8)),
    )
