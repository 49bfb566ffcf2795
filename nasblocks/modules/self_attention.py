"""The non-local block (Wang et al., 2018, arXiv:1711.07971), embedded-Gaussian form.

``NonLocal2d(channels, reduction)`` keeps the channel count of its input, like the attention
modules of :mod:`nasblocks.modules.attention`, so it can stand wherever they do.
"""

from __future__ import annotations

import torch
from torch import nn


def _embedding(in_channels: int, inter: int, pool: bool) -> nn.Module:
    conv = nn.Conv2d(in_channels, inter, 1)
    return nn.Sequential(conv, nn.MaxPool2d(2)) if pool else conv


class NonLocal2d(nn.Module):
    """z = x + W(y), y_i = sum_j softmax_j(theta(x)_i . phi(x)_j) g(x)_j over positions i, j.

    Children ``theta``, ``phi``, ``g`` (1x1 convs; ``phi`` and ``g`` followed by a 2x2 max
    pool with ``sub_sample``) and ``W`` (1x1 conv, BN).
    """

    def __init__(
        self,
        in_channels: int,
        reduction: int = 2,
        sub_sample: bool = False,
        zero_init_last: bool = True,
    ) -> None:
        super().__init__()
        inter = in_channels // reduction
        if inter < 1:
            raise ValueError(f"{in_channels} channels reduced by {reduction} leave none")
        self.theta = nn.Conv2d(in_channels, inter, 1)
        self.phi = _embedding(in_channels, inter, sub_sample)
        self.g = _embedding(in_channels, inter, sub_sample)
        self.W = nn.Sequential(nn.Conv2d(inter, in_channels, 1), nn.BatchNorm2d(in_channels))
        self.zero_init_last = zero_init_last
        self.post_init()

    def post_init(self) -> None:
        """Zero W's BN (the block starts as the identity); ``nasblocks.init`` calls it again
        after its scheme."""
        norm = self.W[1]
        if self.zero_init_last and isinstance(norm, nn.BatchNorm2d):
            nn.init.zeros_(norm.weight)
            nn.init.zeros_(norm.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        theta = self.theta(x)  # (B, C', H, W)
        query = theta.flatten(2).transpose(1, 2)  # (B, HW, C')
        key = self.phi(x).flatten(2)  # (B, C', N), N = HW or (H/2)(W/2)
        value = self.g(x).flatten(2)  # (B, C', N)
        weights = torch.bmm(query, key).softmax(dim=-1)  # (B, HW, N)
        y = torch.bmm(value, weights.transpose(1, 2))  # (B, C', HW)
        return x + self.W(y.view_as(theta))  # (B, C, H, W)
