"""Implementations of the pooling blocks that are not plain ``torch.nn`` classes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F


class _GlobalPool(nn.Module):
    """``pool`` to 1 x 1, then ``flatten`` (or Identity): timm's child names."""

    def __init__(self, pool: nn.Module, flatten: bool) -> None:
        super().__init__()
        self.pool = pool
        self.flatten = nn.Flatten(1) if flatten else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.flatten(self.pool(x))  # (B, C, 1, 1) or (B, C)


class GlobalAvgPool(_GlobalPool):
    def __init__(self, in_channels: int, flatten: bool = False) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), flatten)


class GlobalMaxPool(_GlobalPool):
    def __init__(self, in_channels: int, flatten: bool = False) -> None:
        super().__init__(nn.AdaptiveMaxPool2d(1), flatten)


@torch.fx.wrap
def _pool_at_least(x: torch.Tensor, output_size: tuple[int, int], pool: str) -> torch.Tensor:
    """One call in an fx trace (the branch depends on the runtime size)."""
    h, w = output_size
    if x.shape[-2] >= h and x.shape[-1] >= w:
        return x
    size = (max(h, x.shape[-2]), max(w, x.shape[-1]))
    fn = F.adaptive_max_pool2d if pool == "max" else F.adaptive_avg_pool2d
    return fn(x, size)


class AdaptivePoolAtLeast(nn.Module):
    """Adaptive pooling of the sides smaller than ``output_size`` up to it (a larger side is
    kept): ``(B, C, H, W) -> (B, C, max(H, h), max(W, w))``, timm's VGG ``ConvMlp`` guard."""

    def __init__(self, output_size: int | tuple[int, int], pool: str = "avg") -> None:
        super().__init__()
        h, w = (output_size, output_size) if isinstance(output_size, int) else output_size
        self.output_size = (int(h), int(w))
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _pool_at_least(x, self.output_size, self.pool)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, pool={self.pool}, at_least=True"


class SPP(nn.Module):
    """YOLO SPP: ``cat([x, pool_1, ..., pool_n])`` of stride-1 'same' max pools.

    A parallel pool reads the input, a cascaded one the previous pool's output; the choice is
    the index ``source`` into the list of maps so far (0: the input, -1: the latest).
    """

    def __init__(
        self, in_channels: int, kernels: Sequence[int] = (5, 9, 13), mode: str = "parallel"
    ) -> None:
        super().__init__()
        self.pools = nn.ModuleList(nn.MaxPool2d(k, stride=1, padding=k // 2) for k in kernels)
        self.source = -1 if mode == "cascade" else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = [x]
        for pool in self.pools:
            maps.append(pool(maps[self.source]))
        return torch.cat(maps, dim=1)  # (B, C * (len(kernels) + 1), H, W)

    def extra_repr(self) -> str:
        return "mode=cascade" if self.source == -1 else "mode=parallel"


class SPPNet(nn.Module):
    """SPP-net: adaptive pools to ``l x l`` per level, each flattened, concatenated."""

    def __init__(
        self, in_channels: int, levels: Sequence[int] = (1, 2, 4), pool: str = "max"
    ) -> None:
        super().__init__()
        layer = nn.AdaptiveMaxPool2d if pool == "max" else nn.AdaptiveAvgPool2d
        self.pools = nn.ModuleList(layer(level) for level in levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # each level (B, C, l, l) -> (B, C*l*l); result (B, C * sum(l*l))
        return torch.cat([pool(x).flatten(1) for pool in self.pools], dim=1)


class Reorg(nn.Module):
    """YOLOv2 passthrough: out[:, (a*s + b)*C + c, i, j] = x[:, c, i*s + a, j*s + b]."""

    def __init__(self, in_channels: int, stride: int = 2) -> None:
        super().__init__()
        self.stride = stride

    def extra_repr(self) -> str:
        return f"stride={self.stride}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stride
        c, h, w = x.size(1), x.size(2) // s, x.size(3) // s
        x = x.reshape(-1, c, h, s, w, s)  # (B, C, H/s, a, W/s, b)
        x = x.permute(0, 3, 5, 1, 2, 4)  # (B, a, b, C, H/s, W/s)
        return x.reshape(-1, s * s * c, h, w)  # (B, C*s*s, H/s, W/s)
