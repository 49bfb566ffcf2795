"""Self-attention over positions: the non-local block (Wang et al., 2018), embedded Gaussian.

Every output position is the input plus a learned projection of the average of all
positions' values, weighted by the softmax of query-key dot products. Its analytic cost
counts the two attention matrix products as multiply-accumulates, as ``FlopCounterMode``
counts ``bmm`` (:mod:`nasblocks.blocks._costs`' convention).
"""

from __future__ import annotations

from pydantic import Field

from nasblocks.blocks import _costs as cost
from nasblocks.blocks._costs import Cost
from nasblocks.blocks._shapes import feature_map
from nasblocks.blocks.attention import check_reduction
from nasblocks.errors import ShapeError
from nasblocks.registry import BlockSpec, Shape, register_block


@register_block("non_local")
class NonLocal(BlockSpec):
    """Non-local block, embedded Gaussian: x + BN(W(softmax(theta(x)^T phi(x)) g(x))).

    ``theta``, ``phi`` and ``g`` are 1x1 convs (with biases) to ``channels // reduction``
    channels; the (HW x HW) softmax similarity weights the values ``g``; ``W`` (1x1 conv and
    BN) maps back to the input's channels. Child names ``theta``, ``phi``, ``g``, ``W.0``,
    ``W.1`` are those of the widely used PyTorch port (AlexHex7/Non-local_pytorch).
    """

    module = "nasblocks.modules.self_attention:NonLocal2d"
    source = "Wang et al., Non-local Neural Networks (2018), arXiv:1711.07971"
    role = "attention"  # `attention: non_local` in a residual block (its own residual inside)
    shorthand = "reduction"
    reduction: int = Field(
        2,
        ge=1,
        description="Channel reduction of theta, phi and g (the paper halves the channels).",
    )
    sub_sample: bool = Field(
        False,
        description="Max-pool phi and g 2x2 (the paper's subsampling trick): a quarter of the "
        "keys and of the attention cost; H and W must be at least 2.",
    )
    zero_init_last: bool = Field(
        True,
        description="Start W's BN scale and shift at zero, so the block begins as the identity "
        "(the paper's initialisation).",
    )
    examples = (
        ({}, (8, 6, 6)),
        ({"reduction": 4, "sub_sample": True}, (16, 7, 9)),
        ({"reduction": 1, "zero_init_last": False}, (4, 5, 3)),
    )

    def keys(self, height: int, width: int) -> int:
        """Positions attended to: HW, or (H // 2)(W // 2) with ``sub_sample``."""
        return (height // 2) * (width // 2) if self.sub_sample else height * width

    def output_shape(self, in_shape: Shape) -> Shape:
        c, h, w = feature_map(in_shape, self.kind)
        check_reduction(c, self.reduction)
        if self.sub_sample and min(h, w) < 2:
            raise ShapeError(
                f"sub_sample pools keys and values 2x2: a {h}x{w} map leaves no position",
                field="sub_sample",
            )
        return tuple(in_shape)

    def cost(self, in_shape: Shape) -> Cost:
        c, h, w = self.output_shape(in_shape)
        inter = c // self.reduction
        embed = cost.conv(c, inter, 1, (inter, h, w), bias=True)  # theta, phi and g each
        attention = 2 * h * w * self.keys(h, w) * inter  # theta^T phi, then weights x g
        return cost.total(
            embed,
            embed,
            embed,
            cost.conv(inter, c, 1, (c, h, w), bias=True),
            cost.norm("batch", c),
            (0, attention),
        )
