"""U-Net parts laid out like the common ``unetConv2`` / ``unetUp`` reference code.

Each repeat of the double conv is ``nn.Sequential(conv, [norm,] relu)`` named ``conv1``..
``convN``, so parameter names and counts follow the reference (``conv1.0.weight``,
``conv1.1.running_mean``...).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from nasblocks.errors import ShapeError
from nasblocks.modules.core import ConvNormAct


class DoubleConv(nn.Sequential):
    """``n`` times conv -> [norm] -> activation, children ``conv1``..``convN``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        norm: str = "batch",
        kernel_size: int | tuple[int, int] | list[int] = 3,
        stride: int | tuple[int, int] | list[int] = 1,
        padding: int | tuple[int, int] | list[int] = 1,
        n: int = 2,
        bias: bool = True,
        norm_eps: float = 1e-5,
        norm_momentum: float = 0.1,
        activation: str = "relu",
    ) -> None:
        repeats: OrderedDict[str, nn.Module] = OrderedDict()
        for i in range(1, n + 1):
            layers = ConvNormAct(
                in_channels,
                out_channels,
                kernel_size,
                stride,
                padding,
                bias=bias,
                norm=norm,
                norm_eps=norm_eps,
                norm_momentum=norm_momentum,
                activation=activation,
            ).children()
            # Drop the switched-off parts so indices (and keys) match the reference's
            # Sequential(conv, relu) when there is no norm.
            repeats[f"conv{i}"] = nn.Sequential(
                *(m for m in layers if not isinstance(m, nn.Identity))
            )
            in_channels = out_channels
        super().__init__(repeats)


class UNetDown(nn.Module):
    """2x2 max pool then a double conv (children ``maxpool``, ``conv``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        norm: str = "batch",
        norm_eps: float = 1e-5,
        norm_momentum: float = 0.1,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.maxpool = nn.MaxPool2d(kernel_size=2)
        self.conv = DoubleConv(
            in_channels,
            out_channels,
            norm,
            norm_eps=norm_eps,
            norm_momentum=norm_momentum,
            activation=activation,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.maxpool(x))  # (B, out_channels, H // 2, W // 2)


class UNetUp(nn.Module):
    """Upsample the deep input (``up``), concatenate the skip, double conv (``conv``)."""

    def __init__(
        self,
        in_channels: list[int],
        out_channels: int,
        deconv: bool = False,
        n_concat: int = 2,
        norm: str = "none",
        norm_eps: float = 1e-5,
        norm_momentum: float = 0.1,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        deep, skip = in_channels
        conv_in = deep + (n_concat - 2) * out_channels  # the reference's conv input
        if out_channels + skip != conv_in:
            raise ShapeError(
                f"unet_up: the upsampled {out_channels} channels plus the {skip} skip channels "
                f"do not make the double conv's {conv_in} inputs",
                field="out_channels",
            )
        if deconv:
            self.up: nn.Module = nn.ConvTranspose2d(deep, out_channels, kernel_size=2, stride=2)
        else:
            self.up = nn.Sequential(
                nn.UpsamplingBilinear2d(scale_factor=2), nn.Conv2d(deep, out_channels, 1)
            )
        self.conv = DoubleConv(
            conv_in,
            out_channels,
            norm,
            norm_eps=norm_eps,
            norm_momentum=norm_momentum,
            activation=activation,
        )

    def forward(self, high: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.up(high), skip], dim=1)  # (B, conv_in, 2H, 2W)
        return self.conv(x)  # (B, out_channels, 2H, 2W)
