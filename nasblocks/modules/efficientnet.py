"""timm's EfficientNet-family modules, child for child: ``state_dict`` keys match timm's.

``BatchNormAct2d`` (a BatchNorm2d with an ``act`` child), ``MixedConv2d`` (an
``nn.ModuleDict`` of convs ``0``, ``1`` ...), the EfficientNet ``SqueezeExcite``
(``conv_reduce`` / ``conv_expand``), ``DepthwiseSeparableConv``, ``InvertedResidual`` and
``ConvBnAct``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from nasblocks.blocks.efficientnet import mid_channels, se_channels, split_channels, timm_padding
from nasblocks.modules.common import DropPath, make_activation
from nasblocks.modules.mobile import _AddInput, _OutputOnly


class BatchNormAct2d(nn.BatchNorm2d):
    """BatchNorm2d then the activation (child ``act``; ``drop`` an Identity, as in timm)."""

    def __init__(
        self,
        in_channels: int,
        activation: str = "relu",
        norm_eps: float = 1e-5,
        norm_momentum: float = 0.1,
    ) -> None:
        super().__init__(in_channels, eps=norm_eps, momentum=norm_momentum)
        self.drop = nn.Identity()
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # nn.BatchNorm2d's forward without its input-rank check, which fx cannot trace (as timm)
        if self.training and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
        x = F.batch_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            self.training,
            self.momentum or 0.0,
            self.eps,
        )
        return self.act(self.drop(x))


class MixedConv2d(nn.ModuleDict):
    """One bias-free conv per kernel size on its share of the channels, concatenated."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: list[int],
        stride: int = 1,
        depthwise: bool = False,
    ) -> None:
        super().__init__()
        ins = split_channels(in_channels, len(kernel_size))
        outs = split_channels(out_channels, len(kernel_size))
        for i, (k, cin, cout) in enumerate(zip(kernel_size, ins, outs, strict=True)):
            groups = cin if depthwise else 1
            pad = timm_padding(k, stride)
            self.add_module(
                str(i), nn.Conv2d(cin, cout, k, stride, pad, groups=groups, bias=False)
            )
        self.splits = ins

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.splits, 1)
        return torch.cat([conv(parts[i]) for i, conv in enumerate(self.values())], 1)


def create_conv(
    in_channels: int,
    out_channels: int,
    kernel_size: int | list[int],
    stride: int = 1,
    depthwise: bool = False,
) -> nn.Module:
    """timm's ``create_conv2d``: an ``nn.Conv2d`` for an int kernel, a MixConv for a list."""
    if isinstance(kernel_size, list):
        return MixedConv2d(in_channels, out_channels, kernel_size, stride, depthwise)
    groups = in_channels if depthwise else 1
    pad = timm_padding(kernel_size, stride)
    return nn.Conv2d(
        in_channels, out_channels, kernel_size, stride, pad, groups=groups, bias=False
    )


class SqueezeExcite(nn.Module):
    """EfficientNet's SE: mean over H x W, 1x1 conv to ``hidden``, act, 1x1 conv, a gate
    (sigmoid; GhostNet's is a hard sigmoid)."""

    def __init__(self, channels: int, hidden: int, activation: str, gate: str = "sigmoid") -> None:
        super().__init__()
        self.conv_reduce = nn.Conv2d(channels, hidden, 1, bias=True)
        self.act1 = make_activation(activation)
        self.conv_expand = nn.Conv2d(hidden, channels, 1, bias=True)
        self.gate = make_activation(gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)  # (B, C, 1, 1)
        return x * self.gate(self.conv_expand(self.act1(self.conv_reduce(s))))


def _se(channels: int, hidden: int, activation: str, on: bool) -> nn.Module:
    return SqueezeExcite(channels, hidden, activation) if on else nn.Identity()


def _residual(has_skip: bool, drop_path: float) -> tuple[nn.Module, nn.Module]:
    """The shortcut (add the input, or pass the branch on) and timm's ``drop_path`` child."""
    skip = _AddInput() if has_skip else _OutputOnly()
    return skip, DropPath(drop_path) if has_skip and drop_path else nn.Identity()


class DepthwiseSeparableConv(nn.Module):
    """timm's ``DepthwiseSeparableConv``: conv_dw, bn1, se, conv_pw, bn2 [+ input]."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | list[int] = 3,
        stride: int = 1,
        project_kernel_size: int | list[int] = 1,
        se: float = 0.0,
        project_activation: bool = False,
        residual: bool = True,
        drop_path: float = 0.0,
        activation: str = "relu",
        norm_eps: float = 1e-5,
        norm_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        bn = {"norm_eps": norm_eps, "norm_momentum": norm_momentum}
        self.conv_dw = create_conv(in_channels, in_channels, kernel_size, stride, depthwise=True)
        self.bn1 = BatchNormAct2d(in_channels, activation, **bn)
        self.se = _se(in_channels, se_channels(in_channels, se), activation, se > 0)
        self.conv_pw = create_conv(in_channels, out_channels, project_kernel_size)
        self.bn2 = BatchNormAct2d(out_channels, activation if project_activation else "none", **bn)
        has_skip = residual and stride == 1 and in_channels == out_channels
        self.skip, self.drop_path = _residual(has_skip, drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.se(self.bn1(self.conv_dw(x)))  # (B, C_in, H', W')
        out = self.bn2(self.conv_pw(out))  # (B, C_out, H', W')
        return self.skip(x, self.drop_path(out))


class InvertedResidual(nn.Module):
    """timm's ``InvertedResidual`` (MBConv): conv_pw, bn1, conv_dw, bn2, se, conv_pwl, bn3
    [+ input]."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | list[int] = 3,
        stride: int = 1,
        expand_ratio: float = 6,
        expand_kernel_size: int | list[int] = 1,
        project_kernel_size: int | list[int] = 1,
        se: float = 0.0,
        residual: bool = True,
        drop_path: float = 0.0,
        activation: str = "relu",
        norm_eps: float = 1e-5,
        norm_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        mid = mid_channels(in_channels, expand_ratio)
        bn = {"norm_eps": norm_eps, "norm_momentum": norm_momentum}
        self.conv_pw = create_conv(in_channels, mid, expand_kernel_size)
        self.bn1 = BatchNormAct2d(mid, activation, **bn)
        self.conv_dw = create_conv(mid, mid, kernel_size, stride, depthwise=True)
        self.bn2 = BatchNormAct2d(mid, activation, **bn)
        self.se = _se(mid, se_channels(mid, se, expand_ratio), activation, se > 0)
        self.conv_pwl = create_conv(mid, out_channels, project_kernel_size)
        self.bn3 = BatchNormAct2d(out_channels, "none", **bn)
        has_skip = residual and stride == 1 and in_channels == out_channels
        self.skip, self.drop_path = _residual(has_skip, drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv_dw(self.bn1(self.conv_pw(x))))  # (B, mid, H', W')
        out = self.bn3(self.conv_pwl(self.se(out)))  # (B, C_out, H', W')
        return self.skip(x, self.drop_path(out))


class ConvBnAct(nn.Module):
    """timm's ``ConvBnAct``: conv, bn1 (BN then the activation)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | list[int] = 1,
        stride: int = 1,
        activation: str = "relu",
        norm_eps: float = 1e-5,
        norm_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        self.conv = create_conv(in_channels, out_channels, kernel_size, stride)
        self.bn1 = BatchNormAct2d(out_channels, activation, norm_eps, norm_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn1(self.conv(x))
