"""Arithmetic shared by the shape contracts (no torch)."""

from __future__ import annotations

from collections.abc import Sequence

from nasblocks.errors import ShapeError
from nasblocks.registry import Shape

IntOrPair = int | tuple[int, int] | list[int]
"""A size as a spec gives it: YAML writes a pair as a list."""

Size2 = int | tuple[int, int]
"""A size as torch's 2-D layers type it (``torch.nn.common_types._size_2_t``)."""


def pair(value: IntOrPair) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    a, b = value
    return (int(a), int(b))


def as_size(value: IntOrPair) -> Size2:
    """``value`` for a torch layer: an int as is, a list or tuple as a pair (which torch's
    layers make of it anyway)."""
    return value if isinstance(value, int) else pair(value)


def feature_map(in_shape: Shape, kind: str) -> tuple[int, int, int]:
    """Check ``in_shape`` is ``(C, H, W)`` and return it."""
    if len(in_shape) != 3:
        raise ShapeError(
            f"{kind} expects a (C, H, W) feature map, got a flat vector of {in_shape[0]} features"
        )
    c, h, w = in_shape
    return c, h, w


def vector(in_shape: Shape, kind: str) -> int:
    """Check ``in_shape`` is a flat ``(F,)`` vector and return F."""
    if len(in_shape) != 1:
        raise ShapeError(
            f"{kind} expects a flat feature vector, got a {'x'.join(map(str, in_shape))} "
            "feature map (add a flatten or a global pool first)"
        )
    return in_shape[0]


def conv_size(
    size: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Output length of a convolution or pooling window along one axis (PyTorch's formula)."""
    span = dilation * (kernel - 1) + 1
    # PyTorch's pooling_output_shape: floor division, ceil_mode adds stride - 1, so a
    # ceil_mode window may overhang the input (kernel 2 on a 1-pixel map gives 1).
    out = (size + 2 * padding - span + (stride - 1 if ceil_mode else 0)) // stride + 1
    # PyTorch: the last pooling window must start inside the input or the left padding.
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return max(out, 0)


def conv_shape(
    in_shape: Shape,
    out_channels: int,
    kernel_size: IntOrPair,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    ceil_mode: bool = False,
    kind: str = "conv",
) -> Shape:
    """``(C, H, W)`` after a 2-D window op; raises when the map collapses to nothing."""
    _, h, w = feature_map(in_shape, kind)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = map(pair, (kernel_size, stride, padding, dilation))
    oh = conv_size(h, kh, sh, ph, dh, ceil_mode)
    ow = conv_size(w, kw, sw, pw, dw, ceil_mode)
    if oh < 1 or ow < 1:
        raise ShapeError(
            f"spatial size collapses: a {h}x{w} input through kernel {kh}x{kw}, stride "
            f"{sh}x{sw}, padding {ph}x{pw}, dilation {dh}x{dw} gives {oh}x{ow}",
            field="kernel_size",
        )
    return (out_channels, oh, ow)


def keep_size(in_shape: Shape, channels: int, kind: str) -> Shape:
    """``(channels, H, W)``: the contract of a block whose branches all keep the input's size."""
    _, h, w = feature_map(in_shape, kind)
    return (channels, h, w)


def same_padding(kernel_size: IntOrPair, dilation: IntOrPair = 1) -> tuple[int, int]:
    """Padding that keeps the size at stride 1 (torchvision's convention for odd kernels)."""
    (kh, kw), (dh, dw) = pair(kernel_size), pair(dilation)
    return ((kh - 1) // 2 * dh, (kw - 1) // 2 * dw)


def resolve_padding(
    padding: IntOrPair | str | None, kernel_size: IntOrPair, dilation: IntOrPair = 1
) -> tuple[int, int]:
    """``None`` or ``'same'`` -> :func:`same_padding`; otherwise the given padding as a pair."""
    if padding is None or padding == "same":
        return same_padding(kernel_size, dilation)
    if isinstance(padding, str):  # the specs allow no other string
        raise ValueError(f"padding {padding!r}: expected 'same', an int or a pair")
    return pair(padding)


def check_groups(in_channels: int, out_channels: int, groups: int) -> None:
    if in_channels % groups:
        raise ShapeError(
            f"{in_channels} input channels are not divisible by {groups} groups", field="groups"
        )
    if out_channels % groups:
        raise ShapeError(
            f"{out_channels} output channels are not divisible by {groups} groups", field="groups"
        )


def check_divisible(value: int, divisor: int, what: str, field: str | None = None) -> None:
    if divisor <= 0 or value % divisor:
        raise ShapeError(f"{what} {value} is not divisible by {divisor}", field=field)


def same_spatial(in_shapes: Sequence[Shape], kind: str) -> tuple[int, int]:
    """All inputs are feature maps of one H x W; return it."""
    sizes = {tuple(s[1:]) for s in in_shapes}
    if any(len(s) != 3 for s in in_shapes) or len(sizes) != 1:
        shown = ", ".join("x".join(map(str, s)) for s in in_shapes)
        raise ShapeError(f"{kind} inputs must share H x W, got {shown}")
    (h, w) = next(iter(sizes))
    return h, w


def make_divisible(
    value: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9
) -> int:
    """Round a channel count to a multiple of ``divisor`` without losing more than 10%
    (``round_limit`` 0: to the nearest multiple, however far).

    The rounding of MobileNet / EfficientNet (torchvision's ``_make_divisible``, timm's
    ``make_divisible``).
    """
    if min_value is None:
        min_value = divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < round_limit * value:
        new += divisor
    return new
