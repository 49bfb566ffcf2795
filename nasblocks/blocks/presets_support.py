"""Small layers some reference networks need and no block family provides.

``transform_input`` is torchvision's GoogLeNet / Inception-v3 input re-normalization,
``log_softmax`` ends the classic PyTorch MNIST example net, and ``pixel_classifier`` is the
1x1 class-score convolution that ends a segmentation net (U-Net's ``final``).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from nasblocks.blocks._costs import FREE, Cost
from nasblocks.blocks._shapes import feature_map
from nasblocks.errors import ShapeError
from nasblocks.registry import BlockSpec, Shape, register_block

_M = "nasblocks.modules.presets_support"

Triple = Annotated[list[float], Field(min_length=1, max_length=16)]


@register_block("transform_input")
class TransformInput(BlockSpec):
    """Map ImageNet-normalized input to the (x - 0.5) / 0.5 normalization Google trained with.

    torchvision's ``transform_input`` of GoogLeNet and Inception-v3: channel ``c`` becomes
    ``x * std[c] / 0.5 + (mean[c] - 0.5) / 0.5``. Parameter-free (its constants are not part
    of the ``state_dict``); ``enabled: false`` makes it the identity, torchvision's default
    unless it loads pretrained weights.
    """

    def cost(self, in_shape: Shape) -> Cost:
        return FREE  # a per-channel scale and shift: no weights, no multiply-accumulates

    module = f"{_M}:TransformInput"
    source = "torchvision.models.googlenet / inception_v3 (transform_input)"
    shorthand = "enabled"
    enabled: bool = Field(True, description="Apply the transform; false passes the input on.")
    mean: Triple = Field(
        [0.485, 0.456, 0.406], description="Per-channel mean the input was normalized with."
    )
    std: Triple = Field(
        [0.229, 0.224, 0.225], description="Per-channel std the input was normalized with."
    )
    examples = (
        ({}, (3, 8, 8)),
        ({"enabled": False}, (5, 4, 4)),
        ({"mean": [0.5], "std": [0.25]}, (1, 4, 4)),
    )

    def output_shape(self, in_shape: Shape) -> Shape:
        c, _, _ = feature_map(in_shape, self.kind)
        if len(self.mean) != len(self.std):
            raise ShapeError(
                f"mean has {len(self.mean)} values and std {len(self.std)}", field="std"
            )
        if self.enabled and c != len(self.mean):
            raise ShapeError(
                f"mean and std give {len(self.mean)} channels, the input has {c}", field="mean"
            )
        return tuple(in_shape)


@register_block("log_softmax")
class LogSoftmax(BlockSpec):
    """``nn.LogSoftmax`` over the features (classes) of a vector, or the channels of a map."""

    module = "torch.nn:LogSoftmax"
    examples = (({}, (10,)), ({}, (4, 3, 3)))

    def output_shape(self, in_shape: Shape) -> Shape:
        return tuple(in_shape)

    def build(self, in_channels):
        # Dimension 1 is the class axis of (B, F) and the channel axis of (B, C, H, W).
        return self.module_class()(dim=1)


@register_block("pixel_classifier")
class PixelClassifier(BlockSpec):
    """A 1x1 convolution to ``num_classes`` scores per pixel (a segmentation head).

    Unlike ``conv2d`` its width is the class count, which ``width_multiple`` never scales
    (U-Net's ``feature_scale`` is a width multiple of the rest). Children as ``nn.Conv2d``.
    """

    module = f"{_M}:pixel_classifier"
    source = "Long et al., Fully Convolutional Networks (2015)"
    shorthand = "num_classes"
    num_classes: int = Field(ge=1, le=1 << 16, description="Number of classes (output maps).")
    bias: bool = Field(True, description="Add a learnable bias per class.")
    examples = (({"num_classes": 2}, (8, 6, 6)), ({"num_classes": 5, "bias": False}, (3, 4, 7)))

    def output_shape(self, in_shape: Shape) -> Shape:
        _, h, w = feature_map(in_shape, self.kind)
        return (self.num_classes, h, w)
