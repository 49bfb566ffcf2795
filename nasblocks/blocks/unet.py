"""U-Net parts (Ronneberger et al., 2015), following the common ``unetConv2`` / ``unetUp`` code.

``double_conv`` is ``unetConv2`` (children ``conv1``..``convN``, each conv [+ bn] + relu, conv
bias always on), ``unet_down`` the classic max pool + double conv, and ``unet_up`` is
``unetUp``: upsample the deep feature to ``out_channels``, concatenate the skip, double conv.
Keeping that code's layout lets the ``unet`` preset reproduce its parameter count.
"""

from __future__ import annotations

from pydantic import Field

from nasblocks.blocks import _fields as f
from nasblocks.blocks._shapes import IntOrPair, conv_shape, feature_map
from nasblocks.errors import ShapeError
from nasblocks.registry import BlockSpec, Shape, register_block

_M = "nasblocks.modules.unet"
_IS_BATCHNORM_DOC = f.NORM_DOC + " The reference's is_batchnorm: batch or none."


def _convs_shape(
    in_shape: Shape,
    out_channels: int,
    kind: str,
    n: int = 2,
    kernel_size: IntOrPair = 3,
    stride: IntOrPair = 1,
    padding: IntOrPair = 1,
) -> Shape:
    """Shape after ``n`` identical convolutions (``unetConv2``'s defaults: 3x3, pad 1)."""
    shape = in_shape
    for _ in range(n):
        shape = conv_shape(shape, out_channels, kernel_size, stride, padding, kind=kind)
    return shape


def skip_channels(deep_channels: int, out_channels: int, n_concat: int) -> int:
    """Skip channels ``unetUp`` expects: its conv input minus the upsampled ``out_channels``.

    The reference's conv takes ``deep + (n_concat - 2) * out_channels`` channels.
    """
    return deep_channels + (n_concat - 3) * out_channels


@register_block("double_conv")
class DoubleConv(BlockSpec):
    """U-Net's repeated conv (``unetConv2``): ``n`` times conv -> [batch norm] -> ReLU.

    The conv keeps its bias even under batch norm, as in the reference code.
    """

    module = f"{_M}:DoubleConv"
    shorthand = "out_channels"
    width_fields = ("out_channels",)
    examples = (
        ({"out_channels": 8}, (3, 16, 16)),
        ({"out_channels": 8, "norm": "none", "n": 3}, (4, 9, 7)),
        ({"out_channels": 8, "kernel_size": 3, "stride": 2, "padding": 0}, (4, 16, 16)),
    )
    out_channels: f.Channels = Field(description="Output channels of every convolution.")
    norm: f.Norm = f.norm_field("batch", _IS_BATCHNORM_DOC)
    kernel_size: f.Kernel = Field(3, description="Kernel size of every convolution.")
    stride: f.Stride = Field(1, description="Stride of every convolution.")
    padding: f.Padding = Field(1, description="Zero padding of every convolution.")
    n: int = Field(2, ge=1, le=16, description="Number of conv [+ norm] + activation repeats.")
    bias: bool = Field(True, description="Conv bias (the reference keeps it even with a norm).")
    norm_eps: float = f.eps_field()
    norm_momentum: float = f.momentum_field()
    activation: f.Activation = f.activation_field()

    def output_shape(self, in_shape: Shape) -> Shape:
        return _convs_shape(
            in_shape,
            self.out_channels,
            self.kind,
            self.n,
            self.kernel_size,
            self.stride,
            self.padding,
        )


@register_block("unet_down")
class UNetDown(BlockSpec):
    """U-Net encoder step: 2x2 max pool, then a double conv (``maxpool``, ``conv`` children)."""

    module = f"{_M}:UNetDown"
    shorthand = "out_channels"
    width_fields = ("out_channels",)
    examples = (
        ({"out_channels": 16}, (8, 16, 16)),
        ({"out_channels": 8, "norm": "none"}, (4, 5, 7)),
    )
    out_channels: f.Channels = Field(description="Output channels of the double conv.")
    norm: f.Norm = f.norm_field("batch", _IS_BATCHNORM_DOC)
    norm_eps: float = f.eps_field()
    norm_momentum: float = f.momentum_field()
    activation: f.Activation = f.activation_field()

    def output_shape(self, in_shape: Shape) -> Shape:
        c, h, w = feature_map(in_shape, self.kind)
        if h < 2 or w < 2:
            raise ShapeError(f"{self.kind} halves the map with a 2x2 max pool; got {h}x{w}")
        return _convs_shape((c, h // 2, w // 2), self.out_channels, self.kind)


@register_block("unet_up")
class UNetUp(BlockSpec):
    """U-Net decoder step (``unetUp``): inputs ``[deep, skip]``; up, concat, double conv.

    ``up`` is a 2x2 stride-2 transposed conv (``deconv: true``) or a bilinear x2 upsampling
    (align_corners, ``nn.UpsamplingBilinear2d``) followed by a 1x1 conv; either gives
    ``out_channels``. Like the reference, the double conv ``conv`` takes
    ``deep + (n_concat - 2) * out_channels`` channels, so the skip must bring
    ``deep + (n_concat - 3) * out_channels`` (``deep - out_channels`` for a plain U-Net).
    Several skips (``n_concat`` > 2, UNet++) are concatenated into the one skip input first.
    """

    module = f"{_M}:UNetUp"
    arity = 2
    shorthand = "out_channels"
    width_fields = ("out_channels",)
    examples = (
        ({"out_channels": 8}, [(16, 4, 4), (8, 8, 8)]),
        ({"out_channels": 8, "deconv": True, "norm": "batch"}, [(16, 3, 5), (8, 6, 10)]),
        ({"out_channels": 4, "n_concat": 3}, [(8, 4, 4), (8, 8, 8)]),
    )
    out_channels: f.Channels = Field(description="Channels after the upsampling and the conv.")
    deconv: bool = Field(
        False, description="Upsample with a transposed conv instead of bilinear + 1x1 conv."
    )
    n_concat: int = Field(
        2, ge=2, le=16, description="Feature maps concatenated (the upsampled one included)."
    )
    norm: f.Norm = f.norm_field(
        "none",
        f.NORM_DOC + " The reference's decoder has none; set it on the layer, since a "
        "model-level norm applies otherwise.",
    )
    norm_eps: float = f.eps_field()
    norm_momentum: float = f.momentum_field()
    activation: f.Activation = f.activation_field()

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        if len(in_shapes) != 2:
            raise ShapeError(f"{self.kind} takes two inputs [deep, skip], got {len(in_shapes)}")
        deep_c, h, w = feature_map(in_shapes[0], self.kind)
        skip_c, sh, sw = feature_map(in_shapes[1], self.kind)
        if (sh, sw) != (2 * h, 2 * w):
            raise ShapeError(
                f"{self.kind} upsamples the {h}x{w} deep input to {2 * h}x{2 * w}, which does "
                f"not match the {sh}x{sw} skip (pool odd sizes carefully)"
            )
        expected = skip_channels(deep_c, self.out_channels, self.n_concat)
        if expected < 1:
            raise ShapeError(
                f"{self.kind}'s double conv takes deep + (n_concat - 2) * out_channels = "
                f"{deep_c + (self.n_concat - 2) * self.out_channels} channels, which leaves "
                f"none for the skip: out_channels must be below the {deep_c} deep channels "
                "(half of them in a plain U-Net)",
                field="out_channels",
            )
        if skip_c != expected:
            raise ShapeError(
                f"{self.kind}'s double conv takes deep + (n_concat - 2) * out_channels = "
                f"{deep_c + (self.n_concat - 2) * self.out_channels} channels, so with "
                f"{deep_c} deep channels the skip must have {expected}, got {skip_c}",
                field="out_channels",
            )
        return _convs_shape((deep_c, sh, sw), self.out_channels, self.kind)
