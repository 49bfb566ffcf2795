"""Shake-Shake: a residual block of two branches mixed by random weights (Gastaldi, 2017).

The block of the paper's CIFAR-10 ResNet-26 2x32d, laid out as its Torch code lays it out:
each branch is ReLU, 3x3 conv (stride), BN, ReLU, 3x3 conv, BN; the shortcut is the identity,
or where the stride or the width changes ReLU, then two strided 1x1 average pools (one of
them on the input shifted by a pixel) each followed by a 1x1 conv to half the width,
concatenated and batch-normalised.
"""

from __future__ import annotations

from pydantic import Field

from nasblocks.blocks import _costs as cost
from nasblocks.blocks import _fields as f
from nasblocks.blocks._costs import Cost
from nasblocks.blocks._shapes import conv_shape, feature_map
from nasblocks.errors import ShapeError
from nasblocks.registry import BlockSpec, Shape, register_block


@register_block("shake_shake")
class ShakeShake(BlockSpec):
    """Shake-Shake block: shortcut(x) + alpha * branch1(x) + (1 - alpha) * branch2(x).

    In training, alpha is drawn uniformly in [0, 1] per image at every forward, and the
    backward pass weights the branches' gradients by an independent draw beta (the paper's
    Shake-Shake-Image); in eval mode both are 0.5. The block ends without an activation: the
    next block's branches (and a network's final ReLU) apply it.
    """

    module = "nasblocks.modules.shake_shake:ShakeShakeBlock"
    source = "Gastaldi, Shake-Shake regularization (2017), arXiv:1705.07485"
    shorthand = "out_channels"
    width_fields = ("out_channels",)
    out_channels: f.Channels = Field(
        description="Width of both branches and of the output; even where the shortcut "
        "projects (two 1x1 convs give half each)."
    )
    stride: int = Field(
        1,
        ge=1,
        le=64,
        description="Stride of each branch's first 3x3 conv and of the shortcut's pooling.",
    )
    examples = (
        ({"out_channels": 8}, (8, 8, 8)),
        ({"out_channels": 16, "stride": 2}, (8, 9, 9)),
        ({"out_channels": 12}, (4, 6, 7)),
    )

    def projects(self, in_channels: int) -> bool:
        """Whether the shortcut is the two-path projection rather than the identity."""
        return self.stride != 1 or in_channels != self.out_channels

    def output_shape(self, in_shape: Shape) -> Shape:
        c, _, _ = feature_map(in_shape, self.kind)
        if self.projects(c) and self.out_channels % 2:
            raise ShapeError(
                f"the shortcut from {c} channels at stride {self.stride} concatenates two "
                f"halves: out_channels ({self.out_channels}) must be even",
                field="out_channels",
            )
        # The 3x3 convs pad by 1 and the shortcut pools 1x1: (H - 1) // stride + 1.
        return conv_shape(in_shape, self.out_channels, 1, self.stride, kind=self.kind)

    def cost(self, in_shape: Shape) -> Cost:
        out = self.output_shape(in_shape)
        c, k = in_shape[0], self.out_channels
        branch = cost.total(
            cost.conv(c, k, 3, out),
            cost.norm("batch", k),
            cost.conv(k, k, 3, out),
            cost.norm("batch", k),
        )
        shortcut = cost.FREE
        if self.projects(c):
            half = (k // 2, *out[1:])
            path = cost.conv(c, k // 2, 1, half)
            shortcut = cost.total(path, path, cost.norm("batch", k))
        return cost.total(branch, branch, shortcut)
