"""Attention blocks: squeeze-and-excitation, ECA, selective kernels (SKNet) and CBAM.

``se`` follows senet.pytorch's SELayer, ``se_conv`` and ``eca`` timm's ``SEModule`` and
``EcaModule``, ``sk`` and ``sk_unit`` the common PyTorch SKNet code (after pppLang/SKNet;
child names included, so ``state_dict`` keys load unchanged); ``cbam`` is Woo et al.'s module
in the widely used CBAM.PyTorch layout.

Blocks with ``role = "attention"`` (``se``, ``se_conv``, ``eca``, ``cbam``) are also the
kinds a residual block's ``attention`` field names: a new kind, built in or a plugin, is one
such declaration (:func:`nasblocks.registry.attention_block`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from nasblocks.blocks import _costs as cost
from nasblocks.blocks import _fields as f
from nasblocks.blocks._costs import Cost, squeeze_excite
from nasblocks.blocks._shapes import conv_size, feature_map, make_divisible
from nasblocks.errors import ShapeError
from nasblocks.registry import BlockSpec, Shape, register_block

_M = "nasblocks.modules.attention"

REDUCTION_DOC = "Channel reduction ratio of the bottleneck (hidden width = channels // reduction)."


def check_reduction(channels: int, reduction: int, field: str = "reduction") -> None:
    """The attention bottleneck keeps ``channels // reduction`` channels: at least one."""
    if channels // reduction < 1:
        raise ShapeError(
            f"{channels} channels reduced by {reduction} leave no hidden channel "
            f"(channels // reduction = 0)",
            field=field,
        )


def strided(in_shape: Shape, channels: int, stride: int, kind: str) -> Shape:
    """``(C, H, W)`` after a size-preserving kernel at ``stride``: ``(H - 1) // stride + 1``."""
    _, h, w = feature_map(in_shape, kind)
    return (channels, conv_size(h, 1, stride), conv_size(w, 1, stride))


@register_block("se")
class SqueezeExcite(BlockSpec):
    """Squeeze-and-Excitation (Hu et al., 2018): x * sigmoid(W2 relu(W1 mean_hw(x))).

    Children ``avg_pool`` and ``fc`` (``fc.0``, ``fc.2`` bias-free linears) as senet.pytorch's
    SELayer, whose weights load unchanged.
    """

    module = f"{_M}:SqueezeExcite"
    source = "Hu et al., Squeeze-and-Excitation Networks (2018); senet.pytorch SELayer"
    role = "attention"
    shorthand = "reduction"
    reduction: int = Field(16, ge=1, description=REDUCTION_DOC)
    examples = (
        ({"reduction": 4}, (16, 8, 8)),
        ({}, (32, 5, 7)),
    )

    def output_shape(self, in_shape: Shape) -> Shape:
        c, _, _ = feature_map(in_shape, self.kind)
        check_reduction(c, self.reduction)
        return tuple(in_shape)

    def cost(self, in_shape: Shape) -> Cost:
        return squeeze_excite(in_shape[0], self.reduction)


def se_hidden(channels: int, reduction: int, divisor: int) -> int:
    """timm's SE width: ``make_divisible(channels / reduction, divisor, round_limit=0)``."""
    return make_divisible(channels / reduction, divisor, round_limit=0.0)


@register_block("se_conv")
class SEConv(BlockSpec):
    """Squeeze-and-Excitation with 1x1 convs (timm's ``SEModule``, its SE-ResNets' form).

    x * sigmoid(fc2(relu(fc1(mean_hw(x))))): ``fc1`` / ``fc2`` are 1x1 convs with biases and
    the hidden width is ``channels / reduction`` rounded to a multiple of ``divisor``.
    """

    module = f"{_M}:SEConv"
    source = "Hu et al., Squeeze-and-Excitation Networks (2018); timm.layers.SEModule"
    role = "attention"
    shorthand = "reduction"
    reduction: int = Field(16, ge=1, description="channels / reduction hidden channels.")
    divisor: int = Field(8, ge=1, le=256, description="The hidden width is a multiple of it.")
    examples = (({}, (16, 8, 8)), ({"reduction": 4, "divisor": 1}, (12, 5, 7)))

    def output_shape(self, in_shape: Shape) -> Shape:
        feature_map(in_shape, self.kind)
        return tuple(in_shape)

    def cost(self, in_shape: Shape) -> Cost:
        c = in_shape[0]
        hidden = se_hidden(c, self.reduction, self.divisor)
        return cost.total(cost.linear(c, hidden), cost.linear(hidden, c))


def eca_kernel(channels: int, gamma: float = 2, beta: float = 1) -> int:
    """ECA-Net's adaptive kernel size: the odd number nearest ``|log2(C) + beta| / gamma``,
    at least 3 (Wang et al. 2020, Eq. 12, as timm's ``EcaModule`` computes it)."""
    import math

    t = int(abs(math.log(channels, 2) + beta) / gamma)
    return max(t if t % 2 else t + 1, 3)


@register_block("eca")
class ECA(BlockSpec):
    """Efficient Channel Attention (Wang et al., 2020): x * sigmoid(conv1d(mean_hw(x))).

    A bias-free 1-D convolution across the pooled channels (child ``conv``, as timm's
    ``EcaModule``) replaces SE's two fully connected layers.
    """

    module = f"{_M}:ECA"
    source = "Wang et al., ECA-Net (2020), arXiv:1910.03151; timm.layers.EcaModule"
    role = "attention"
    kernel_size: int | None = Field(
        None, ge=1, le=63, description="Odd kernel of the 1-D conv; omitted: from the channels."
    )
    gamma: float = Field(2.0, gt=0, description="The adaptive kernel's gamma.")
    beta: float = Field(1.0, description="The adaptive kernel's beta (b).")
    examples = (({}, (64, 4, 4)), ({"kernel_size": 5}, (12, 3, 5)))

    def kernel(self, channels: int) -> int:
        return self.kernel_size or eca_kernel(channels, self.gamma, self.beta)

    def output_shape(self, in_shape: Shape) -> Shape:
        c, _, _ = feature_map(in_shape, self.kind)
        if self.kernel(c) % 2 == 0:
            raise ShapeError(f"kernel_size {self.kernel_size} must be odd", field="kernel_size")
        return tuple(in_shape)

    def cost(self, in_shape: Shape) -> Cost:
        k = self.kernel(in_shape[0])
        return k, k * in_shape[0]

    def build(self, in_channels):
        return self.module_class()(in_channels, self.kernel(in_channels))


@register_block("sk")
class SKConv(BlockSpec):
    """Selective-kernel convolution (Li et al., 2019), the common PyTorch SKConv variant.

    ``branches`` 3x3 convs of dilation 1, 2, ... (each conv-BN-ReLU, children ``conv1.{i}``)
    are summed, pooled and squeezed by ``att`` into per-channel softmax weights over the
    branches; the output is the weighted sum of the branches. Channels are kept.
    """

    module = f"{_M}:SKConv"
    source = "Li et al., Selective Kernel Networks (2019)"
    stride: int = Field(1, ge=1, le=64, description="Stride of every branch.")
    branches: int = Field(2, ge=1, le=8, description="Number of kernels (M): dilations 1..M.")
    reduction: int = Field(4, ge=1, description=REDUCTION_DOC)
    examples = (
        ({}, (8, 8, 8)),
        ({"stride": 2, "branches": 3, "reduction": 2}, (8, 9, 7)),
    )

    def output_shape(self, in_shape: Shape) -> Shape:
        c, _, _ = feature_map(in_shape, self.kind)
        check_reduction(c, self.reduction)
        # Branch i pads and dilates by 1 + i: every branch gives (H - 1) // stride + 1.
        return strided(in_shape, c, self.stride, self.kind)


@register_block("sk_unit")
class SKUnit(BlockSpec):
    """SKNet bottleneck (SKUnit): 1x1 conv, SKConv, 1x1 conv, plus a shortcut.

    By default, as in the seed, equal in/out channels mean ``mid = in // 2``, stride 1 and an
    identity shortcut; otherwise ``mid = in``, stride 2 and a 1x1-conv + BN projection. Setting
    ``mid_channels`` or ``stride`` overrides the rule; the shortcut projects whenever the
    channels or the size change.
    """

    module = f"{_M}:SKUnit"
    source = "Li et al., Selective Kernel Networks (2019)"
    shorthand = "out_channels"
    width_fields = ("out_channels",)
    out_channels: f.Channels = Field(description="Number of output channels.")
    mid_channels: f.Channels | None = Field(
        None, description="Width of the SKConv; by default in // 2 if in == out, else in."
    )
    stride: int | None = Field(
        None, ge=1, le=64, description="Stride of the SKConv; by default 1 if in == out, else 2."
    )
    branches: int = Field(2, ge=1, le=8, description="Number of SKConv kernels (M).")
    reduction: int = Field(4, ge=1, description="Reduction ratio of the SKConv attention.")
    examples = (
        ({"out_channels": 16}, (16, 8, 8)),
        ({"out_channels": 32}, (16, 8, 8)),
        ({"out_channels": 16, "mid_channels": 8, "stride": 2, "branches": 3}, (8, 7, 7)),
    )

    def resolved(self, in_channels: int) -> tuple[int, int]:
        """``(mid_channels, stride)``; by default half the input inside a stage, the whole
        input where the width doubles."""
        same = in_channels == self.out_channels
        mid = self.mid_channels or (in_channels // 2 if same else in_channels)
        stride = self.stride or (1 if same else 2)
        return mid, stride

    def output_shape(self, in_shape: Shape) -> Shape:
        c, _, _ = feature_map(in_shape, self.kind)
        mid, stride = self.resolved(c)
        if mid < 1:
            raise ShapeError(
                f"{c} input channels leave no bottleneck channel (mid = {c} // 2)",
                field="mid_channels",
            )
        check_reduction(mid, self.reduction)
        return strided(in_shape, self.out_channels, stride, self.kind)


@register_block("cbam")
class CBAM(BlockSpec):
    """Convolutional Block Attention Module (Woo et al., 2018).

    Channel attention (avg- and max-pooled descriptors through one shared MLP of bias-free
    1x1 convs, summed, sigmoid) then spatial attention (channel mean and max -> kxk conv
    without bias -> sigmoid), the widely used CBAM.PyTorch layout (the paper's official code
    has biases and a BN in the spatial branch).
    """

    module = f"{_M}:CBAM"
    source = "Woo et al., CBAM: Convolutional Block Attention Module (2018)"
    role = "attention"
    shorthand = "reduction"
    reduction: int = Field(16, ge=1, description=REDUCTION_DOC)
    kernel_size: Literal[3, 7] = Field(7, description="Kernel of the spatial attention conv.")
    examples = (
        ({"reduction": 4}, (16, 8, 8)),
        ({"reduction": 2, "kernel_size": 3}, (8, 5, 6)),
    )

    def output_shape(self, in_shape: Shape) -> Shape:
        c, _, _ = feature_map(in_shape, self.kind)
        check_reduction(c, self.reduction)
        return tuple(in_shape)
