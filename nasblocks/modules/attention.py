"""Attention modules: SE (Hu et al.), SKConv / SKUnit (Li et al.) and CBAM (Woo et al.).

Child names follow senet.pytorch's SELayer and the common PyTorch SKNet code (after
pppLang/SKNet) so their ``state_dict`` keys load unchanged. All of them keep the channel
count of their input; the residual blocks import ``SqueezeExcite``, ``CBAM`` and ``SKConv``
as building parts.
"""

from __future__ import annotations

import torch
from torch import nn


class SqueezeExcite(nn.Module):
    """x * sigmoid(fc(mean_hw(x))) with ``fc`` = Linear, ReLU, Linear, Sigmoid (no biases)."""

    def __init__(self, in_channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = in_channels // reduction
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(in_channels, hidden, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, in_channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(self.avg_pool(x).flatten(1))  # (B, C)
        return x * y[:, :, None, None]  # (B, C, H, W)


class SEConv(nn.Module):
    """x * sigmoid(fc2(relu(fc1(mean_hw(x))))) with 1x1 convs with biases (timm's SEModule)."""

    def __init__(self, in_channels: int, reduction: int = 16, divisor: int = 8) -> None:
        super().__init__()
        from nasblocks.blocks.attention import se_hidden

        hidden = se_hidden(in_channels, reduction, divisor)
        self.fc1 = nn.Conv2d(in_channels, hidden, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, in_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True))))  # (B, C, 1, 1)
        return x * gate.sigmoid()


class ECA(nn.Module):
    """x * sigmoid(conv1d(mean_hw(x))): one bias-free 1-D conv across the channels."""

    def __init__(self, in_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x.mean((2, 3)).unsqueeze(1))  # (B, 1, C)
        return x * y.sigmoid().view(x.shape[0], -1, 1, 1)


class SKConv(nn.Module):
    """Selective kernel convolution: a per-channel softmax choice between dilated 3x3 branches.

    ``conv1.{i}`` is conv(3x3, dilation 1 + i, stride) -> BN -> ReLU; ``att`` squeezes the
    sum of the branches to ``branches * C`` logits (1x1 convs with bias).
    """

    def __init__(
        self, in_channels: int, stride: int = 1, branches: int = 2, reduction: int = 4
    ) -> None:
        super().__init__()
        self.branches, self.channels = branches, in_channels
        self.conv1 = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(
                    in_channels,
                    in_channels,
                    3,
                    stride,
                    padding=1 + i,
                    dilation=1 + i,
                    bias=False,
                ),
                nn.BatchNorm2d(in_channels),
                nn.ReLU(),
            )
            for i in range(branches)
        )
        self.att = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, in_channels // reduction, 1),
            nn.ReLU(),
            nn.Conv2d(in_channels // reduction, in_channels * branches, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = torch.stack([branch(x) for branch in self.conv1], dim=1)  # (B, M, C, H', W')
        att = self.att(feats.sum(dim=1))  # (B, M*C, 1, 1), branch-major, split per branch
        att = att.view(-1, self.branches, self.channels, 1, 1).softmax(dim=1)  # (B, M, C, 1, 1)
        return (feats * att).sum(dim=1)  # (B, C, H', W')


class SKUnit(nn.Module):
    """SKNet bottleneck: relu(shortcut(x) + conv3(conv2(conv1(x)))), conv2 holding an SKConv.

    ``mid_channels`` / ``stride`` of ``None`` follow the seed: in == out gives in // 2 and
    stride 1, otherwise in and stride 2. The shortcut is an empty ``nn.Sequential`` when the
    shape is kept, else a strided 1x1 conv + BN.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        mid_channels: int | None = None,
        stride: int | None = None,
        branches: int = 2,
        reduction: int = 4,
    ) -> None:
        super().__init__()
        same = in_channels == out_channels
        if mid_channels is None:
            mid_channels = in_channels // 2 if same else in_channels
        if stride is None:
            stride = 1 if same else 2
        if same and stride == 1:
            self.shortcut = nn.Sequential()
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, 1, bias=False),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(inplace=True),
        )
        self.conv2 = nn.Sequential(
            SKConv(mid_channels, stride, branches, reduction),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(inplace=True),
        )
        self.conv3 = nn.Sequential(
            nn.Conv2d(mid_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv3(self.conv2(self.conv1(x)))  # (B, out, H', W')
        return self.relu(self.shortcut(x) + out)


class ChannelAttention(nn.Module):
    """sigmoid(fc(avg_pool(x)) + fc(max_pool(x))): one (B, C, 1, 1) weight per channel."""

    def __init__(self, in_channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = in_channels // reduction
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.max_pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, in_channels, 1, bias=False),
        )
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sigmoid(self.fc(self.avg_pool(x)) + self.fc(self.max_pool(x)))  # (B, C, 1, 1)


class SpatialAttention(nn.Module):
    """sigmoid(conv([mean_c(x), max_c(x)])): one (B, 1, H, W) weight per position."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return self.sigmoid(self.conv(pooled))  # (B, 1, H, W)


class CBAM(nn.Module):
    """Channel attention, then spatial attention, each multiplied into the features."""

    def __init__(self, in_channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.channel_attention = ChannelAttention(in_channels, reduction)
        self.spatial_attention = SpatialAttention(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.channel_attention(x)
        return x * self.spatial_attention(x)
