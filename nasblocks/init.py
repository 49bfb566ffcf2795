"""Weight initialisation schemes of the reference implementations, by name.

Each scheme reproduces the distribution its network's torchvision builder uses, so a preset
trained from scratch starts where torchvision's would. Blocks may define ``post_init()``
(e.g. zeroing the last BN of a residual branch), called after the scheme, as torchvision does.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import nn

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm)


def _norm_ones(m: nn.Module) -> None:
    if isinstance(m, _NORMS) and m.weight is not None:
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def _kaiming(model: nn.Module, linear_std: float | None, conv_bias_zero: bool) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if conv_bias_zero and m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0, linear_std)
            nn.init.zeros_(m.bias) if m.bias is not None else None
        _norm_ones(m)


def _trunc_normal(model: nn.Module, default_std: float, per_module: bool) -> None:
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            std = float(getattr(m, "stddev", default_std)) if per_module else default_std
            nn.init.trunc_normal_(m.weight, mean=0.0, std=std, a=-2, b=2)
        _norm_ones(m)


def _unet(model: nn.Module) -> None:
    """U-Net as ozan-oktay/Attention-Gated-Networks initialises it (``weights_init_kaiming``):
    every conv (transposed too) kaiming fan-in, BN scale N(1, 0.02)."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def _efficientnet(model: nn.Module) -> None:
    """timm's ``_init_weight_goog`` (TF's EfficientNet / MnasNet): convs N(0, 2 / fan-out) with
    the fan-out divided by the groups, biases zero; linears U(+-1 / sqrt(out_features))."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.weight.size(0))
            nn.init.uniform_(m.weight, -bound, bound)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        _norm_ones(m)


SCHEMES: dict[str, Callable[[nn.Module], None]] = {
    "default": lambda model: None,
    # torchvision ResNet / ResNeXt / Wide ResNet
    "kaiming": lambda model: _kaiming(model, linear_std=None, conv_bias_zero=False),
    # torchvision VGG
    "vgg": lambda model: _kaiming(model, linear_std=0.01, conv_bias_zero=True),
    # torchvision MobileNetV2
    "mobilenet": lambda model: _kaiming(model, linear_std=0.01, conv_bias_zero=True),
    # torchvision GoogLeNet
    "googlenet": lambda model: _trunc_normal(model, 0.01, per_module=False),
    # torchvision Inception3: std 0.1 unless a module carries its own `stddev`
    "inception": lambda model: _trunc_normal(model, 0.1, per_module=True),
    # U-Net (Attention-Gated-Networks' weights_init_kaiming)
    "unet": _unet,
    # timm EfficientNet, MixNet, MobileNetV2 (efficientnet_init_weights)
    "efficientnet": _efficientnet,
}


def apply_init(model: nn.Module, scheme: str) -> None:
    SCHEMES[scheme](model)
    for m in model.modules():
        hook = getattr(m, "post_init", None)
        if callable(hook):
            hook()
