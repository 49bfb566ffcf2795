"""Inception modules: GoogLeNet's (v1) and Inception v3's A-E, with their auxiliary heads.

The implementations mirror torchvision's ``googlenet.Inception`` / ``InceptionAux`` and
``inception.InceptionA``..``InceptionE`` / ``InceptionAux`` child for child (each
``BasicConv2d`` is a ``conv`` block: conv without bias, batch norm with eps 1e-3, ReLU), so
torchvision's pretrained weights load strictly into the ``googlenet`` and ``inception_v3``
presets. Branch widths that torchvision hard-codes stay hard-coded here.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from nasblocks.blocks import _costs as cost
from nasblocks.blocks import _fields as f
from nasblocks.blocks._costs import Cost
from nasblocks.blocks._shapes import conv_size, feature_map, keep_size
from nasblocks.errors import ShapeError
from nasblocks.registry import BlockSpec, Shape, register_block

_M = "nasblocks.modules.inception"
_EPS_DEFAULT = 1e-3  # Szegedy et al.'s TensorFlow models, and torchvision's port of them


def _reduce(in_shape: Shape, kind: str) -> tuple[int, int, int]:
    """(C, H, W) after a 3x3, stride-2, unpadded window (Inception v3's grid reductions)."""
    c, h, w = feature_map(in_shape, kind)
    if h < 3 or w < 3:
        raise ShapeError(
            f"{kind} reduces the grid with unpadded 3x3 stride-2 windows and needs at least a "
            f"3x3 input, got {h}x{w}"
        )
    return c, (h - 3) // 2 + 1, (w - 3) // 2 + 1


@register_block("inception")
class Inception(BlockSpec):
    """GoogLeNet's Inception module (Szegedy et al., 2015; torchvision ``googlenet.Inception``).

    Four parallel branches concatenated: 1x1; 1x1 -> 3x3; 1x1 -> 5x5; 3x3 max pool -> 1x1.
    """

    module = f"{_M}:Inception"
    width_fields = ("ch1x1", "ch3x3red", "ch3x3", "ch5x5red", "ch5x5", "pool_proj")
    examples = (
        (
            {"ch1x1": 8, "ch3x3red": 4, "ch3x3": 8, "ch5x5red": 4, "ch5x5": 8, "pool_proj": 8},
            (16, 8, 8),
        ),
        (
            {
                "ch1x1": 4,
                "ch3x3red": 4,
                "ch3x3": 8,
                "ch5x5red": 2,
                "ch5x5": 4,
                "pool_proj": 4,
                "branch3_kernel_size": 3,
            },
            (8, 7, 5),
        ),
    )
    ch1x1: f.Channels = Field(description="Output channels of the 1x1 branch.")
    ch3x3red: f.Channels = Field(description="1x1 reduction before the 3x3 convolution.")
    ch3x3: f.Channels = Field(description="Output channels of the 3x3 branch.")
    ch5x5red: f.Channels = Field(description="1x1 reduction before the 5x5 convolution.")
    ch5x5: f.Channels = Field(description="Output channels of the 5x5 branch.")
    pool_proj: f.Channels = Field(description="1x1 projection after the 3x3 max pool.")
    branch3_kernel_size: int = Field(
        5,
        ge=1,
        le=11,
        description="Kernel of the third ('5x5') branch, odd. The paper uses 5; torchvision "
        "uses 3 (a known bug it keeps so its pretrained weights still load, "
        "pytorch/vision#906), so the googlenet preset sets 3.",
    )
    norm: f.Norm = f.norm_field()
    norm_eps: float = f.eps_field(_EPS_DEFAULT)
    norm_momentum: float = f.momentum_field()
    activation: f.Activation = f.activation_field()

    @field_validator("branch3_kernel_size")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"must be odd so the branch keeps the size, got {value}")
        return value

    def output_shape(self, in_shape: Shape) -> Shape:
        channels = self.ch1x1 + self.ch3x3 + self.ch5x5 + self.pool_proj
        return keep_size(in_shape, channels, self.kind)

    def cost(self, in_shape: Shape) -> Cost:
        c, bias = in_shape[0], self.norm == "none"

        def basic(cin: int, cout: int, k: int) -> Cost:
            conv = cost.conv(cin, cout, k, (cout, *in_shape[1:]), bias=bias)
            return cost.total(conv, cost.norm(self.norm, cout))

        k3 = self.branch3_kernel_size
        return cost.total(
            basic(c, self.ch1x1, 1),
            basic(c, self.ch3x3red, 1),
            basic(self.ch3x3red, self.ch3x3, 3),
            basic(c, self.ch5x5red, 1),
            basic(self.ch5x5red, self.ch5x5, k3),
            basic(c, self.pool_proj, 1),
        )


@register_block("inception_aux")
class InceptionAux(BlockSpec):
    """GoogLeNet's auxiliary classifier (torchvision ``googlenet.InceptionAux``).

    Adaptive average pool to 4x4, 1x1 conv to 128, fc 2048 -> 1024, ReLU, dropout, fc.
    """

    module = f"{_M}:InceptionAux"
    shorthand = "num_classes"
    examples = (({"num_classes": 10}, (16, 8, 8)), ({"num_classes": 5, "dropout": 0.0}, (8, 3, 5)))
    num_classes: int = Field(ge=1, le=1 << 20, description="Number of classes.")
    dropout: float = Field(0.7, ge=0, lt=1, description="Dropout before the last linear layer.")
    norm: f.Norm = f.norm_field()
    norm_eps: float = f.eps_field(_EPS_DEFAULT)
    norm_momentum: float = f.momentum_field()
    activation: f.Activation = f.activation_field()

    def output_shape(self, in_shape: Shape) -> Shape:
        feature_map(in_shape, self.kind)  # adaptive pooling takes any H x W
        return (self.num_classes,)

    def cost(self, in_shape: Shape) -> Cost:
        bias = self.norm == "none"
        conv = cost.conv(in_shape[0], 128, 1, (128, 4, 4), bias=bias)
        return cost.total(
            conv,
            cost.norm(self.norm, 128),
            cost.linear(128 * 4 * 4, 1024),
            cost.linear(1024, self.num_classes),
        )


@register_block("inception_a")
class InceptionA(BlockSpec):
    """Inception v3's 35x35 module (Szegedy et al., 2016; torchvision ``InceptionA``).

    Branches 1x1 (64); 1x1 -> 5x5 (64); 1x1 -> 3x3 -> 3x3 (96); 3x3 avg pool -> 1x1.
    """

    module = f"{_M}:InceptionA"
    shorthand = "pool_features"
    width_fields = ("pool_features",)
    examples = (({"pool_features": 8}, (16, 9, 9)),)
    pool_features: f.Channels = Field(description="Output channels of the pooling branch.")
    norm: f.Norm = f.norm_field()
    norm_eps: float = f.eps_field(_EPS_DEFAULT)
    norm_momentum: float = f.momentum_field()
    activation: f.Activation = f.activation_field()

    def output_shape(self, in_shape: Shape) -> Shape:
        return keep_size(in_shape, 64 + 64 + 96 + self.pool_features, self.kind)


@register_block("inception_b")
class InceptionB(BlockSpec):
    """Inception v3's 35 -> 17 grid reduction (torchvision ``InceptionB``).

    Branches 3x3/2 (384); 1x1 -> 3x3 -> 3x3/2 (96); 3x3/2 max pool (the input channels).
    """

    module = f"{_M}:InceptionB"
    examples = (({}, (16, 9, 9)), ({}, (8, 3, 4)))
    norm: f.Norm = f.norm_field()
    norm_eps: float = f.eps_field(_EPS_DEFAULT)
    norm_momentum: float = f.momentum_field()
    activation: f.Activation = f.activation_field()

    def output_shape(self, in_shape: Shape) -> Shape:
        c, h, w = _reduce(in_shape, self.kind)
        return (384 + 96 + c, h, w)


@register_block("inception_c")
class InceptionC(BlockSpec):
    """Inception v3's 17x17 module with factorized 7x7 convolutions (torchvision ``InceptionC``).

    Branches 1x1 (192); 1x1 -> 1x7 -> 7x1 (192); 1x1 -> 7x1 -> 1x7 -> 7x1 -> 1x7 (192);
    3x3 avg pool -> 1x1 (192): always 768 channels out.
    """

    module = f"{_M}:InceptionC"
    shorthand = "channels_7x7"
    width_fields = ("channels_7x7",)
    examples = (({"channels_7x7": 8}, (16, 7, 7)),)
    channels_7x7: f.Channels = Field(description="Width inside the factorized 7x7 branches.")
    norm: f.Norm = f.norm_field()
    norm_eps: float = f.eps_field(_EPS_DEFAULT)
    norm_momentum: float = f.momentum_field()
    activation: f.Activation = f.activation_field()

    def output_shape(self, in_shape: Shape) -> Shape:
        return keep_size(in_shape, 4 * 192, self.kind)


@register_block("inception_d")
class InceptionD(BlockSpec):
    """Inception v3's 17 -> 8 grid reduction (torchvision ``InceptionD``).

    Branches 1x1 -> 3x3/2 (320); 1x1 -> 1x7 -> 7x1 -> 3x3/2 (192); 3x3/2 max pool.
    """

    module = f"{_M}:InceptionD"
    examples = (({}, (16, 7, 7)),)
    norm: f.Norm = f.norm_field()
    norm_eps: float = f.eps_field(_EPS_DEFAULT)
    norm_momentum: float = f.momentum_field()
    activation: f.Activation = f.activation_field()

    def output_shape(self, in_shape: Shape) -> Shape:
        c, h, w = _reduce(in_shape, self.kind)
        return (320 + 192 + c, h, w)


@register_block("inception_e")
class InceptionE(BlockSpec):
    """Inception v3's 8x8 module with expanded 1x3 / 3x1 outputs (torchvision ``InceptionE``).

    Branches 1x1 (320); 1x1 -> [1x3, 3x1] (768); 1x1 -> 3x3 -> [1x3, 3x1] (768);
    3x3 avg pool -> 1x1 (192): always 2048 channels out.
    """

    module = f"{_M}:InceptionE"
    examples = (({}, (16, 5, 5)),)
    norm: f.Norm = f.norm_field()
    norm_eps: float = f.eps_field(_EPS_DEFAULT)
    norm_momentum: float = f.momentum_field()
    activation: f.Activation = f.activation_field()

    def output_shape(self, in_shape: Shape) -> Shape:
        return keep_size(in_shape, 320 + 2 * 384 + 2 * 384 + 192, self.kind)


@register_block("inception_v3_aux")
class InceptionV3Aux(BlockSpec):
    """Inception v3's auxiliary classifier (torchvision ``inception.InceptionAux``).

    5x5/3 average pool, 1x1 conv (128), unpadded 5x5 conv (768), global average pool, fc.
    """

    module = f"{_M}:InceptionV3Aux"
    shorthand = "num_classes"
    examples = (({"num_classes": 10}, (16, 17, 17)),)
    num_classes: int = Field(ge=1, le=1 << 20, description="Number of classes.")
    norm: f.Norm = f.norm_field()
    norm_eps: float = f.eps_field(_EPS_DEFAULT)
    norm_momentum: float = f.momentum_field()
    activation: f.Activation = f.activation_field()

    def output_shape(self, in_shape: Shape) -> Shape:
        _, h, w = feature_map(in_shape, self.kind)
        # avg pool 5/3, then the unpadded 5x5 conv1 needs a pooled map of at least 5x5.
        ph, pw = conv_size(h, 5, 3), conv_size(w, 5, 3)
        if ph < 5 or pw < 5:
            raise ShapeError(
                f"{self.kind} needs at least a 17x17 input (5x5/3 average pool, then an "
                f"unpadded 5x5 conv), got {h}x{w}"
            )
        return (self.num_classes,)
