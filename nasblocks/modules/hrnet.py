"""HRNet's multi-resolution layers in timm's layout: see :mod:`nasblocks.blocks.hrnet`.

Between layers the branches travel as one tensor: branch ``k`` of ``n`` (the ``k``-th
resolution, ``2**k`` times smaller than the first) is space-to-depth packed by
``2**(n - 1 - k)`` down to the smallest map and the branches are concatenated. Packing and
unpacking only permute elements, so the arithmetic is timm's. Where one HRNet layer feeds
the next, the compiled forward hands the list of branches over instead
(:mod:`nasblocks.modules.branches`): ``forward(x, pack=False)`` returns the list, and every
layer takes either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

from nasblocks.blocks.hrnet import HEAD_CHANNELS, HEAD_WIDTHS, transition_inputs
from nasblocks.modules.residual import BasicBlock, Bottleneck


def _factors(n: int) -> list[int]:
    return [2 ** (n - 1 - k) for k in range(n)]


class _Branches(nn.ModuleList):
    """Children ``0`` ... (a ModuleList, as in timm) that unpack and pack the branches; the
    factors are fixed in ``__init__``. ``forward`` takes the packed map or the list of
    branches and returns the packed map, or the list where ``pack=False``."""

    takes_branches = True
    gives_branches = True

    def forward(
        self, x: torch.Tensor | list[torch.Tensor], pack: bool = True
    ) -> torch.Tensor | list[torch.Tensor]:
        ys = self.run(list(x) if isinstance(x, (list, tuple)) else self.unpack(x))
        return self.pack(ys) if pack else ys

    def run(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """The layer's branches out from its branches in; every subclass defines it
        (``HRNetDownsample``, whose output is one map, overrides ``forward`` instead)."""
        raise NotImplementedError

    def _set_io(self, in_widths: Sequence[int], out_count: int) -> None:
        self.in_factors = _factors(len(in_widths))
        self.in_sizes = [c * r * r for c, r in zip(in_widths, self.in_factors, strict=True)]
        self.out_factors = _factors(out_count)

    def unpack(self, x: torch.Tensor) -> list[torch.Tensor]:
        if len(self.in_sizes) == 1:
            return [x]
        parts = torch.split(x, self.in_sizes, 1)
        return [
            F.pixel_shuffle(parts[k], r) if r > 1 else parts[k]
            for k, r in enumerate(self.in_factors)
        ]  # branch k: (B, C_k, h * r, w * r)

    def pack(self, xs: list[torch.Tensor]) -> torch.Tensor:
        packed = [
            F.pixel_unshuffle(xs[k], r) if r > 1 else xs[k] for k, r in enumerate(self.out_factors)
        ]
        return torch.cat(packed, 1)  # (B, sum C_k * r_k**2, h, w)


def _conv_bn(cin: int, cout: int, k: int, stride: int, relu: bool, bias: bool = False):
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, stride, k // 2, bias=bias),
        nn.BatchNorm2d(cout),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class HRNetTransition(_Branches):
    """Children ``0`` ... as timm's ``transitionN`` (a ModuleList): a 3x3 conv where a branch
    changes width (else Identity), and a strided 3x3 conv making the new branch."""

    def __init__(self, in_channels: int, channels: Sequence[int]) -> None:
        super().__init__()
        prev = transition_inputs(in_channels, channels)
        self._set_io(prev, len(channels))
        for c, p in zip(channels, prev, strict=False):
            self.append(nn.Identity() if c == p else _conv_bn(p, c, 3, 1, True))
        self.append(nn.Sequential(_conv_bn(prev[-1], channels[-1], 3, 2, True)))
        self.n_in = len(prev)

    def run(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        outs = [self[i](xs[i]) for i in range(self.n_in)]
        return [*outs, self[self.n_in](xs[-1])]


class HighResolutionModule(nn.Module):
    """timm's ``HighResolutionModule``: ``branches.i`` (basic blocks), then ``fuse_layers.i.j``
    bringing branch ``j`` to branch ``i``'s width and size, summed and ReLU'd."""

    def __init__(self, channels: Sequence[int], depth: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(*(BasicBlock(c, c) for _ in range(depth))) for c in channels
        )
        fuse = []
        for i, ci in enumerate(channels):
            row: list[nn.Module] = []
            for j, cj in enumerate(channels):
                if j > i:
                    up = nn.Upsample(scale_factor=2 ** (j - i), mode="nearest")
                    row.append(nn.Sequential(*_conv_bn(cj, ci, 1, 1, False), up))
                elif j == i:
                    row.append(nn.Identity())
                else:
                    steps = [_conv_bn(cj, cj, 3, 2, True) for _ in range(i - j - 1)]
                    row.append(nn.Sequential(*steps, _conv_bn(cj, ci, 3, 2, False)))
            fuse.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(fuse)
        self.fuse_act = nn.ReLU(False)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(xs[i]) for i, branch in enumerate(self.branches)]
        out = []
        for fuse in self.fuse_layers:
            row = cast(nn.ModuleList, fuse)
            y = row[0](xs[0])
            for j in range(1, len(xs)):
                y = y + row[j](xs[j])
            out.append(self.fuse_act(y))
        return out


class HRNetStage(_Branches):
    """Children ``0`` ... as timm's ``stageN``: ``num_modules`` HighResolutionModules."""

    def __init__(
        self, in_channels: int, channels: Sequence[int], depth: int = 4, num_modules: int = 1
    ) -> None:
        super().__init__()
        self._set_io(list(channels), len(channels))
        for _ in range(num_modules):
            self.append(HighResolutionModule(list(channels), depth))

    def run(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        for unit in self:
            xs = unit(xs)
        return xs


class HRNetIncre(_Branches):
    """timm's ``incre_modules``: one bottleneck per branch (``k.0``), to ``4 * channels[k]``."""

    def __init__(
        self, in_channels: int, branches: Sequence[int], channels: Sequence[int] = HEAD_CHANNELS
    ) -> None:
        super().__init__()
        self._set_io(list(branches), len(branches))
        for b, c in zip(branches, channels, strict=True):
            self.append(nn.Sequential(Bottleneck(b, c)))

    def run(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [unit(xs[k]) for k, unit in enumerate(self)]


class HRNetDownsample(_Branches):
    """timm's ``downsamp_modules``: ``y = x_0``, then ``y = x_k + down_{k-1}(y)`` for each
    coarser branch, ``down`` a strided 3x3 conv, BN, ReLU; the result is one map."""

    def __init__(
        self, in_channels: int, branches: Sequence[int] = HEAD_WIDTHS, bias: bool = True
    ) -> None:
        super().__init__()
        self._set_io(list(branches), 1)
        for k in range(len(branches) - 1):
            self.append(_conv_bn(branches[k], branches[k + 1], 3, 2, True, bias))

    gives_branches = False  # one map

    def forward(self, x: torch.Tensor | list[torch.Tensor], pack: bool = True) -> torch.Tensor:
        xs = list(x) if isinstance(x, (list, tuple)) else self.unpack(x)
        y = xs[0]
        for k, down in enumerate(self):
            y = xs[k + 1] + down(y)
        return y  # (B, branches[-1], h, w)
