"""Multi-input nodes of the layer graph: concat, add, multiply (inputs named by ``from``)."""

from __future__ import annotations

from pydantic import Field

from nasblocks.blocks._costs import FREE, Cost
from nasblocks.blocks._shapes import same_spatial
from nasblocks.errors import ShapeError
from nasblocks.registry import BlockSpec, Shape, register_block

_M = "nasblocks.modules.merge"


def _shown(shapes: list[Shape]) -> str:
    return ", ".join("x".join(map(str, s)) for s in shapes)


@register_block("concat")
class Concat(BlockSpec):
    """Concatenate feature maps along the channels (Inception, UNet skips, YOLO routes)."""

    examples = (({}, [(4, 5, 5), (3, 5, 5)]), ({}, [(2, 4, 4), (2, 4, 4), (1, 4, 4)]))

    module = f"{_M}:Concat"
    arity = None

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        h, w = same_spatial(in_shapes, "concat")
        return (sum(s[0] for s in in_shapes), h, w)

    def cost(self, in_shape: list[Shape]) -> Cost:
        return FREE

    def build(self, in_channels):
        return self.module_class()()


class _SameShape(BlockSpec):
    arity = None
    examples = (({}, [(4, 5, 5), (4, 5, 5)]), ({}, [(6,), (6,), (6,)]))

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        if len({tuple(s) for s in in_shapes}) != 1:
            raise ShapeError(f"{self.kind} inputs must have one shape, got {_shown(in_shapes)}")
        return tuple(in_shapes[0])

    def cost(self, in_shape: list[Shape]) -> Cost:
        return FREE

    def build(self, in_channels):
        return self.module_class()()


@register_block("add")
class Add(_SameShape):
    """Elementwise sum of inputs of one shape (residual connections, feature fusion)."""

    module = f"{_M}:Add"


@register_block("multiply")
class Multiply(_SameShape):
    """Elementwise product, broadcasting as torch does: each dimension equal or 1 (gating:
    a ``(C, 1, 1)`` SE gate scales a ``(C, H, W)`` map at any input size)."""

    module = f"{_M}:Multiply"
    examples = (({}, [(4, 5, 5), (4, 1, 1)]), ({}, [(4, 5, 5), (1, 5, 5), (4, 5, 5)]))

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        if len({len(s) for s in in_shapes}) != 1:
            raise ShapeError(f"multiply inputs must have one rank, got {_shown(in_shapes)}")
        out = []
        for sizes in zip(*in_shapes, strict=True):
            big = set(sizes) - {1}
            if len(big) > 1:
                raise ShapeError(
                    f"multiply inputs must match or be 1 in each dimension, got "
                    f"{_shown(in_shapes)}"
                )
            out.append(big.pop() if big else 1)
        return tuple(out)


@register_block("split")
class Split(BlockSpec):
    """Take a slice of the input channels ``[start, start + channels)`` (ShuffleNet's split)."""

    examples = (({"start": 2, "channels": 3}, (6, 4, 4)),)

    module = f"{_M}:ChannelSlice"
    start: int = Field(0, ge=0, description="First channel of the slice.")
    channels: int = Field(ge=1, description="Number of channels kept.")

    def output_shape(self, in_shape: Shape) -> Shape:
        if self.start + self.channels > in_shape[0]:
            raise ShapeError(
                f"channels [{self.start}, {self.start + self.channels}) exceed the input's "
                f"{in_shape[0]}",
                field="channels",
            )
        return (self.channels, *in_shape[1:])

    def cost(self, in_shape: Shape) -> Cost:
        return FREE

    def build(self, in_channels):
        return self.module_class()(self.start, self.channels)
