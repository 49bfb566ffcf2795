"""GoogLeNet and Inception v3 modules, child for child like torchvision's.

Every torchvision ``BasicConv2d`` (conv without bias, ``bn``, ReLU) is a
:class:`~nasblocks.modules.core.ConvNormAct` (``conv``, ``bn``, ``act``; the activation has no
parameters), so ``state_dict`` keys are identical and torchvision's weights load strictly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from nasblocks.modules.common import NormActKwargs, make_activation
from nasblocks.modules.core import ConvNormAct


class _Basic:
    """Builds the ``BasicConv2d`` equivalents of one module with its norm/activation choice."""

    def __init__(self, norm: str, norm_eps: float, norm_momentum: float, activation: str):
        self.kw = NormActKwargs(
            norm=norm, norm_eps=norm_eps, norm_momentum=norm_momentum, activation=activation
        )

    def __call__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
    ) -> ConvNormAct:
        # bias=None: no conv bias under a norm, like BasicConv2d's bias=False.
        return ConvNormAct(
            in_channels, out_channels, kernel_size, stride, padding, bias=None, **self.kw
        )


class Inception(nn.Module):
    """GoogLeNet's module: ``branch1``..``branch4`` concatenated (torchvision's layout)."""

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        branch3_kernel_size: int = 5,
        norm: str = "batch",
        norm_eps: float = 1e-3,
        norm_momentum: float = 0.1,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        basic = _Basic(norm, norm_eps, norm_momentum, activation)
        k3 = branch3_kernel_size
        self.branch1 = basic(in_channels, ch1x1, 1)
        self.branch2 = nn.Sequential(
            basic(in_channels, ch3x3red, 1), basic(ch3x3red, ch3x3, 3, padding=1)
        )
        self.branch3 = nn.Sequential(
            basic(in_channels, ch5x5red, 1), basic(ch5x5red, ch5x5, k3, padding=k3 // 2)
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            basic(in_channels, pool_proj, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return torch.cat(branches, 1)  # (B, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W)


class InceptionAux(nn.Module):
    """GoogLeNet's auxiliary head: ``conv``, ``fc1``, ``fc2``, ``dropout``."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        dropout: float = 0.7,
        norm: str = "batch",
        norm_eps: float = 1e-3,
        norm_momentum: float = 0.1,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.conv = _Basic(norm, norm_eps, norm_momentum, activation)(in_channels, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(x, (4, 4))  # (B, C, 4, 4)
        x = torch.flatten(self.conv(x), 1)  # (B, 2048)
        x = self.dropout(self.act(self.fc1(x)))  # (B, 1024)
        return self.fc2(x)  # (B, num_classes)


class InceptionA(nn.Module):
    """Inception v3's 35x35 module (torchvision ``InceptionA``)."""

    def __init__(
        self,
        in_channels: int,
        pool_features: int,
        norm: str = "batch",
        norm_eps: float = 1e-3,
        norm_momentum: float = 0.1,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        basic = _Basic(norm, norm_eps, norm_momentum, activation)
        self.branch1x1 = basic(in_channels, 64, 1)

        self.branch5x5_1 = basic(in_channels, 48, 1)
        self.branch5x5_2 = basic(48, 64, 5, padding=2)

        self.branch3x3dbl_1 = basic(in_channels, 64, 1)
        self.branch3x3dbl_2 = basic(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = basic(96, 96, 3, padding=1)

        self.branch_pool = basic(in_channels, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return torch.cat([b1, b5, b3, bp], 1)  # (B, 224 + pool_features, H, W)


class InceptionB(nn.Module):
    """Inception v3's 35 -> 17 grid reduction (torchvision ``InceptionB``)."""

    def __init__(
        self,
        in_channels: int,
        norm: str = "batch",
        norm_eps: float = 1e-3,
        norm_momentum: float = 0.1,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        basic = _Basic(norm, norm_eps, norm_momentum, activation)
        self.branch3x3 = basic(in_channels, 384, 3, stride=2)

        self.branch3x3dbl_1 = basic(in_channels, 64, 1)
        self.branch3x3dbl_2 = basic(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = basic(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, bd, bp], 1)  # (B, 480 + C, (H - 3) // 2 + 1, (W - 3) // 2 + 1)


class InceptionC(nn.Module):
    """Inception v3's 17x17 module with 1x7 / 7x1 factorized convs (torchvision ``InceptionC``)."""

    def __init__(
        self,
        in_channels: int,
        channels_7x7: int,
        norm: str = "batch",
        norm_eps: float = 1e-3,
        norm_momentum: float = 0.1,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        basic = _Basic(norm, norm_eps, norm_momentum, activation)
        c7 = channels_7x7
        self.branch1x1 = basic(in_channels, 192, 1)

        self.branch7x7_1 = basic(in_channels, c7, 1)
        self.branch7x7_2 = basic(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = basic(c7, 192, (7, 1), padding=(3, 0))

        self.branch7x7dbl_1 = basic(in_channels, c7, 1)
        self.branch7x7dbl_2 = basic(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = basic(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = basic(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = basic(c7, 192, (1, 7), padding=(0, 3))

        self.branch_pool = basic(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        bd = self.branch7x7dbl_3(self.branch7x7dbl_2(bd))
        bd = self.branch7x7dbl_5(self.branch7x7dbl_4(bd))
        bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return torch.cat([b1, b7, bd, bp], 1)  # (B, 768, H, W)


class InceptionD(nn.Module):
    """Inception v3's 17 -> 8 grid reduction (torchvision ``InceptionD``)."""

    def __init__(
        self,
        in_channels: int,
        norm: str = "batch",
        norm_eps: float = 1e-3,
        norm_momentum: float = 0.1,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        basic = _Basic(norm, norm_eps, norm_momentum, activation)
        self.branch3x3_1 = basic(in_channels, 192, 1)
        self.branch3x3_2 = basic(192, 320, 3, stride=2)

        self.branch7x7x3_1 = basic(in_channels, 192, 1)
        self.branch7x7x3_2 = basic(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = basic(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = basic(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_2(self.branch7x7x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(b7))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], 1)  # (B, 512 + C, (H - 3) // 2 + 1, (W - 3) // 2 + 1)


class InceptionE(nn.Module):
    """Inception v3's 8x8 module with split 1x3 / 3x1 outputs (torchvision ``InceptionE``)."""

    def __init__(
        self,
        in_channels: int,
        norm: str = "batch",
        norm_eps: float = 1e-3,
        norm_momentum: float = 0.1,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        basic = _Basic(norm, norm_eps, norm_momentum, activation)
        self.branch1x1 = basic(in_channels, 320, 1)

        self.branch3x3_1 = basic(in_channels, 384, 1)
        self.branch3x3_2a = basic(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = basic(384, 384, (3, 1), padding=(1, 0))

        self.branch3x3dbl_1 = basic(in_channels, 448, 1)
        self.branch3x3dbl_2 = basic(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = basic(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = basic(384, 384, (3, 1), padding=(1, 0))

        self.branch_pool = basic(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)  # (B, 768, H, W)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)  # (B, 768, H, W)
        bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return torch.cat([b1, b3, bd, bp], 1)  # (B, 2048, H, W)


class InceptionV3Aux(nn.Module):
    """Inception v3's auxiliary head: ``conv0``, ``conv1``, ``fc`` (torchvision ``InceptionAux``).

    ``conv1.stddev`` and ``fc.stddev`` are torchvision's hints for its truncated-normal init,
    which the ``inception`` init scheme reads.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        norm: str = "batch",
        norm_eps: float = 1e-3,
        norm_momentum: float = 0.1,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        basic = _Basic(norm, norm_eps, norm_momentum, activation)
        self.conv0 = basic(in_channels, 128, 1)
        self.conv1 = basic(128, 768, 5)
        self.conv1.stddev = 0.01  # type: ignore[assignment]
        self.fc = nn.Linear(768, num_classes)
        self.fc.stddev = 0.001  # type: ignore[assignment]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(x, kernel_size=5, stride=3)  # (B, C, (H - 5) // 3 + 1, ...)
        x = self.conv1(self.conv0(x))  # (B, 768, h - 4, w - 4)
        x = torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1)  # (B, 768)
        return self.fc(x)  # (B, num_classes)
