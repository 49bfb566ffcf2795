"""RepVGG's block and its re-parameterisation (Ding et al. 2021; timm's ``RepVggBlock``)."""

from __future__ import annotations

import torch
from torch import nn


class ConvBN(nn.Module):
    """A bias-free conv then a BN (timm's ``ConvNormAct`` without activation)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, groups: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


def _fuse(kernel: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernel and bias of conv-then-``bn`` in eval mode, as one conv."""
    assert bn.running_var is not None and bn.running_mean is not None
    scale = bn.weight / (bn.running_var + bn.eps).sqrt()
    return kernel * scale.reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * scale


class RepVGGBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, groups: int = 1):
        super().__init__()
        self.groups, self.stride = groups, stride
        self.identity: nn.Module | None = (
            nn.BatchNorm2d(out_channels) if in_channels == out_channels and stride == 1 else None
        )
        self.conv_kxk = ConvBN(in_channels, out_channels, 3, stride, groups)
        self.conv_1x1 = ConvBN(in_channels, out_channels, 1, stride, groups)
        self.reparam_conv: nn.Module | None = None
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reparam_conv is not None:
            return self.act(self.reparam_conv(x))
        out = self.conv_kxk(x) + self.conv_1x1(x)  # (B, C_out, H', W')
        if self.identity is not None:
            out = out + self.identity(x)
        return self.act(out)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fuse the branches into ``reparam_conv`` (one 3x3 conv with bias): equal outputs in
        eval mode, a plain VGG-style layer for deployment. Idempotent."""
        if self.reparam_conv is not None:
            return
        conv = self.conv_kxk.conv
        kernel, bias = _fuse(conv.weight, self.conv_kxk.bn)
        k1, b1 = _fuse(
            nn.functional.pad(self.conv_1x1.conv.weight, [1, 1, 1, 1]), self.conv_1x1.bn
        )
        kernel, bias = kernel + k1, bias + b1
        if isinstance(self.identity, nn.BatchNorm2d):
            per_group = conv.in_channels // self.groups
            eye = torch.zeros_like(conv.weight)
            for i in range(conv.in_channels):
                eye[i, i % per_group, 1, 1] = 1.0
            ki, bi = _fuse(eye, self.identity)
            kernel, bias = kernel + ki, bias + bi
        fused = nn.Conv2d(
            conv.in_channels, conv.out_channels, 3, self.stride, 1, groups=self.groups, bias=True
        ).to(kernel.device, kernel.dtype)
        fused.weight.copy_(kernel)
        assert fused.bias is not None
        fused.bias.copy_(bias)
        del self.conv_kxk, self.conv_1x1
        self.identity = None
        self.reparam_conv = fused


def reparameterize(model: nn.Module) -> nn.Module:
    """Fuse every re-parameterisable block of ``model`` (RepVGG's) in place; returns it.

    >>> deploy = nasblocks.reparameterize(nasblocks.build("repvgg_a0").eval())
    """
    for module in list(model.modules()):
        fuse = getattr(module, "reparameterize", None)
        if module is not model and callable(fuse):
            fuse()
    return model
