"""Factories shared by the block implementations: norms and activations by name."""

from __future__ import annotations

from torch import nn

NORMS = ("batch", "group", "instance", "none")
ACTIVATIONS = (
    "relu",
    "relu6",
    "leaky_relu",
    "silu",
    "gelu",
    "hardswish",
    "sigmoid",
    "tanh",
    "none",
)


def make_norm(
    kind: str | None, channels: int, eps: float = 1e-5, momentum: float = 0.1
) -> nn.Module:
    """``batch`` -> BatchNorm2d, ``group`` -> GroupNorm (32 groups or fewer), ``none`` -> Identity."""
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


def make_activation(kind: str | None, inplace: bool = True) -> nn.Module:
    """An activation module by name; ``none`` gives Identity."""
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
    if kind == "sigmoid":
        return nn.Sigmoid()
    if kind == "tanh":
        return nn.Tanh()
    raise ValueError(f"unknown activation {kind!r}")
