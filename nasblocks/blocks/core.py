"""Primitive layers mirroring ``torch.nn`` one to one, and ``conv``: conv + norm + activation.

The primitives keep PyTorch's names and defaults (``conv2d`` pads 0 and has a bias, like
``nn.Conv2d``), so torchvision's flat ``nn.Sequential`` stacks (VGG ``features``) can be
written layer for layer with identical ``state_dict`` keys.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from nasblocks.blocks import _costs as cost
from nasblocks.blocks import _fields as f
from nasblocks.blocks._costs import FREE, Cost
from nasblocks.blocks._shapes import (
    check_groups,
    conv_shape,
    feature_map,
    resolve_padding,
    vector,
)
from nasblocks.errors import ShapeError
from nasblocks.registry import BlockSpec, Examples, Shape, register_block

_M = "nasblocks.modules.core"


@register_block("conv2d")
class Conv2d(BlockSpec):
    """A bare ``nn.Conv2d`` with PyTorch's defaults (no padding, with bias)."""

    examples = (
        ({"out_channels": 8}, (4, 9, 9)),
        (
            {
                "out_channels": 6,
                "kernel_size": [1, 3],
                "stride": 2,
                "padding": [0, 1],
                "groups": 2,
            },
            (4, 8, 8),
        ),
    )

    module = "torch.nn:Conv2d"
    shorthand = "out_channels"
    width_fields = ("out_channels",)
    out_channels: f.Channels = Field(description="Number of output channels.")
    kernel_size: f.Kernel = Field(3, description="Kernel size, an int or [kh, kw].")
    stride: f.Stride = Field(1, description="Stride, an int or [sh, sw].")
    padding: f.Padding = Field(0, description="Zero padding on each side, an int or [ph, pw].")
    dilation: f.Stride = Field(1, description="Spacing between kernel taps.")
    groups: int = Field(1, ge=1, description="Number of channel groups.")
    bias: bool = Field(True, description="Add a learnable bias.")

    def output_shape(self, in_shape: Shape) -> Shape:
        check_groups(feature_map(in_shape, self.kind)[0], self.out_channels, self.groups)
        return conv_shape(
            in_shape, self.out_channels, self.kernel_size, self.stride, self.padding, self.dilation
        )

    def cost(self, in_shape: Shape) -> Cost:
        out = self.output_shape(in_shape)
        return cost.conv(
            in_shape[0], self.out_channels, self.kernel_size, out, self.groups, self.bias
        )


class PaddedConv(BlockSpec):
    """Shared by convolution blocks whose ``padding`` defaults to 'same' (odd kernels); the
    subclass declares ``out_channels``, ``kernel_size``, ``stride``, ``padding`` and
    ``dilation``."""

    out_channels: int
    kernel_size: Any
    stride: Any
    padding: Any
    dilation: Any

    def resolved_padding(self) -> tuple[int, int]:
        return resolve_padding(self.padding, self.kernel_size, self.dilation)

    def padded_shape(self, in_shape: Shape) -> Shape:
        """The output shape with the resolved padding."""
        pad = self.resolved_padding()
        return conv_shape(
            in_shape, self.out_channels, self.kernel_size, self.stride, pad, self.dilation
        )

    def module_kwargs(self) -> dict:
        kw = super().module_kwargs()
        kw["padding"] = self.resolved_padding()
        return kw


@register_block("conv")
class Conv(PaddedConv):
    """Convolution, normalization, activation: the workhorse (``conv``, ``bn``, ``act`` children).

    Padding defaults to 'same' for odd kernels (``(k - 1) // 2 * dilation``); ``depthwise: true``
    sets ``groups`` to the input channels. The child names match timm's ConvNormAct and
    torchvision's GoogLeNet/Inception ``BasicConv2d`` so their weights load unchanged.
    """

    examples: ClassVar[Examples] = (
        ({"out_channels": 8}, (4, 8, 8)),
        ({"out_channels": 8, "kernel_size": [1, 7], "stride": 2, "activation": "silu"}, (4, 9, 9)),
        ({"out_channels": 8, "dilation": 2, "groups": 2, "norm": "group"}, (4, 8, 8)),
        ({"out_channels": 8, "depthwise": True, "norm": "none", "activation": "none"}, (4, 8, 8)),
    )

    module = f"{_M}:ConvNormAct"
    shorthand = "out_channels"
    width_fields = ("out_channels",)
    out_channels: f.Channels = Field(description="Number of output channels.")
    kernel_size: f.Kernel = Field(3, description="Kernel size, an int or [kh, kw] (e.g. [1, 7]).")
    stride: f.Stride = Field(1, description="Stride, an int or [sh, sw].")
    padding: f.Padding | Literal["same"] | None = Field(
        None, description="Zero padding; omitted or 'same' keeps the size at stride 1."
    )
    dilation: f.Stride = Field(1, description="Spacing between kernel taps (atrous convolution).")
    groups: int = Field(1, ge=1, description="Number of channel groups (ResNeXt cardinality).")
    depthwise: bool = Field(
        False, description="One group per input channel (groups = in_channels)."
    )
    bias: bool | None = Field(
        None, description="Conv bias; by default only when there is no norm."
    )
    norm: f.Norm = f.norm_field()
    norm_eps: float = f.eps_field()
    norm_momentum: float = f.momentum_field()
    activation: f.Activation = f.activation_field()

    def output_shape(self, in_shape: Shape) -> Shape:
        c = feature_map(in_shape, self.kind)[0]
        if self.depthwise and self.out_channels % c:
            raise ShapeError(
                f"a depthwise conv needs out_channels ({self.out_channels}) to be a multiple "
                f"of its {c} input channels",
                field="out_channels",
            )
        check_groups(c, self.out_channels, c if self.depthwise else self.groups)
        return self.padded_shape(in_shape)

    def cost(self, in_shape: Shape) -> Cost:
        c = in_shape[0]
        groups = c if self.depthwise else self.groups
        bias = self.norm == "none" if self.bias is None else self.bias
        conv = cost.conv(
            c, self.out_channels, self.kernel_size, self.output_shape(in_shape), groups, bias
        )
        return cost.total(conv, cost.norm(self.norm, self.out_channels))


@register_block("pointwise")
class Pointwise(Conv):
    """A 1x1 convolution with norm and activation (channel mixing, bottleneck reduction)."""

    examples = (({"out_channels": 6}, (4, 5, 5)),)

    kernel_size: Literal[1] = Field(1, description="Always 1.")


@register_block("batchnorm")
class BatchNorm(BlockSpec):
    """``nn.BatchNorm2d`` over the input channels (``nn.BatchNorm1d`` on a flat vector)."""

    examples = (({}, (4, 5, 5)), ({}, (6,)))

    module = "torch.nn:BatchNorm2d"
    norm_eps: float = f.eps_field()
    norm_momentum: float = f.momentum_field()
    affine: bool = Field(True, description="Learnable scale and shift.")

    def output_shape(self, in_shape: Shape) -> Shape:
        return in_shape

    def build_for(self, in_shape: Shape):
        from torch import nn

        layer = nn.BatchNorm2d if len(in_shape) == 3 else nn.BatchNorm1d
        return layer(
            in_shape[0], eps=self.norm_eps, momentum=self.norm_momentum, affine=self.affine
        )

    def build(self, in_channels):
        return self.build_for((in_channels, 1, 1))

    def cost(self, in_shape: Shape) -> Cost:
        return cost.norm("batch", in_shape[0], self.affine)


@register_block("groupnorm")
class GroupNorm(BlockSpec):
    """``nn.GroupNorm`` (Wu & He, 2018): normalization independent of the batch size."""

    examples = (({"num_groups": 2}, (4, 5, 5)),)

    module = f"{_M}:GroupNorm"
    shorthand = "num_groups"
    num_groups: int = Field(32, ge=1, description="Number of channel groups.")
    norm_eps: float = f.eps_field()

    def output_shape(self, in_shape: Shape) -> Shape:
        c = feature_map(in_shape, self.kind)[0]
        if c % self.num_groups:
            raise ShapeError(
                f"{c} channels are not divisible by {self.num_groups} groups", field="num_groups"
            )
        return in_shape

    def cost(self, in_shape: Shape) -> Cost:
        return cost.norm("group", in_shape[0])


class _Elementwise(BlockSpec):
    """Shape-preserving layers without parameters of their own."""

    examples: ClassVar[Examples] = (({}, (4, 5, 5)),)

    def output_shape(self, in_shape: Shape) -> Shape:
        return in_shape

    def build(self, in_channels):
        # torch.nn activations and dropout do not take the channel count.
        return self.module_class()(**self.module_kwargs())

    def cost(self, in_shape: Shape) -> Cost:
        return FREE


def _activation(name: str, cls_name: str, doc: str, inplace: bool | None) -> type[BlockSpec]:
    fields: dict = {"__doc__": doc, "module": f"torch.nn:{cls_name}", "__module__": __name__}
    annotations: dict = {}
    if inplace is not None:
        annotations["inplace"] = bool
        fields["inplace"] = Field(inplace, description="Overwrite the input (saves memory).")
    fields["__annotations__"] = annotations
    cls = register_block(name)(type(cls_name + "Spec", (_Elementwise,), fields))
    globals()[cls.__name__] = cls  # importable by name: specs and built models pickle
    return cls


_activation("relu", "ReLU", "``nn.ReLU``: max(0, x).", True)
_activation("relu6", "ReLU6", "``nn.ReLU6``: min(max(0, x), 6) (MobileNet).", True)
_activation("silu", "SiLU", "``nn.SiLU`` (swish): x * sigmoid(x).", True)
_activation("gelu", "GELU", "``nn.GELU``.", None)
_activation("hardswish", "Hardswish", "``nn.Hardswish`` (MobileNetV3).", True)
_activation(
    "hardsigmoid", "Hardsigmoid", "``nn.Hardsigmoid``: relu6(x + 3) / 6 (MobileNetV3 gates).", True
)
_activation("sigmoid", "Sigmoid", "``nn.Sigmoid``.", None)
_activation("tanh", "Tanh", "``nn.Tanh``.", None)
_activation("identity", "Identity", "``nn.Identity``: passes its input through.", None)


@register_block("leaky_relu")
class LeakyReLU(_Elementwise):
    """``nn.LeakyReLU`` (YOLO uses slope 0.1)."""

    module = "torch.nn:LeakyReLU"
    shorthand = "negative_slope"
    negative_slope: float = Field(0.01, ge=0, description="Slope for negative inputs.")
    inplace: bool = Field(True, description="Overwrite the input (saves memory).")


@register_block("dropout")
class Dropout(_Elementwise):
    """``nn.Dropout`` (Srivastava et al., 2014); ``dropout2d`` drops whole channels."""

    examples: ClassVar[Examples] = (({"p": 0.2}, (4, 5, 5)), ({"p": 0.5}, (10,)))

    module = "torch.nn:Dropout"
    shorthand = "p"
    p: float = Field(0.5, ge=0, le=1, description="Probability of zeroing an element.")
    inplace: bool = Field(False, description="Overwrite the input.")


@register_block("dropout2d")
class Dropout2d(Dropout):
    """``nn.Dropout2d``: zeroes whole channels (spatial dropout)."""

    module = "torch.nn:Dropout2d"
    examples = (({"p": 0.2}, (4, 5, 5)),)

    def output_shape(self, in_shape: Shape) -> Shape:
        feature_map(in_shape, self.kind)
        return in_shape


@register_block("flatten")
class Flatten(BlockSpec):
    """``nn.Flatten``: (C, H, W) -> (C*H*W,)."""

    examples = (({}, (4, 3, 3)),)

    module = "torch.nn:Flatten"

    def output_shape(self, in_shape: Shape) -> Shape:
        n = 1
        for d in in_shape:
            n *= d
        return (n,)

    def cost(self, in_shape: Shape) -> Cost:
        return FREE

    def build(self, in_channels):
        return self.module_class()()


@register_block("linear")
class Linear(BlockSpec):
    """``nn.Linear`` on a flat feature vector."""

    examples = (({"out_features": 5}, (12,)),)

    module = f"{_M}:Linear"
    shorthand = "out_features"
    out_features: int = Field(ge=1, le=1 << 20, description="Number of output features.")
    bias: bool = Field(True, description="Add a learnable bias.")

    def output_shape(self, in_shape: Shape) -> Shape:
        vector(in_shape, self.kind)
        return (self.out_features,)

    def cost(self, in_shape: Shape) -> Cost:
        return cost.linear(in_shape[0], self.out_features, self.bias)


@register_block("classifier")
class Classifier(BlockSpec):
    """Classification head: global average pool, flatten, dropout, linear (``fc``)."""

    examples = (
        ({"num_classes": 5, "dropout": 0.1}, (8, 4, 4)),
        ({"num_classes": 3, "pool": "max"}, (8,)),
    )

    module = f"{_M}:ClassifierHead"
    shorthand = "num_classes"
    num_classes: int = Field(ge=1, le=1 << 20, description="Number of classes.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout before the linear layer.")
    pool: Literal["avg", "max"] = Field("avg", description="Global pooling: avg or max.")

    def output_shape(self, in_shape: Shape) -> Shape:
        if len(in_shape) not in (1, 3):
            raise ShapeError(f"classifier expects (C, H, W) or (F,), got {in_shape}")
        return (self.num_classes,)

    def build_for(self, in_shape: Shape):
        return self.module_class()(
            in_shape[0], **self.module_kwargs(), flat_input=len(in_shape) == 1
        )

    def cost(self, in_shape: Shape) -> Cost:
        return cost.linear(in_shape[0], self.num_classes)
