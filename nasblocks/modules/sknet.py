"""timm-layout selective-kernel residual blocks (``timm.models.sknet``): see
:mod:`nasblocks.blocks.sknet`."""

from __future__ import annotations

import torch
from torch import nn

from nasblocks.modules.residual import _ResNetBlock

PATHS = 2


class ConvBN(nn.Sequential):
    """timm's ``ConvNormAct`` children: ``conv`` (no bias), ``bn``, then an optional ReLU."""

    def __init__(
        self, cin: int, cout: int, k: int, stride: int = 1, dilation: int = 1, groups: int = 1,
        act: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        pad = ((stride - 1) + dilation * (k - 1)) // 2
        self.conv = nn.Conv2d(cin, cout, k, stride, pad, dilation, groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()


class SKAttention(nn.Module):
    """Softmax weights over the paths from their pooled sum: ``fc_reduce``, ``bn``,
    ``fc_select`` (timm's ``SelectiveKernelAttn``)."""

    def __init__(self, channels: int, attn_channels: int) -> None:
        super().__init__()
        self.fc_reduce = nn.Conv2d(channels, attn_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(attn_channels)
        self.act = nn.ReLU(inplace=True)
        self.fc_select = nn.Conv2d(attn_channels, channels * PATHS, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, paths, C, H, W)
        y = self.fc_select(self.act(self.bn(self.fc_reduce(x.sum(1).mean((2, 3), True)))))
        return y.view(x.shape[0], PATHS, x.shape[2], 1, 1).softmax(dim=1)


class SelectiveKernel(nn.Module):
    """Paths of 3x3 convs with dilations 1 and 2, mixed by :class:`SKAttention`."""

    def __init__(
        self, cin: int, cout: int, stride: int, groups: int, attn_channels: int, split: bool
    ) -> None:
        super().__init__()
        self.split = cin // PATHS if split else 0
        path_in = cin // PATHS if split else cin
        self.paths = nn.ModuleList(
            ConvBN(path_in, cout, 3, stride, 1 + i, min(cout, groups)) for i in range(PATHS)
        )
        self.attn = SKAttention(cout, attn_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.split:  # two paths, each on its half of the input
            halves = torch.split(x, self.split, 1)
            feats = torch.stack([self.paths[0](halves[0]), self.paths[1](halves[1])], 1)
        else:
            feats = torch.stack([p(x) for p in self.paths], 1)  # (B, paths, C, H', W')
        return (feats * self.attn(feats)).sum(1)


class _SKBlock(_ResNetBlock):
    _last = ""
    _expansion = 1

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
        sk_reduction: int = 16,
        sk_divisor: int = 8,
        split_input: bool = False,
        expansion: int | None = None,
    ) -> None:
        super().__init__()
        from nasblocks.blocks.sknet import sk_attn_channels

        out_channels = channels * (expansion or self._expansion)
        width = channels * width_per_group // 64 * groups

        def sk(cin: int, cout: int) -> SelectiveKernel:
            attn = sk_attn_channels(cout, sk_reduction, sk_divisor)
            return SelectiveKernel(cin, cout, stride, groups, attn, split_input)

        self._build(in_channels, channels, width, out_channels, sk)
        self.act = nn.ReLU(inplace=True)
        self._finish_init(
            in_channels, out_channels, stride, attention, attention_reduction, zero_init_last,
            downsample, avg_down, drop_path, norm, norm_eps, norm_momentum, self._last,
        )  # fmt: skip

    def _build(self, cin: int, channels: int, width: int, out_channels: int, sk) -> None:
        """The block's own convs (``sk`` makes a selective-kernel conv); each subclass."""
        raise NotImplementedError

    @property
    def relu(self) -> nn.Module:  # type: ignore[override]
        return self.act

    def post_init(self) -> None:
        bn = self.get_submodule(self._last_norm)
        if self.zero_init_last and isinstance(bn, nn.BatchNorm2d):
            nn.init.zeros_(bn.weight)


class SKBasic(_SKBlock):
    _last = "conv2.bn"

    def _build(self, cin: int, channels: int, width: int, out_channels: int, sk) -> None:
        self.conv1 = sk(cin, channels)
        self.conv2 = ConvBN(channels, out_channels, 3, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._merge(x, self.conv2(self.conv1(x)))


class SKBottleneck(_SKBlock):
    _last = "conv3.bn"
    _expansion = 4

    def _build(self, cin: int, channels: int, width: int, out_channels: int, sk) -> None:
        self.conv1 = ConvBN(cin, width, 1)
        self.conv2 = sk(width, width)
        self.conv3 = ConvBN(width, out_channels, 1, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._merge(x, self.conv3(self.conv2(self.conv1(x))))
