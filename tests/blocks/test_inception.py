"""Inception blocks: torchvision weights load strictly and give the same outputs; shapes."""

from __future__ import annotations

import pytest
import torch
from block_helpers import assert_constructor_mirrors_spec
from pydantic import ValidationError
from torch import nn
from torchvision.models.googlenet import Inception as TvInception
from torchvision.models.googlenet import InceptionAux as TvGoogLeNetAux
from torchvision.models.inception import InceptionA, InceptionB, InceptionC, InceptionD, InceptionE
from torchvision.models.inception import InceptionAux as TvInceptionV3Aux

from nasblocks.errors import ShapeError
from nasblocks.registry import block_spec

NAMES = (
    "inception",
    "inception_aux",
    "inception_a",
    "inception_b",
    "inception_c",
    "inception_d",
    "inception_e",
    "inception_v3_aux",
)

GOOGLENET_ARGS = {"ch1x1": 8, "ch3x3red": 4, "ch3x3": 8, "ch5x5red": 4, "ch5x5": 6, "pool_proj": 5}

# (block name, params, torchvision module factory, input shape (C, H, W))
CASES = [
    (
        "inception",
        {**GOOGLENET_ARGS, "branch3_kernel_size": 3},
        lambda c: TvInception(c, *GOOGLENET_ARGS.values()),
        (16, 8, 8),
    ),
    ("inception_aux", {"num_classes": 10}, lambda c: TvGoogLeNetAux(c, 10), (16, 14, 14)),
    ("inception_aux", {"num_classes": 3}, lambda c: TvGoogLeNetAux(c, 3), (8, 3, 5)),
    ("inception_a", {"pool_features": 8}, lambda c: InceptionA(c, 8), (32, 9, 9)),
    ("inception_b", {}, InceptionB, (16, 9, 9)),
    ("inception_b", {}, InceptionB, (8, 3, 4)),
    ("inception_c", {"channels_7x7": 8}, lambda c: InceptionC(c, 8), (16, 7, 7)),
    ("inception_d", {}, InceptionD, (16, 8, 7)),
    ("inception_e", {}, InceptionE, (16, 4, 4)),
    ("inception_v3_aux", {"num_classes": 10}, lambda c: TvInceptionV3Aux(c, 10), (16, 17, 17)),
    ("inception_v3_aux", {"num_classes": 4}, lambda c: TvInceptionV3Aux(c, 4), (8, 20, 23)),
]


def _randomize_norms(module: nn.Module) -> None:
    """Non-trivial batch-norm statistics and affine parameters, so eval mode tests them."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)


@pytest.mark.parametrize(("name", "params", "theirs_fn", "shape"), CASES)
def test_torchvision_weights_load_and_match(name, params, theirs_fn, shape):
    torch.manual_seed(0)
    theirs = theirs_fn(shape[0])
    _randomize_norms(theirs)
    spec = block_spec(name, **params)
    ours = spec.build_for(shape)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    ours.eval(), theirs.eval()
    x = torch.randn(2, *shape)
    with torch.no_grad():
        expected = theirs(x)
        got = ours(x)
    torch.testing.assert_close(got, expected)
    assert tuple(got.shape[1:]) == spec.output_shape(shape)


@pytest.mark.parametrize(
    ("name", "params", "in_shape", "out_shape"),
    [
        ("inception", GOOGLENET_ARGS, (16, 5, 3), (27, 5, 3)),
        ("inception", GOOGLENET_ARGS, (4, 1, 1), (27, 1, 1)),
        ("inception_a", {"pool_features": 32}, (192, 35, 35), (256, 35, 35)),
        ("inception_b", {}, (288, 35, 35), (768, 17, 17)),
        ("inception_c", {"channels_7x7": 128}, (768, 17, 17), (768, 17, 17)),
        ("inception_d", {}, (768, 17, 17), (1280, 8, 8)),
        ("inception_e", {}, (1280, 8, 8), (2048, 8, 8)),
        ("inception_v3_aux", {"num_classes": 1000}, (768, 17, 17), (1000,)),
        ("inception_aux", {"num_classes": 1000}, (512, 14, 14), (1000,)),
    ],
)
def test_shapes_of_the_reference_networks(name, params, in_shape, out_shape):
    # The (C, H, W) torchvision's GoogLeNet / Inception3 comments give for these modules.
    assert block_spec(name, **params).output_shape(in_shape) == out_shape


def test_googlenet_branch3_kernel_defaults_to_the_paper():
    """The paper's 5x5; torchvision's 3x3 (vision#906) only loads with branch3_kernel_size 3."""
    spec = block_spec("inception", **GOOGLENET_ARGS)
    ours = spec.build(16)
    assert ours.branch3[1].conv.weight.shape == (6, 4, 5, 5)
    assert ours.branch3[1].conv.padding == (2, 2)
    assert ours(torch.randn(1, 16, 6, 6)).shape == (1, 27, 6, 6)
    with pytest.raises(RuntimeError, match="size mismatch"):
        ours.load_state_dict(TvInception(16, *GOOGLENET_ARGS.values()).state_dict())
    with pytest.raises(ValidationError, match="odd"):
        block_spec("inception", **GOOGLENET_ARGS, branch3_kernel_size=4)


def test_basic_conv_is_biasless_with_eps_1e_3():
    ours = block_spec("inception_a", pool_features=4).build(8)
    bn = ours.branch5x5_2.bn
    assert isinstance(bn, nn.BatchNorm2d) and bn.eps == 1e-3 and bn.momentum == 0.1
    assert ours.branch5x5_2.conv.bias is None
    other = block_spec("inception_a", pool_features=4, norm_eps=1e-5, norm="none").build(8)
    assert isinstance(other.branch5x5_2.bn, nn.Identity)
    assert other.branch5x5_2.conv.bias is not None  # no norm: the conv keeps a bias


def test_v3_aux_carries_torchvision_init_hints():
    ours = block_spec("inception_v3_aux", num_classes=5).build(8)
    assert ours.conv1.stddev == 0.01
    assert ours.fc.stddev == 0.001
    assert not hasattr(ours.conv0, "stddev")


def test_googlenet_aux_dropout_is_active_in_training_only():
    torch.manual_seed(0)
    ours = block_spec("inception_aux", num_classes=4, dropout=0.5).build(8)
    x = torch.randn(2, 8, 6, 6)
    ours.train()
    a, b = ours(x), ours(x)
    assert not torch.allclose(a, b)
    ours.eval()
    torch.testing.assert_close(ours(x), ours(x))


@pytest.mark.parametrize(
    ("name", "params", "in_shape", "match"),
    [
        ("inception_b", {}, (16, 2, 9), "at least a 3x3"),
        ("inception_d", {}, (16, 9, 2), "at least a 3x3"),
        ("inception_v3_aux", {"num_classes": 3}, (16, 16, 30), "at least a 17x17"),
        ("inception", GOOGLENET_ARGS, (16,), "feature map"),
        ("inception_aux", {"num_classes": 3}, (512,), "feature map"),
        ("inception_e", {}, (16,), "feature map"),
    ],
)
def test_impossible_inputs_raise_shape_errors(name, params, in_shape, match):
    with pytest.raises(ShapeError, match=match):
        block_spec(name, **params).output_shape(in_shape)


def test_smallest_accepted_inputs_run():
    for name, params, shape in [
        ("inception_b", {}, (4, 3, 3)),
        ("inception_d", {}, (4, 3, 3)),
        ("inception_v3_aux", {"num_classes": 3}, (4, 17, 17)),
    ]:
        spec = block_spec(name, **params)
        out = spec.build_for(shape).eval()(torch.randn(1, *shape))
        assert tuple(out.shape[1:]) == spec.output_shape(shape)


@pytest.mark.parametrize("name", NAMES)
def test_constructor_mirrors_the_spec(name):
    assert_constructor_mirrors_spec(name)
