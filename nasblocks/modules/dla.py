"""Deep Layer Aggregation's tree in timm's layout: see :mod:`nasblocks.blocks.dla`."""

from __future__ import annotations

import torch
from torch import nn

from nasblocks.blocks.dla import bottleneck_width


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1):
    conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
    return conv, nn.BatchNorm2d(cout)


class DlaBasic(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut), both 3x3 (timm's ``DlaBasic``)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(cin, cout, 3, stride)
        self.relu = nn.ReLU(inplace=True)
        self.conv2, self.bn2 = _conv_bn(cout, cout, 3)

    def forward(self, x: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + shortcut)


class DlaBottleneck(nn.Module):
    """1x1, grouped 3x3 (stride), 1x1, plus the shortcut, then ReLU (timm's ``DlaBottleneck``)."""

    def __init__(
        self, cin: int, cout: int, stride: int, cardinality: int, base_width: int
    ) -> None:
        super().__init__()
        mid = bottleneck_width(cout, cardinality, base_width)
        self.conv1, self.bn1 = _conv_bn(cin, mid, 1)
        self.conv2, self.bn2 = _conv_bn(mid, mid, 3, stride, cardinality)
        self.conv3, self.bn3 = _conv_bn(mid, cout, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + shortcut)


class DlaRoot(nn.Module):
    """1x1 conv-BN over the concatenated inputs, plus the first with ``residual``, then ReLU."""

    def __init__(self, cin: int, cout: int, residual: bool) -> None:
        super().__init__()
        self.conv, self.bn = _conv_bn(cin, cout, 1)
        self.relu = nn.ReLU(inplace=True)
        self.residual = residual

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        out = self.bn(self.conv(torch.cat(xs, 1)))  # (B, cout, H, W)
        if self.residual:
            out = out + xs[0]
        return self.relu(out)


class DlaTree(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        levels: int = 1,
        stride: int = 2,
        block: str = "basic",
        level_root: bool = False,
        root_residual: bool = False,
        cardinality: int = 1,
        base_width: int = 64,
        root_channels: int = 0,
    ) -> None:
        super().__init__()
        cin, cout = in_channels, out_channels
        root = (root_channels or 2 * cout) + (cin if level_root else 0)
        self.downsample: nn.Module = nn.MaxPool2d(stride, stride) if stride > 1 else nn.Identity()
        self.project: nn.Module = nn.Identity()
        self.root: DlaRoot | None = None
        self.tree1: nn.Module
        self.tree2: nn.Module
        if levels == 1:
            if block == "basic":
                self.tree1, self.tree2 = DlaBasic(cin, cout, stride), DlaBasic(cout, cout, 1)
            else:
                self.tree1 = DlaBottleneck(cin, cout, stride, cardinality, base_width)
                self.tree2 = DlaBottleneck(cout, cout, 1, cardinality, base_width)
            if cin != cout:
                self.project = nn.Sequential(*_conv_bn(cin, cout, 1))
            self.root = DlaRoot(root, cout, root_residual)
        else:
            args = (block, False, root_residual, cardinality, base_width)
            self.tree1 = DlaTree(cin, cout, levels - 1, stride, *args)
            self.tree2 = DlaTree(cout, cout, levels - 1, 1, *args, root_channels=root + cout)
        self.level_root = level_root

    def forward(self, x: torch.Tensor, children: list[torch.Tensor] | None = None) -> torch.Tensor:
        """``children``: the outputs of the subtrees above, aggregated by the deepest root."""
        bottom = self.downsample(x)  # (B, C_in, H / stride, W / stride)
        children = [*(children or []), *([bottom] if self.level_root else [])]
        if self.root is not None:  # one level: two blocks and the root
            x1 = self.tree1(x, self.project(bottom))
            return self.root([self.tree2(x1, x1), x1, *children])
        x1 = self.tree1(x)
        return self.tree2(x1, [*children, x1])
