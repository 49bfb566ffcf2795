"""Shake-Shake regularization (Gastaldi, 2017, arXiv:1705.07485): the block and its mixing.

The mixing is an ``autograd.Function`` whose backward is deliberately not the gradient of
its forward: the forward weights the two branches by alpha and 1 - alpha, the backward their
gradients by an independent beta and 1 - beta. :func:`shake` draws both per image in
training and mixes evenly in eval mode; it is one opaque ``call_function`` to ``torch.fx``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from nasblocks.modules.common import conv2d


class ShakeShakeMix(torch.autograd.Function):
    """``alpha * a + (1 - alpha) * b`` forward; gradients ``beta * g`` and ``(1 - beta) * g``."""

    @staticmethod
    def forward(
        ctx: Any, a: torch.Tensor, b: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor
    ) -> torch.Tensor:
        ctx.save_for_backward(beta)
        return alpha * a + (1 - alpha) * b

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (beta,) = ctx.saved_tensors
        return beta * grad, (1 - beta) * grad, None, None


def shake_shake_mix(
    a: torch.Tensor, b: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor
) -> torch.Tensor:
    """Mix ``a`` and ``b`` by ``alpha`` forward and ``beta`` backward (broadcast against them)."""
    out: torch.Tensor = ShakeShakeMix.apply(a, b, alpha, beta)
    return out


def shake(a: torch.Tensor, b: torch.Tensor, training: bool) -> torch.Tensor:
    """Shake-Shake-Image: a fresh alpha and beta in [0, 1) per image when training, else 0.5."""
    if not training:
        return 0.5 * (a + b)
    per_image = (a.shape[0],) + (1,) * (a.dim() - 1)  # (B, 1, 1, 1)
    alpha = torch.rand(per_image, dtype=a.dtype, device=a.device)
    beta = torch.rand(per_image, dtype=a.dtype, device=a.device)
    return shake_shake_mix(a, b, alpha, beta)


torch.fx.wrap("shake")


def _branch(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    # The first ReLU is not in place: the other branch and the shortcut read the same input.
    return nn.Sequential(
        nn.ReLU(),
        conv2d(in_channels, out_channels, 3, stride),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        conv2d(out_channels, out_channels, 3),
        nn.BatchNorm2d(out_channels),
    )


class ShakeShortcut(nn.Module):
    """ReLU, then two paths of a strided 1x1 average pool and a 1x1 conv to half the width,
    the second on the input shifted one pixel right and down; concatenated, then BN.

    The shift (the Torch code's ``SpatialZeroPadding(1, -1, 1, -1)``) makes the second path's
    pooling sample the pixels the first one skips.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        half = out_channels // 2
        self.relu = nn.ReLU()
        self.pool = nn.AvgPool2d(1, stride)
        self.conv1 = conv2d(in_channels, half, 1)
        self.conv2 = conv2d(in_channels, half, 1)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = F.pad(x, (1, -1, 1, -1))  # (B, C, H, W), content moved one pixel right, down
        paths = (self.conv1(self.pool(x)), self.conv2(self.pool(shifted)))  # (B, C'/2, H', W')
        return self.bn(torch.cat(paths, dim=1))  # (B, C', H', W')


class ShakeShakeBlock(nn.Module):
    """``shortcut(x) + shake(branch1(x), branch2(x))``; children ``branch1``, ``branch2``
    (each ReLU, conv, BN, ReLU, conv, BN: indices 0-5) and ``shortcut``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.branch1 = _branch(in_channels, out_channels, stride)
        self.branch2 = _branch(in_channels, out_channels, stride)
        projects = stride != 1 or in_channels != out_channels
        if projects and out_channels % 2:
            raise ValueError(f"a projecting shortcut needs even out_channels, got {out_channels}")
        self.shortcut: nn.Module = (
            ShakeShortcut(in_channels, out_channels, stride) if projects else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = shake(self.branch1(x), self.branch2(x), self.training)  # (B, C', H', W')
        return self.shortcut(x) + mixed
