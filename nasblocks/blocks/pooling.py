"""Pooling: ``torch.nn`` pool mirrors, global pools, YOLO's SPP and passthrough, SPP-net.

The window pools keep PyTorch's names, defaults and shape arithmetic (``ceil_mode`` included,
as GoogLeNet uses it), so their shape contract predicts exactly what PyTorch computes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from nasblocks.blocks import _fields as f
from nasblocks.blocks._costs import FREE, Cost
from nasblocks.blocks._shapes import IntOrPair, conv_shape, feature_map, pair
from nasblocks.errors import ShapeError
from nasblocks.registry import BlockSpec, Shape, register_block

_M = "nasblocks.modules.pooling"

OptionalSize = Annotated[int, Field(ge=1, le=4096)] | None
OutputSize = (
    Annotated[int, Field(ge=1, le=4096)]
    | Annotated[list[OptionalSize], Field(min_length=2, max_length=2)]
)


def _tupled(value: Any) -> Any:
    """Lists from YAML become tuples, which is how torch.nn prints and stores sizes."""
    return tuple(value) if isinstance(value, list) else value


def _check_half_kernel(kernel_size: IntOrPair, padding: IntOrPair) -> None:
    # PyTorch refuses padding beyond half the (undilated) kernel: the window would start in
    # padding only.
    (kh, kw), (ph, pw) = pair(kernel_size), pair(padding)
    if 2 * ph > kh or 2 * pw > kw:
        raise ShapeError(
            f"padding {ph}x{pw} is more than half of kernel {kh}x{kw}", field="padding"
        )


class _TorchPool(BlockSpec):
    """A ``torch.nn`` pool class built from the fields alone (it takes no channel count)."""

    def cost(self, in_shape: Shape) -> Cost:
        return FREE  # pooling and reshaping have no weights and no multiply-accumulates

    def build(self, in_channels):
        return self.module_class()(**{k: _tupled(v) for k, v in self.module_kwargs().items()})


class _WindowPool(_TorchPool):
    shorthand = "kernel_size"
    kernel_size: f.Kernel = Field(description="Window size, an int or [kh, kw].")
    stride: f.Stride | None = Field(
        None, description="Window step, an int or [sh, sw]; omitted means kernel_size."
    )
    padding: f.Padding = Field(
        0, description="Implicit padding on each side (at most half the kernel)."
    )
    ceil_mode: bool = Field(
        False, description="Round the output size up, keeping a last partial window."
    )

    def _dilation(self) -> IntOrPair:
        return 1

    def output_shape(self, in_shape: Shape) -> Shape:
        c = feature_map(in_shape, self.kind)[0]
        _check_half_kernel(self.kernel_size, self.padding)
        stride = self.kernel_size if self.stride is None else self.stride
        return conv_shape(
            in_shape,
            c,
            self.kernel_size,
            stride,
            self.padding,
            self._dilation(),
            ceil_mode=self.ceil_mode,
            kind=self.kind,
        )


@register_block("maxpool")
class MaxPool(_WindowPool):
    """``nn.MaxPool2d`` with PyTorch's defaults (stride = kernel_size, no padding)."""

    module = "torch.nn:MaxPool2d"
    dilation: f.Stride = Field(1, description="Spacing between window taps.")
    examples = (
        ({"kernel_size": 2}, (4, 8, 8)),
        ({"kernel_size": 3, "stride": 2, "ceil_mode": True}, (4, 14, 14)),
        ({"kernel_size": [3, 2], "stride": [1, 2], "padding": [1, 0], "dilation": 2}, (2, 9, 8)),
    )

    def _dilation(self) -> IntOrPair:
        return self.dilation


@register_block("avgpool")
class AvgPool(_WindowPool):
    """``nn.AvgPool2d`` with PyTorch's defaults (padding counts in the average)."""

    module = "torch.nn:AvgPool2d"
    count_include_pad: bool = Field(
        True, description="Count the zero padding in the averaging divisor."
    )
    examples = (
        ({"kernel_size": 2}, (4, 8, 8)),
        (
            {
                "kernel_size": 3,
                "stride": 2,
                "padding": 1,
                "ceil_mode": True,
                "count_include_pad": False,
            },
            (3, 7, 7),
        ),
    )


class _AdaptivePool(_TorchPool):
    shorthand = "output_size"
    output_size: OutputSize = Field(
        description="Output size, an int or [h, w]; null in [h, w] keeps that input size."
    )
    at_least: bool = Field(
        False,
        description=(
            "Pool only a side smaller than output_size, up to it; a larger side passes "
            "unchanged (timm's VGG head keeps its 7x7 conv input so)."
        ),
    )

    def output_shape(self, in_shape: Shape) -> Shape:
        c, h, w = feature_map(in_shape, self.kind)
        oh, ow = (
            (self.output_size, self.output_size)
            if isinstance(self.output_size, int)
            else self.output_size
        )
        if self.at_least:
            if oh is None or ow is None:
                raise ShapeError("at_least needs both sides of output_size", field="output_size")
            return (c, max(h, oh), max(w, ow))
        return (c, h if oh is None else oh, w if ow is None else ow)

    def module_class(self) -> Any:  # (no torch import: validate and schema run without it)
        if not self.at_least:
            return super().module_class()
        from nasblocks.modules.pooling import AdaptivePoolAtLeast

        return AdaptivePoolAtLeast

    def module_kwargs(self) -> dict[str, Any]:
        if not self.at_least:
            return {"output_size": self.output_size}
        return {"output_size": self.output_size, "pool": self.kind.removeprefix("adaptive_")[:3]}


@register_block("adaptive_avgpool")
class AdaptiveAvgPool(_AdaptivePool):
    """``nn.AdaptiveAvgPool2d``: average to a fixed output size whatever the input size."""

    module = "torch.nn:AdaptiveAvgPool2d"
    examples = (
        ({"output_size": [5, 7]}, (4, 8, 9)),
        ({"output_size": 3}, (2, 10, 9)),
        ({"output_size": 7, "at_least": True}, (2, 5, 9)),
    )


@register_block("adaptive_maxpool")
class AdaptiveMaxPool(_AdaptivePool):
    """``nn.AdaptiveMaxPool2d``: max to a fixed output size whatever the input size."""

    module = "torch.nn:AdaptiveMaxPool2d"
    examples = (
        ({"output_size": [None, 7]}, (4, 10, 9)),
        ({"output_size": 2}, (2, 5, 5)),
        ({"output_size": [4, 4], "at_least": True}, (2, 3, 6)),
    )


class _GlobalPool(BlockSpec):
    flatten: bool = Field(False, description="Return a (C,) vector instead of a (C, 1, 1) map.")

    def output_shape(self, in_shape: Shape) -> Shape:
        c = feature_map(in_shape, self.kind)[0]
        return (c,) if self.flatten else (c, 1, 1)


@register_block("global_avgpool")
class GlobalAvgPool(_GlobalPool):
    """Global average pooling (Lin et al., Network in Network, 2013): one value per channel."""

    def cost(self, in_shape: Shape) -> Cost:
        return FREE  # pooling and reshaping have no weights and no multiply-accumulates

    module = f"{_M}:GlobalAvgPool"
    examples = (({}, (4, 7, 5)), ({"flatten": True}, (4, 3, 3)))


@register_block("global_maxpool")
class GlobalMaxPool(_GlobalPool):
    """Global max pooling: the strongest response of each channel."""

    module = f"{_M}:GlobalMaxPool"
    examples = (({}, (4, 7, 5)), ({"flatten": True}, (4, 3, 3)))


@register_block("spp")
class SPP(BlockSpec):
    """YOLO spatial pyramid pooling: the input and stride-1 max pools, concatenated.

    ``parallel`` pools the input with every kernel (YOLOv3-SPP); ``cascade`` pools each
    previous pool's output (YOLOv5's SPPF cascades one kernel so).
    """

    def cost(self, in_shape: Shape) -> Cost:
        return FREE  # pooling and reshaping have no weights and no multiply-accumulates

    module = f"{_M}:SPP"
    shorthand = "kernels"
    kernels: list[Annotated[int, Field(ge=1, le=63)]] = Field(
        [5, 9, 13],
        min_length=1,
        description="Odd max-pool kernel sizes (stride 1, 'same' padding).",
    )
    mode: Literal["parallel", "cascade"] = Field(
        "parallel", description="parallel: every pool reads the input; cascade: the previous pool."
    )
    examples = (
        ({}, (4, 8, 8)),
        ({"kernels": [3, 5], "mode": "cascade"}, (2, 6, 5)),
    )

    def output_shape(self, in_shape: Shape) -> Shape:
        c, h, w = feature_map(in_shape, self.kind)
        even = [k for k in self.kernels if k % 2 == 0]
        if even:
            raise ShapeError(
                f"SPP kernels must be odd to keep the size, got {even}", field="kernels"
            )
        return (c * (len(self.kernels) + 1), h, w)


@register_block("spp_net")
class SPPNet(BlockSpec):
    """SPP-net pyramid pooling (He et al., 2014): any H x W to a fixed-length vector.

    Each level ``l`` pools to ``l x l`` bins; the levels are flattened and concatenated in order.
    """

    def cost(self, in_shape: Shape) -> Cost:
        return FREE  # pooling and reshaping have no weights and no multiply-accumulates

    module = f"{_M}:SPPNet"
    shorthand = "levels"
    levels: list[Annotated[int, Field(ge=1, le=64)]] = Field(
        [1, 2, 4], min_length=1, description="Bins per side of each pyramid level."
    )
    pool: Literal["max", "avg"] = Field("max", description="Pooling in each bin: max or avg.")
    examples = (({}, (4, 9, 7)), ({"levels": [1, 3], "pool": "avg"}, (3, 6, 6)))

    def output_shape(self, in_shape: Shape) -> Shape:
        c = feature_map(in_shape, self.kind)[0]
        return (c * sum(level * level for level in self.levels),)


@register_block("reorg")
class Reorg(BlockSpec):
    """YOLOv2 passthrough (reorg): stride x stride blocks folded into channels.

    The channel order is the reference ``Reorg``'s (offset-major: channel ``(a*s + b)*C + c``
    holds pixel offset ``(a, b)`` of input channel ``c``), not ``nn.PixelUnshuffle``'s.
    """

    def cost(self, in_shape: Shape) -> Cost:
        return FREE  # pooling and reshaping have no weights and no multiply-accumulates

    module = f"{_M}:Reorg"
    shorthand = "stride"
    stride: int = Field(2, ge=1, le=64, description="Block size folded into the channels.")
    examples = (({}, (3, 8, 6)), ({"stride": 3}, (2, 6, 9)))

    def output_shape(self, in_shape: Shape) -> Shape:
        c, h, w = feature_map(in_shape, self.kind)
        s = self.stride
        if h % s or w % s:
            raise ShapeError(
                f"reorg needs H and W divisible by stride {s}, got {h}x{w}", field="stride"
            )
        return (c * s * s, h // s, w // s)
