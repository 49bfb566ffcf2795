"""Pooling blocks: shape contracts against PyTorch, values against functional references."""

from __future__ import annotations

import inspect
import itertools
import math
from functools import partial

import pytest
import torch
import torch.fx
import torch.nn.functional as F

import nasblocks
from nasblocks.errors import ShapeError
from nasblocks.registry import block_spec, create_block, get_block

POOLS = (
    "maxpool",
    "avgpool",
    "adaptive_avgpool",
    "adaptive_maxpool",
    "global_avgpool",
    "global_maxpool",
    "spp",
    "spp_net",
    "reorg",
)


def _torch_shape(fn, size: int) -> tuple[int, ...] | None:
    """Output shape PyTorch computes on a 2 x size x (size + 1) map, or None if it refuses."""
    try:
        return tuple(fn(torch.zeros(1, 2, size, size + 1)).shape[1:])
    except RuntimeError:
        return None


def _spec_shape(kind: str, size: int, **params) -> tuple[int, ...] | None:
    try:
        return block_spec(kind, **params).output_shape((2, size, size + 1))
    except ShapeError:
        return None


# -- maxpool / avgpool ------------------------------------------------------------------------


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_maxpool_shape_matches_pytorch_everywhere(ceil_mode: bool) -> None:
    checked = 0
    for k, s, d, size in itertools.product(range(1, 5), range(1, 4), (1, 2), range(1, 10)):
        for p in range(k // 2 + 1):
            ours = _spec_shape(
                "maxpool",
                size,
                kernel_size=k,
                stride=s,
                padding=p,
                dilation=d,
                ceil_mode=ceil_mode,
            )
            theirs = _torch_shape(
                partial(
                    F.max_pool2d,
                    kernel_size=k,
                    stride=s,
                    padding=p,
                    dilation=d,
                    ceil_mode=ceil_mode,
                ),
                size,
            )
            assert ours == theirs, (k, s, p, d, size, ceil_mode)
            checked += theirs is not None
    assert checked > 300  # the sweep really exercised valid configurations


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_avgpool_shape_matches_pytorch_everywhere(ceil_mode: bool) -> None:
    for k, s, size in itertools.product(range(1, 6), range(1, 4), range(1, 10)):
        for p in range(k // 2 + 1):
            ours = _spec_shape(
                "avgpool", size, kernel_size=k, stride=s, padding=p, ceil_mode=ceil_mode
            )
            theirs = _torch_shape(
                partial(F.avg_pool2d, kernel_size=k, stride=s, padding=p, ceil_mode=ceil_mode),
                size,
            )
            assert ours == theirs, (k, s, p, size, ceil_mode)


def test_googlenet_ceil_mode_chain_matches_torchvision() -> None:
    from torchvision.models import googlenet

    tv = googlenet(weights=None, aux_logits=False, init_weights=False)
    layers = [
        ({"kernel_size": 3, "stride": 2, "ceil_mode": True}, tv.maxpool1, 112, 56),
        ({"kernel_size": 3, "stride": 2, "ceil_mode": True}, tv.maxpool2, 56, 28),
        ({"kernel_size": 3, "stride": 2, "ceil_mode": True}, tv.maxpool3, 28, 14),
        ({"kernel_size": 2, "stride": 2, "ceil_mode": True}, tv.maxpool4, 14, 7),
        # Inception branch 4: stride 1, padding 1, ceil_mode keeps the size.
        ({"kernel_size": 3, "stride": 1, "padding": 1, "ceil_mode": True}, None, 7, 7),
    ]
    for params, theirs, size, expected in layers:
        spec = block_spec("maxpool", **params)
        assert spec.output_shape((3, size, size)) == (3, expected, expected)
        ours = spec.build(3)
        x = torch.randn(1, 3, size, size)
        if theirs is None:
            theirs = tv.inception5b.branch4[0]
        torch.testing.assert_close(ours(x), theirs(x))
        assert ours(x).shape[-1] == expected


def test_window_pool_defaults_follow_pytorch() -> None:
    m = create_block("maxpool", 4, kernel_size=3)
    assert (m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode) == (3, 3, 0, 1, False)
    a = create_block("avgpool", 4, kernel_size=[2, 3], stride=[1, 2])
    assert (a.kernel_size, a.stride, a.count_include_pad) == ((2, 3), (1, 2), True)
    assert block_spec("maxpool", kernel_size=3).output_shape((4, 9, 10)) == (4, 3, 3)


@pytest.mark.parametrize("kind", ["maxpool", "avgpool"])
def test_padding_beyond_half_kernel_is_a_shape_error(kind: str) -> None:
    spec = block_spec(kind, kernel_size=[3, 5], padding=[2, 1])
    with pytest.raises(ShapeError) as err:
        spec.output_shape((2, 16, 16))
    assert err.value.field == "padding"
    with pytest.raises(RuntimeError):  # and PyTorch agrees
        spec.build(2)(torch.zeros(1, 2, 16, 16))
    assert block_spec(kind, kernel_size=4, padding=2).output_shape((2, 8, 8)) == (2, 3, 3)


def test_window_pool_collapse_and_vector_input_are_shape_errors() -> None:
    with pytest.raises(ShapeError) as err:
        block_spec("maxpool", kernel_size=5).output_shape((2, 4, 8))
    assert err.value.field == "kernel_size"
    with pytest.raises(ShapeError, match="feature map"):
        block_spec("avgpool", kernel_size=2).output_shape((16,))


def test_avgpool_count_include_pad_values() -> None:
    x = torch.randn(2, 3, 7, 7)
    for include in (True, False):
        m = create_block(
            "avgpool", 3, kernel_size=3, stride=2, padding=1, count_include_pad=include
        )
        ref = F.avg_pool2d(x, 3, 2, 1, count_include_pad=include)
        torch.testing.assert_close(m(x), ref)
    # the corner window covers 4 real pixels of 9: the divisor is what changes
    excl = create_block("avgpool", 3, kernel_size=3, stride=2, padding=1, count_include_pad=False)
    torch.testing.assert_close(excl(x)[:, :, 0, 0], x[:, :, :2, :2].mean((2, 3)))


# -- adaptive and global pools ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["adaptive_avgpool", "adaptive_maxpool"])
@pytest.mark.parametrize(
    ("output_size", "in_hw", "out_hw"),
    [
        (7, (10, 9), (7, 7)),
        ([5, 7], (8, 9), (5, 7)),
        ([None, 7], (10, 9), (10, 7)),
        ([3, None], (10, 9), (3, 9)),
        (4, (2, 3), (4, 4)),
    ],
)
def test_adaptive_pools_match_torch(kind, output_size, in_hw, out_hw) -> None:
    spec = block_spec(kind, output_size=output_size)
    assert spec.output_shape((4, *in_hw)) == (4, *out_hw)
    x = torch.randn(2, 4, *in_hw)
    fn = F.adaptive_avg_pool2d if kind == "adaptive_avgpool" else F.adaptive_max_pool2d
    y = spec.build(4)(x)
    assert tuple(y.shape) == (2, 4, *out_hw)
    torch.testing.assert_close(
        y, fn(x, tuple(output_size) if isinstance(output_size, list) else output_size)
    )


def test_adaptive_output_size_is_validated() -> None:
    with pytest.raises(ValueError):
        block_spec("adaptive_avgpool", output_size=0)
    with pytest.raises(ValueError):
        block_spec("adaptive_maxpool", output_size=[1, 2, 3])


@pytest.mark.parametrize(
    ("kind", "reduce"), [("global_avgpool", "mean"), ("global_maxpool", "amax")]
)
def test_global_pools(kind: str, reduce: str) -> None:
    x = torch.randn(2, 5, 6, 3)
    expected = getattr(x, reduce)((2, 3))
    spec = block_spec(kind)
    assert spec.output_shape((5, 6, 3)) == (5, 1, 1)
    torch.testing.assert_close(spec.build(5)(x), expected[:, :, None, None])
    flat = block_spec(kind, flatten=True)
    assert flat.output_shape((5, 6, 3)) == (5,)
    torch.testing.assert_close(flat.build(5)(x), expected)
    with pytest.raises(ShapeError):
        flat.output_shape((5,))


# -- SPP (YOLO) -------------------------------------------------------------------------------


def _maxpool_same(x: torch.Tensor, k: int) -> torch.Tensor:
    return F.max_pool2d(x, k, stride=1, padding=k // 2)


def test_spp_parallel_is_yolov3_spp() -> None:
    x = torch.randn(2, 3, 16, 16)
    m = create_block("spp", 3, kernels=[5, 9, 13], mode="parallel")
    ref = torch.cat([x, _maxpool_same(x, 5), _maxpool_same(x, 9), _maxpool_same(x, 13)], 1)
    torch.testing.assert_close(m(x), ref)
    assert torch.equal(create_block("spp", 3)(x), ref)  # parallel is the default


def test_spp_cascade_is_the_seed_spp() -> None:
    x = torch.randn(2, 3, 16, 16)
    m = create_block("spp", 3, kernels=[5, 9, 13], mode="cascade")
    p5 = _maxpool_same(x, 5)
    p9 = _maxpool_same(p5, 9)
    p13 = _maxpool_same(p9, 13)
    torch.testing.assert_close(m(x), torch.cat([x, p5, p9, p13], 1))
    # cascaded stride-1 max pools add up their windows: 5, then 5+9-1, then 5+9+13-2
    parallel = create_block("spp", 3, kernels=[5, 13, 25])
    torch.testing.assert_close(m(x), parallel(x))


def test_spp_modes_differ() -> None:
    x = torch.randn(1, 2, 16, 16)
    cascade = create_block("spp", 2, kernels=[5, 9, 13], mode="cascade")(x)
    parallel = create_block("spp", 2, kernels=[5, 9, 13], mode="parallel")(x)
    assert torch.equal(cascade[:, :4], parallel[:, :4])  # input and first pool agree
    assert not torch.equal(cascade[:, 4:6], parallel[:, 4:6])  # 13- vs 9-wide windows


def test_spp_shapes_and_odd_kernels() -> None:
    assert block_spec("spp").output_shape((8, 5, 7)) == (32, 5, 7)
    assert block_spec("spp", kernels=[3]).output_shape((8, 5, 7)) == (16, 5, 7)
    y = create_block("spp", 8)(torch.randn(1, 8, 5, 7))  # kernels larger than the map
    assert tuple(y.shape) == (1, 32, 5, 7)
    with pytest.raises(ShapeError) as err:
        block_spec("spp", kernels=[5, 8]).output_shape((8, 16, 16))
    assert err.value.field == "kernels"


# -- SPP-net ----------------------------------------------------------------------------------


def _spp_net_reference(x: torch.Tensor, levels: list[int], reduce: str) -> torch.Tensor:
    """Bins [floor(i*H/l), ceil((i+1)*H/l)) pooled one by one, rows of (C, l, l) per level."""
    b, c, h, w = x.shape
    parts = []
    for n in levels:
        out = torch.empty(b, c, n, n)
        for i, j in itertools.product(range(n), range(n)):
            win = x[
                :,
                :,
                (i * h) // n : math.ceil((i + 1) * h / n),
                (j * w) // n : math.ceil((j + 1) * w / n),
            ]
            out[:, :, i, j] = getattr(win, reduce)((2, 3))
        parts.append(out.reshape(b, -1))
    return torch.cat(parts, 1)


@pytest.mark.parametrize(("pool", "reduce"), [("max", "amax"), ("avg", "mean")])
def test_spp_net_fixed_length_and_values(pool: str, reduce: str) -> None:
    spec = block_spec("spp_net", levels=[1, 2, 4], pool=pool)
    m = spec.build(3)
    for hw in [(8, 8), (13, 10)]:
        assert spec.output_shape((3, *hw)) == (3 * 21,)
        x = torch.randn(2, 3, *hw)
        y = m(x)
        assert tuple(y.shape) == (2, 63)
        torch.testing.assert_close(y, _spp_net_reference(x, [1, 2, 4], reduce))
    with pytest.raises(ShapeError):
        spec.output_shape((63,))


# -- reorg ------------------------------------------------------------------------------------


def _seed_reorg(x: torch.Tensor, s: int) -> torch.Tensor:
    """The reference Reorg's view/transpose sequence, step by step."""
    b, c, h, w = x.shape
    h, w = h // s, w // s
    x = x.reshape(b, c, h, s, w, s).transpose(3, 4)
    x = x.reshape(b, c, h * w, s * s).transpose(2, 3)
    x = x.reshape(b, c, s * s, h, w).transpose(1, 2)
    return x.reshape(b, -1, h, w)


@pytest.mark.parametrize("s", [2, 3])
def test_reorg_matches_seed_order(s: int) -> None:
    x = torch.randn(2, 3, 4 * s, 2 * s)
    y = create_block("reorg", 3, stride=s)(x)
    assert tuple(y.shape) == (2, 3 * s * s, 4, 2)
    torch.testing.assert_close(y, _seed_reorg(x, s))
    # and element by element: channel (a*s + b)*C + c holds offset (a, b) of channel c
    for a, bb, c in itertools.product(range(s), range(s), range(3)):
        assert torch.equal(y[:, (a * s + bb) * 3 + c], x[:, c, a::s, bb::s])


def test_reorg_is_not_pixel_unshuffle() -> None:
    x = torch.randn(1, 4, 6, 6)
    y = create_block("reorg", 4)(x)
    z = F.pixel_unshuffle(x, 2)
    assert y.shape == z.shape
    assert not torch.equal(y, z)
    assert torch.equal(y.flatten().sort().values, z.flatten().sort().values)
    # single channel: the two orders coincide
    x1 = torch.randn(1, 1, 6, 6)
    assert torch.equal(create_block("reorg", 1)(x1), F.pixel_unshuffle(x1, 2))


def test_reorg_shape_errors() -> None:
    assert block_spec("reorg").output_shape((64, 26, 26)) == (256, 13, 13)
    for shape in [(4, 7, 8), (4, 8, 9)]:
        with pytest.raises(ShapeError) as err:
            block_spec("reorg", stride=2).output_shape(shape)
        assert err.value.field == "stride"


def test_reorg_traced_graph_keeps_sizes_symbolic() -> None:
    m = create_block("reorg", 3, stride=2)
    traced = torch.fx.symbolic_trace(m)
    for shape in [(1, 3, 4, 6), (3, 3, 10, 2)]:
        x = torch.randn(shape)
        torch.testing.assert_close(traced(x), _seed_reorg(x, 2))


# -- every block ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", POOLS)
def test_examples_build_trace_and_predict_shape(kind: str) -> None:
    cls = get_block(kind)
    assert cls.examples
    for params, in_shape in cls.examples:
        spec = cls(**params)
        m = spec.build_for(in_shape)
        x = torch.randn(2, *in_shape)
        y = m(x)
        assert tuple(y.shape[1:]) == spec.output_shape(in_shape)
        torch.testing.assert_close(torch.fx.symbolic_trace(m)(x), y)


@pytest.mark.parametrize("kind", POOLS)
def test_constructor_takes_the_spec_fields(kind: str) -> None:
    cls = get_block(kind)
    module_cls = cls.model_construct().module_class()
    params = list(inspect.signature(module_cls.__init__).parameters)[1:]
    if module_cls.__module__.startswith("nasblocks"):
        assert params == ["in_channels", *cls.model_fields]
    else:  # a torch.nn class built without the channel count: the fields are its arguments
        # (but at_least, which picks nasblocks' AdaptivePoolAtLeast instead)
        assert set(cls.model_fields) - {"at_least"} <= set(params)


# -- at_least: timm's VGG head keeps its 7x7 conv's input at least 7x7 ----------------------

TIMM_VGG_HEAD = """\
name: timm_vgg_tiny
input: [3, {size}, {size}]
num_classes: 10
layers:
  - {{name: features, vgg: [8, M, 16, M]}}
  - name: pre_logits
    layers:
      - {{name: pool, adaptive_avgpool: {{output_size: 7, at_least: true}}}}
      - {{name: fc1, conv2d: {{out_channels: 4096, kernel_size: 7, bias: true}}}}
      - {{name: act1, relu: null}}
      - {{name: drop, dropout: 0.2}}
      - {{name: fc2, conv2d: {{out_channels: 4096, kernel_size: 1, bias: true}}}}
      - {{name: act2, relu: null}}
  - name: head
    layers:
      - {{name: global_pool, global_avgpool: {{flatten: true}}}}
      - {{name: fc, linear: $num_classes}}
"""


@pytest.mark.parametrize("size, pooled", [(16, (16, 7, 7)), (40, (16, 10, 10))])
def test_at_least_is_timms_vgg_head(tmp_path, size, pooled) -> None:
    """A map smaller than 7x7 is pooled up to it, a larger one passes: timm's ConvMlp (timm's
    VGG with a small cfg loads strictly and gives the same outputs at both sizes)."""
    pytest.importorskip("timm")
    from timm.models.vgg import VGG

    theirs = VGG([8, "M", 16, "M"], num_classes=10).eval()
    path = tmp_path / "vgg.yaml"
    path.write_text(TIMM_VGG_HEAD.format(size=size))
    ours = nasblocks.build(path).eval()
    assert ours.pre_logits.pool(torch.zeros(1, 16, size // 4, size // 4)).shape[1:] == pooled
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))
        torch.testing.assert_close(torch.fx.symbolic_trace(ours)(x), theirs(x))


def test_at_least_needs_both_sides() -> None:
    spec = get_block("adaptive_avgpool")(output_size=[None, 7], at_least=True)
    with pytest.raises(ShapeError, match="at_least needs both sides of output_size"):
        spec.output_shape((4, 5, 5))
