"""ResNet basic / bottleneck blocks (with SE, SK or CBAM) and the ShuffleNet v1 / v2 units.

Child names and nesting follow torchvision (``resnet.BasicBlock`` / ``Bottleneck``,
``shufflenetv2.InvertedResidual``) so its weights load strictly. Options that are off are
parameter-free children (``nn.Identity``, an empty ``nn.Sequential``): they add no
``state_dict`` keys and keep ``forward`` free of branches.
"""

from __future__ import annotations

import torch
from torch import nn

from nasblocks.modules.attention import SKConv
from nasblocks.modules.common import (
    DropPath,
    channel_shuffle,
    conv2d,
    make_activation,
    make_norm,
)
from nasblocks.modules.merge import Add, Concat
from nasblocks.registry import attention_block


class _ResNetBlock(nn.Module):
    """Shortcut, attention and final activation shared by the basic and bottleneck blocks."""

    relu: nn.Module  # set by the subclass

    def _finish_init(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        attention: str,
        attention_reduction: int,
        zero_init_last: bool,
        downsample: bool | None,
        avg_down: bool,
        drop_path: float,
        norm: str,
        norm_eps: float,
        norm_momentum: float,
        last_norm: str,
    ) -> None:
        if downsample is None:
            downsample = stride != 1 or in_channels != out_channels
        self.downsample: nn.Module = nn.Identity()
        if downsample:
            conv_stride = 1 if avg_down else stride
            parts = [
                conv2d(in_channels, out_channels, 1, conv_stride, bias=norm == "none"),
                make_norm(norm, out_channels, norm_eps, norm_momentum),
            ]
            if avg_down:  # timm's downsample_avg: pool -> downsample.0, conv .1, norm .2
                pool = (
                    nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)
                    if stride != 1
                    else nn.Identity()
                )
                parts.insert(0, pool)
            # torchvision's _make_layer shortcut: Sequential(conv1x1(stride), norm).
            self.downsample = nn.Sequential(*parts)
        # senet.pytorch / CBAM / timm: attention rescales the branch after its last norm.
        spec = (
            None
            if attention in ("none", "sk")
            else attention_block(attention, attention_reduction)
        )
        self.se = nn.Identity() if spec is None else spec.build(out_channels)
        self.drop_path = DropPath(drop_path) if drop_path else nn.Identity()
        self.zero_init_last, self._last_norm = zero_init_last, last_norm
        self.post_init()

    def post_init(self) -> None:
        """Zero the last norm's scale; ``nasblocks.init`` calls it again after its scheme."""
        weight = getattr(getattr(self, self._last_norm), "weight", None)
        if self.zero_init_last and isinstance(weight, nn.Parameter):
            nn.init.zeros_(weight)

    def _merge(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return self.relu(self.drop_path(self.se(out)) + self.downsample(x))  # (B, C_out, H', W')


class BasicBlock(_ResNetBlock):
    """Two 3x3 convs; torchvision's ``BasicBlock`` (``conv1, bn1, conv2, bn2, relu``)."""

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        groups: int = 1,
        width_per_group: int = 64,
        dilation: int = 1,
        first_dilation: int | None = None,
        attention: str = "none",
        attention_reduction: int = 16,
        zero_init_last: bool = False,
        downsample: bool | None = None,
        avg_down: bool = False,
        drop_path: float = 0.0,
        norm: str = "batch",
        norm_eps: float = 1e-5,
        norm_momentum: float = 0.1,
        activation: str = "relu",
        expansion: int = 1,
    ) -> None:
        super().__init__()
        if groups != 1 or width_per_group != 64:
            raise ValueError("a basic block supports only groups 1 and width_per_group 64")
        out_channels = channels * expansion
        if attention == "sk" and out_channels != channels:
            raise ValueError("an SK basic block keeps its width: use expansion 1")
        bias = norm == "none"
        self.conv1 = conv2d(
            in_channels, channels, 3, stride, dilation=first_dilation or dilation, bias=bias
        )
        self.bn1 = make_norm(norm, channels, norm_eps, norm_momentum)
        self.conv2: nn.Module = (
            SKConv(channels, 1, 2, _sk_reduction(attention_reduction))
            if attention == "sk"
            else conv2d(channels, out_channels, 3, 1, dilation=dilation, bias=bias)
        )
        self.bn2 = make_norm(norm, out_channels, norm_eps, norm_momentum)
        self.relu = make_activation(activation)
        self._finish_init(
            in_channels,
            out_channels,
            stride,
            attention,
            attention_reduction,
            zero_init_last,
            downsample,
            avg_down,
            drop_path,
            norm,
            norm_eps,
            norm_momentum,
            "bn2",
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))  # (B, channels, H', W')
        out = self.bn2(self.conv2(out))
        return self._merge(x, out)


class Bottleneck(_ResNetBlock):
    """1x1, 3x3 (stride, groups, dilation), 1x1; torchvision's ``Bottleneck`` (ResNet v1.5)."""

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        groups: int = 1,
        width_per_group: int = 64,
        dilation: int = 1,
        first_dilation: int | None = None,
        attention: str = "none",
        attention_reduction: int = 16,
        zero_init_last: bool = False,
        downsample: bool | None = None,
        avg_down: bool = False,
        drop_path: float = 0.0,
        norm: str = "batch",
        norm_eps: float = 1e-5,
        norm_momentum: float = 0.1,
        activation: str = "relu",
        expansion: int = 4,
    ) -> None:
        super().__init__()
        width = channels * width_per_group // 64 * groups
        out_channels = channels * expansion
        bias = norm == "none"
        self.conv1 = conv2d(in_channels, width, 1, bias=bias)
        self.bn1 = make_norm(norm, width, norm_eps, norm_momentum)
        self.conv2: nn.Module = (
            SKConv(width, stride, 2, _sk_reduction(attention_reduction))
            if attention == "sk"
            else conv2d(
                width,
                width,
                3,
                stride,
                dilation=first_dilation or dilation,
                groups=groups,
                bias=bias,
            )
        )
        self.bn2 = make_norm(norm, width, norm_eps, norm_momentum)
        self.conv3 = conv2d(width, out_channels, 1, bias=bias)
        self.bn3 = make_norm(norm, out_channels, norm_eps, norm_momentum)
        self.relu = make_activation(activation)
        self._finish_init(
            in_channels,
            out_channels,
            stride,
            attention,
            attention_reduction,
            zero_init_last,
            downsample,
            avg_down,
            drop_path,
            norm,
            norm_eps,
            norm_momentum,
            "bn3",
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))  # (B, width, H, W)
        out = self.relu(self.bn2(self.conv2(out)))  # (B, width, H', W')
        out = self.bn3(self.conv3(out))  # (B, channels * expansion, H', W')
        return self._merge(x, out)


def _sk_reduction(attention_reduction: int) -> int:
    # Kept equal to nasblocks.blocks.residual.sk_reduction (blocks stay importable without torch).
    return max(1, attention_reduction // 4)


class ShuffleNetV2Unit(nn.Module):
    """torchvision's ShuffleNetV2 ``InvertedResidual``: children ``branch1`` and ``branch2``.

    Stride 1: ``branch1`` is an empty Sequential (the identity) applied to the first half of
    the channels, ``branch2`` to the second. Stride 2: both branches see the whole input.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        half = out_channels // 2
        if stride == 1:
            if in_channels != out_channels or out_channels % 2:
                raise ValueError("a stride-1 unit needs in_channels == out_channels, even")
            # x[:, 0:half] and x[:, half:] are torchvision's x.chunk(2, dim=1).
            self.first, self.second = (0, half), (half, in_channels)
            self.branch1 = nn.Sequential()
        else:
            self.first = self.second = (0, in_channels)
            self.branch1 = nn.Sequential(
                conv2d(in_channels, in_channels, 3, stride, groups=in_channels),
                nn.BatchNorm2d(in_channels),
                conv2d(in_channels, half, 1),
                nn.BatchNorm2d(half),
                nn.ReLU(inplace=True),
            )
        branch2_in = self.second[1] - self.second[0]
        self.branch2 = nn.Sequential(
            conv2d(branch2_in, half, 1),
            nn.BatchNorm2d(half),
            nn.ReLU(inplace=True),
            conv2d(half, half, 3, stride, groups=half),
            nn.BatchNorm2d(half),
            conv2d(half, half, 1),
            nn.BatchNorm2d(half),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = x[:, self.first[0] : self.first[1]]
        x2 = x[:, self.second[0] : self.second[1]]
        out = torch.cat((self.branch1(x1), self.branch2(x2)), dim=1)  # (B, C_out, H', W')
        return channel_shuffle(out, 2)


class ShuffleNetV1Unit(nn.Module):
    """ShuffleNet v1 unit: relu(merge(shortcut(x), bn3(gconv3(bn2(dw(shuffle(gconv1 ...))))))).

    ``merge`` is an addition at stride 1 and a concatenation (after a 3x3 average pool in
    ``shortcut``) at stride 2, as in the paper's Figure 2 (b) and (c).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        groups: int = 3,
        first_group: bool = True,
        bottleneck_ratio: float = 0.25,
    ) -> None:
        super().__init__()
        mid = int(out_channels * bottleneck_ratio)
        branch = out_channels - (in_channels if stride == 2 else 0)
        self.groups = groups
        self.conv1 = conv2d(in_channels, mid, 1, groups=groups if first_group else 1)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = conv2d(mid, mid, 3, stride, groups=mid)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = conv2d(mid, branch, 1, groups=groups)
        self.bn3 = nn.BatchNorm2d(branch)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.AvgPool2d(3, stride, 1) if stride == 2 else nn.Identity()
        self.merge = Concat() if stride == 2 else Add()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))  # (B, mid, H, W)
        out = channel_shuffle(out, self.groups)
        out = self.bn2(self.conv2(out))  # (B, mid, H', W')
        out = self.bn3(self.conv3(out))  # (B, out - in at stride 2, H', W')
        return self.relu(self.merge(self.shortcut(x), out))  # (B, C_out, H', W')
