"""The operations of cell-based NAS spaces (DARTS, NAS-Bench-201): pre-activation convs, zero.

A cell sums operations on the outputs of earlier nodes; ``none`` (``zero``) and
``skip_connect`` (``identity``) keep the shape, so any operation can sit on any edge.
Written as NAS-Bench-201's ``cell_operations.py`` (Dong & Yang, ICLR 2020) lays them out,
so its checkpoints' keys (``op.1.weight`` ...) match a cell's operations one for one.
"""

from __future__ import annotations

from pydantic import Field

from nasblocks.blocks import _costs as cost
from nasblocks.blocks import _fields as f
from nasblocks.blocks._costs import FREE, Cost
from nasblocks.blocks._shapes import check_groups, feature_map
from nasblocks.blocks.core import PaddedConv
from nasblocks.registry import BlockSpec, Shape, register_block

_M = "nasblocks.modules.cell"


@register_block("relu_conv_bn")
class ReluConvBn(PaddedConv):
    """ReLU, then a bias-free convolution, then batch norm (children ``op.0``-``op.2``).

    The pre-activation operation of DARTS (Liu et al., 2019) and NAS-Bench-201's
    ``nor_conv_1x1`` / ``nor_conv_3x3``. Padding defaults to 'same' for odd kernels.
    """

    module = f"{_M}:ReLUConvBN"
    source = "Liu et al., DARTS (2019); Dong & Yang, NAS-Bench-201 (2020), cell_operations.py"
    shorthand = "out_channels"
    width_fields = ("out_channels",)
    examples = (
        ({"out_channels": 8}, (4, 8, 8)),
        ({"out_channels": 6, "kernel_size": 1, "stride": 2}, (4, 9, 9)),
    )
    out_channels: f.Channels = Field(description="Number of output channels.")
    kernel_size: f.Kernel = Field(3, description="Kernel size, an int or [kh, kw].")
    stride: f.Stride = Field(1, description="Stride, an int or [sh, sw].")
    padding: f.Padding | None = Field(
        None, description="Zero padding; omitted keeps the size at stride 1."
    )
    dilation: f.Stride = Field(1, description="Spacing between kernel taps.")
    affine: bool = Field(True, description="Learnable scale and shift in the batch norm.")
    norm_eps: float = f.eps_field()
    norm_momentum: float = f.momentum_field()

    def output_shape(self, in_shape: Shape) -> Shape:
        check_groups(feature_map(in_shape, self.kind)[0], self.out_channels, 1)
        return self.padded_shape(in_shape)

    def cost(self, in_shape: Shape) -> Cost:
        out = self.output_shape(in_shape)
        conv = cost.conv(in_shape[0], self.out_channels, self.kernel_size, out)
        return cost.total(conv, cost.norm("batch", self.out_channels, self.affine))


@register_block("zero")
class Zero(BlockSpec):
    """The ``none`` operation: zeros of the input's shape (an edge that is not there).

    NAS-Bench-201's ``Zero`` (``x * 0``, so a cell whose every input edge is ``none`` still
    has the shape and device of its input).
    """

    module = f"{_M}:Zero"
    source = "Dong & Yang, NAS-Bench-201 (2020), cell_operations.py"
    examples = (({}, (4, 5, 5)), ({}, (6,)))

    def output_shape(self, in_shape: Shape) -> Shape:
        return tuple(in_shape)

    def cost(self, in_shape: Shape) -> Cost:
        return FREE

    def build(self, in_channels):
        return self.module_class()()
