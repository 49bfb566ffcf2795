"""Implementations of the convolution family (see :mod:`nasblocks.blocks.conv`).

torchvision is imported only when a deformable conv is built or traced, so the other blocks
of this family cost no more than ``torch``.
"""

from __future__ import annotations

from typing import TypedDict

import torch
from torch import nn

from nasblocks.blocks._shapes import IntOrPair, as_size, pair, resolve_padding, same_padding
from nasblocks.modules.common import (
    NormActKwargs,
    NormKwargs,
    channel_shuffle,
    conv_bias,
    make_activation,
    make_norm,
)
from nasblocks.modules.core import ConvNormAct

Padding = IntOrPair | str | None


class SeparableConv(nn.Module):
    """Depthwise kxk conv+norm+act, then pointwise 1x1 conv+norm+act (MobileNet v1, Xception)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrPair = 3,
        stride: IntOrPair = 1,
        dilation: IntOrPair = 1,
        norm: str = "batch",
        norm_eps: float = 1e-5,
        norm_momentum: float = 0.1,
        activation: str = "relu",
        depthwise_activation: bool = True,
    ) -> None:
        super().__init__()
        norm_kw = NormKwargs(norm=norm, norm_eps=norm_eps, norm_momentum=norm_momentum)
        self.depthwise = ConvNormAct(
            in_channels,
            in_channels,
            kernel_size,
            stride,
            same_padding(kernel_size, dilation),
            dilation,
            groups=in_channels,
            activation=activation if depthwise_activation else "none",
            **norm_kw,
        )
        self.pointwise = ConvNormAct(
            in_channels, out_channels, 1, 1, 0, activation=activation, **norm_kw
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))  # (B, out_channels, H', W')


class SpatialSeparableConv(nn.Module):
    """1xN conv+norm+act then Nx1 conv+norm+act (Inception-v3's factorized 7x7).

    Each factor strides along its own axis, so the pair has the output size of an NxN conv.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 7,
        stride: IntOrPair = 1,
        mid_channels: int | None = None,
        norm: str = "batch",
        norm_eps: float = 1e-5,
        norm_momentum: float = 0.1,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        mid = mid_channels or out_channels
        k, (sh, sw), p = kernel_size, pair(stride), (kernel_size - 1) // 2
        kw = NormActKwargs(
            norm=norm, norm_eps=norm_eps, norm_momentum=norm_momentum, activation=activation
        )
        self.conv1 = ConvNormAct(in_channels, mid, (1, k), (1, sw), (0, p), **kw)
        self.conv2 = ConvNormAct(mid, out_channels, (k, 1), (sh, 1), (p, 0), **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)  # (B, mid, H, W')
        return self.conv2(x)  # (B, out_channels, H', W')


class ChannelShuffle(nn.Module):
    """:func:`~nasblocks.modules.common.channel_shuffle` as a layer (ShuffleNet)."""

    def __init__(self, in_channels: int, groups: int = 2) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(x, self.groups)  # (B, C, H, W)


class ShuffleConv(nn.Module):
    """Grouped conv+norm+act followed by a channel shuffle over the same groups (ShuffleNet v1)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        groups: int,
        kernel_size: IntOrPair = 1,
        stride: IntOrPair = 1,
        norm: str = "batch",
        norm_eps: float = 1e-5,
        norm_momentum: float = 0.1,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.conv = ConvNormAct(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            same_padding(kernel_size),
            groups=groups,
            norm=norm,
            norm_eps=norm_eps,
            norm_momentum=norm_momentum,
            activation=activation,
        )
        self.shuffle = ChannelShuffle(out_channels, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv(x))  # (B, out_channels, H', W')


def _deform_conv2d(
    x: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor | None,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
) -> torch.Tensor:
    """``torchvision.ops.deform_conv2d``, kept opaque to ``torch.fx``.

    torchvision's function checks the offset shape with a Python ``if`` on tensor sizes,
    which symbolic tracing cannot follow; wrapped, it becomes one ``call_function`` node.
    """
    from torchvision.ops import deform_conv2d

    return deform_conv2d(x, offset, weight, bias, stride, padding, dilation, mask)


torch.fx.wrap("_deform_conv2d")


class _Window(TypedDict):
    """The sliding window shared by a deformable conv and its offset / mask convs."""

    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]


class _NoMask(nn.Module):
    """DCNv1's mask branch: none, so ``deform_conv2d`` skips the modulation."""

    def forward(self, x: torch.Tensor) -> None:
        return None


class DeformConvNormAct(nn.Module):
    """Deformable conv (v1, or v2 when ``modulated``) -> norm -> activation.

    ``conv_offset`` predicts 2 offsets per kernel tap and offset group at every output
    position; it is zero-initialised so the block starts as an ordinary convolution (the
    initialisation of Dai et al. and mmcv). For v2, ``conv_mask`` (a conv then a sigmoid, also
    zero-initialised: every tap starts weighted 0.5) scales each sampled tap.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrPair = 3,
        stride: IntOrPair = 1,
        padding: Padding = None,
        dilation: IntOrPair = 1,
        groups: int = 1,
        offset_groups: int = 1,
        modulated: bool = False,
        bias: bool = False,
        norm: str = "batch",
        norm_eps: float = 1e-5,
        norm_momentum: float = 0.1,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        from torchvision.ops import DeformConv2d

        kh, kw = pair(kernel_size)
        window = _Window(
            kernel_size=(kh, kw),
            stride=pair(stride),
            padding=resolve_padding(padding, kernel_size, dilation),
            dilation=pair(dilation),
        )
        self.conv = DeformConv2d(in_channels, out_channels, groups=groups, bias=bias, **window)
        # Same window as the deformable conv, so offsets and masks match its output size.
        self.conv_offset = nn.Conv2d(in_channels, 2 * offset_groups * kh * kw, **window)
        if modulated:
            mask_conv = nn.Conv2d(in_channels, offset_groups * kh * kw, **window)
            self.conv_mask: nn.Module = nn.Sequential(mask_conv, nn.Sigmoid())
        else:
            self.conv_mask = _NoMask()
        self.bn = make_norm(norm, out_channels, norm_eps, norm_momentum)
        self.act = make_activation(activation)
        self.post_init()

    def post_init(self) -> None:
        """Zero the offset and mask convs (also after a model-level init scheme re-draws them)."""
        for m in (self.conv_offset, *self.conv_mask.children()):
            if isinstance(m, nn.Conv2d):
                nn.init.zeros_(m.weight)
                if m.bias is not None:  # always: the offset and mask convs have a bias
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset = self.conv_offset(x)  # (B, 2 * offset_groups * kh * kw, H', W')
        mask = self.conv_mask(x)  # (B, offset_groups * kh * kw, H', W') in (0, 1), or None
        c = self.conv
        x = _deform_conv2d(x, offset, mask, c.weight, c.bias, c.stride, c.padding, c.dilation)
        return self.act(self.bn(x))  # (B, out_channels, H', W')


class ConvTransposeNormAct(nn.Module):
    """``nn.ConvTranspose2d`` -> norm -> activation (children ``conv``, ``bn``, ``act``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrPair = 2,
        stride: IntOrPair = 2,
        padding: IntOrPair = 0,
        dilation: IntOrPair = 1,
        output_padding: IntOrPair = 0,
        groups: int = 1,
        bias: bool | None = None,
        norm: str = "none",
        norm_eps: float = 1e-5,
        norm_momentum: float = 0.1,
        activation: str = "none",
    ) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(
            in_channels,
            out_channels,
            as_size(kernel_size),
            stride=as_size(stride),
            padding=as_size(padding),
            output_padding=as_size(output_padding),
            groups=groups,
            bias=conv_bias(bias, norm),
            dilation=as_size(dilation),
        )
        self.bn = make_norm(norm, out_channels, norm_eps, norm_momentum)
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))  # (B, out_channels, H', W')


def Upsample(  # noqa: N802  (a factory standing for the class it returns)
    in_channels: int,
    scale_factor: float = 2.0,
    mode: str = "nearest",
    align_corners: bool | None = None,
) -> nn.Upsample:
    return nn.Upsample(scale_factor=scale_factor, mode=mode, align_corners=align_corners)


class DepthwiseConv(ConvNormAct):
    """Depthwise conv+norm+act: ``groups = in_channels``, ``channel_multiplier`` outputs each."""

    def __init__(
        self,
        in_channels: int,
        channel_multiplier: int = 1,
        kernel_size: IntOrPair = 3,
        stride: IntOrPair = 1,
        padding: Padding = None,
        dilation: IntOrPair = 1,
        norm: str = "batch",
        norm_eps: float = 1e-5,
        norm_momentum: float = 0.1,
        activation: str = "relu",
    ) -> None:
        super().__init__(
            in_channels,
            in_channels * channel_multiplier,
            kernel_size,
            stride,
            resolve_padding(padding, kernel_size, dilation),
            dilation,
            groups=in_channels,
            norm=norm,
            norm_eps=norm_eps,
            norm_momentum=norm_momentum,
            activation=activation,
        )
