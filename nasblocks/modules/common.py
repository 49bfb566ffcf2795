"""Parts shared by the block implementations: norms and activations by name, the conv bias
rule, 'same'-padded convolutions and the channel shuffle."""

from __future__ import annotations

from typing import Any, TypedDict

import torch
from torch import nn

from nasblocks.blocks._shapes import IntOrPair, as_size, same_padding


class NormKwargs(TypedDict):
    """The norm keywords of the conv -> norm -> activation modules."""

    norm: str
    norm_eps: float
    norm_momentum: float


class NormActKwargs(NormKwargs):
    """:class:`NormKwargs` and the activation."""

    activation: str


def make_norm(
    kind: str | None, channels: int, eps: float = 1e-5, momentum: float = 0.1
) -> nn.Module:
    """``batch`` -> BatchNorm2d, ``group`` -> GroupNorm (32 groups or fewer), ``instance`` ->
    InstanceNorm2d (affine), ``none`` -> Identity."""
    if kind in (None, "none"):
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm2d(channels, eps=eps, momentum=momentum)
    if kind == "group":
        groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels, eps=eps)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, eps=eps, momentum=momentum, affine=True)
    raise ValueError(f"unknown norm {kind!r}")


def make_activation(kind: Any, inplace: bool = True) -> nn.Module:
    """An activation module by name (``none`` gives Identity), or from a one-key mapping with
    its arguments (``{"leaky_relu": {"negative_slope": 0.01}}``; an activation field's
    validated value, whose ``model_dump()`` is that mapping)."""
    if hasattr(kind, "model_dump"):
        kind = kind.model_dump()
    if isinstance(kind, dict):
        ((name, args),) = kind.items()
        if name == "leaky_relu":
            return nn.LeakyReLU(args["negative_slope"], inplace=inplace)
        raise ValueError(f"activation {name!r} takes no arguments")
    if kind in (None, "none"):
        return nn.Identity()
    if kind == "relu":
        return nn.ReLU(inplace=inplace)
    if kind == "relu6":
        return nn.ReLU6(inplace=inplace)
    if kind == "leaky_relu":
        return nn.LeakyReLU(0.1, inplace=inplace)
    if kind == "silu":
        return nn.SiLU(inplace=inplace)
    if kind == "gelu":
        return nn.GELU()
    if kind == "hardswish":
        return nn.Hardswish(inplace=inplace)
    if kind == "hardsigmoid":
        return nn.Hardsigmoid(inplace=inplace)
    if kind == "sigmoid":
        return nn.Sigmoid()
    if kind == "tanh":
        return nn.Tanh()
    raise ValueError(f"unknown activation {kind!r}")


def conv_bias(bias: bool | None, norm: str) -> bool:
    """``bias``, or by default a bias only where no norm follows (a norm's shift replaces it)."""
    return norm == "none" if bias is None else bias


def conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: IntOrPair,
    stride: IntOrPair = 1,
    padding: IntOrPair | str | None = None,
    dilation: IntOrPair = 1,
    groups: int = 1,
    bias: bool = False,
) -> nn.Conv2d:
    """``nn.Conv2d``; omitted, ``padding`` keeps the size at stride 1 (a string is
    ``nn.Conv2d``'s own: ``'same'``, ``'valid'``).

    torchvision's ``conv3x3`` / ``conv1x1`` (ResNet, ShuffleNet) and the ``conv`` block's conv.
    """
    if padding is None:
        padding = same_padding(kernel_size, dilation)
    return nn.Conv2d(
        in_channels,
        out_channels,
        as_size(kernel_size),
        stride=as_size(stride),
        padding=padding if isinstance(padding, str) else as_size(padding),
        dilation=as_size(dilation),
        groups=groups,
        bias=bias,
    )


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` groups (ShuffleNet): (g, C/g) -> (C/g, g).

    Channel ``g * (C // groups) + i`` moves to ``i * groups + g``: the order of torchvision's
    ``shufflenetv2.channel_shuffle``, so ShuffleNetV2 weights keep their meaning.
    """
    x = x.unflatten(1, (groups, -1))  # (B, groups, C // groups, H, W)
    return x.transpose(1, 2).flatten(1, 2)  # (B, C, H, W)


class DropPath(nn.Module):
    """Stochastic depth (Huang et al., 2016): in training, zero a residual branch for each
    sample with probability ``p`` and scale the kept ones by ``1 / (1 - p)``; the identity
    in eval mode. timm's ``DropPath`` with ``scale_by_keep``; no parameters."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"p={self.p}"
