"""Analytic costs: parameters and multiply-accumulates of a block from its input shape.

The counting conventions are those of :mod:`nasblocks.analysis` (and of PyTorch's
``FlopCounterMode`` halved): a convolution or a linear layer costs one multiply-accumulate per
weight per output position, biases, normalization, activations, pooling and additions cost
none. pycls's ``complexity()`` (Radosavovic et al., 2020) computes AnyNet/RegNet costs the
same way. The conformance suite checks every block's analytic cost against the module counted.
"""

from __future__ import annotations

from nasblocks.blocks._shapes import IntOrPair, pair

Cost = tuple[int, int]
"""``(parameters, multiply-accumulates)`` of one forward of one sample."""

FREE: Cost = (0, 0)


def conv(
    in_channels: int,
    out_channels: int,
    kernel_size: IntOrPair,
    out_shape: tuple[int, ...],
    groups: int = 1,
    bias: bool = False,
) -> Cost:
    """A 2-D convolution producing ``out_shape`` ``(C, H, W)``."""
    kh, kw = pair(kernel_size)
    weights = out_channels * (in_channels // groups) * kh * kw
    return weights + (out_channels if bias else 0), weights * out_shape[1] * out_shape[2]


def linear(in_features: int, out_features: int, bias: bool = True) -> Cost:
    weights = in_features * out_features
    return weights + (out_features if bias else 0), weights


def norm(kind: str | None, channels: int, affine: bool = True) -> Cost:
    """Batch, group and (affine) instance norm: a scale and a shift per channel."""
    return (2 * channels if affine and kind not in (None, "none") else 0), 0


def squeeze_excite(channels: int, reduction: int) -> Cost:
    """SE's two bias-free linears C -> C / r -> C on the pooled vector."""
    hidden = channels // reduction
    return total(linear(channels, hidden, bias=False), linear(hidden, channels, bias=False))


def total(*costs: Cost) -> Cost:
    return sum(c[0] for c in costs), sum(c[1] for c in costs)
