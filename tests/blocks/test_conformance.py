"""Registry-driven: every registered block gets the shape-contract, forward/backward,
no-NaN, fx-trace and signature checks of ``nasblocks.testing`` for each declared example."""

from __future__ import annotations

import pytest

from nasblocks import block_names
from nasblocks.registry import get_block
from nasblocks.testing import ConformanceError, check_block, check_example

CASES = [(name, i) for name in block_names() for i in range(len(get_block(name).examples))]


def test_every_block_declares_examples():
    missing = [name for name in block_names() if not get_block(name).examples]
    assert not missing, f"blocks without examples: {missing}"


def test_every_block_is_documented():
    for name in block_names():
        cls = get_block(name)
        assert (cls.__doc__ or "").strip(), name
        for field, info in cls.model_fields.items():
            assert info.description, f"{name}.{field} has no description"


@pytest.mark.parametrize(("kind", "index"), CASES, ids=[f"{k}-{i}" for k, i in CASES])
def test_block_conformance(kind, index):
    params, in_shape = get_block(kind).examples[index]
    check_example(kind, dict(params), in_shape)


@pytest.mark.parametrize("kind", block_names())
def test_constructor_matches_spec_fields(kind):
    from nasblocks.testing import check_signature

    check_signature(kind)


def test_conformance_catches_a_lying_shape_contract():
    from pydantic import Field

    from nasblocks.registry import _REGISTRY, BlockSpec, register_block

    @register_block("_liar")
    class Liar(BlockSpec):
        """Claims to double the channels but keeps them."""

        module = "torch.nn:Identity"
        examples = (({}, (4, 8, 8)),)
        unused: int = Field(0, description="nothing")

        def output_shape(self, in_shape):
            return (in_shape[0] * 2, *in_shape[1:])

        def build(self, in_channels):
            from torch import nn

            return nn.Conv2d(in_channels, in_channels, 1)

    try:
        with pytest.raises(ConformanceError, match="shape contract says"):
            check_block("_liar")
    finally:
        _REGISTRY.pop("_liar")


SINGLE = [(k, i) for k, i in CASES if get_block(k).arity == 1]


@pytest.mark.parametrize(("kind", "index"), SINGLE, ids=[f"{k}-{i}" for k, i in SINGLE])
def test_block_inside_a_built_network_traces(kind, index):
    import torch

    import nasblocks

    params, in_shape = get_block(kind).examples[index]
    if len(in_shape) != 3:
        pytest.skip("the network input is a (C, H, W) image")
    spec = {"name": "one", "input": list(in_shape), "layers": [{"name": "x", kind: dict(params)}]}
    model = nasblocks.build(spec).eval()
    x = torch.randn(2, *in_shape)
    with torch.no_grad():
        torch.testing.assert_close(torch.fx.symbolic_trace(model)(x), model(x))


def test_conformance_catches_a_wrong_cost():
    from pydantic import Field

    from nasblocks.registry import _REGISTRY, BlockSpec, register_block

    @register_block("_miscounted")
    class Miscounted(BlockSpec):
        """A 1x1 conv that forgets its bias in cost()."""

        module = "torch.nn:Conv2d"
        examples = (({}, (4, 8, 8)),)
        unused: int = Field(0, description="nothing")

        def output_shape(self, in_shape):
            return in_shape

        def cost(self, in_shape):
            c, h, w = in_shape
            return c * c, c * c * h * w  # the bias (c parameters) is missing

        def build(self, in_channels):
            from torch import nn

            return nn.Conv2d(in_channels, in_channels, 1)

    try:
        with pytest.raises(ConformanceError, match="cost\\(\\) says 16 parameters .* has 20"):
            check_block("_miscounted", trace=False)
    finally:
        _REGISTRY.pop("_miscounted")


def test_declared_costs_cover_the_common_blocks():
    """The blocks most networks are made of are analytic (no module is built to count them)."""
    analytic = {name for name in block_names() if _declares_cost(name)}
    assert {
        "conv",
        "conv2d",
        "batchnorm",
        "linear",
        "basic",
        "bottleneck",
        "relu_conv_bn",
    } <= analytic
    assert {"add", "concat", "maxpool", "avgpool", "relu", "identity", "zero"} <= analytic


def _declares_cost(name):
    cls = get_block(name)
    params, shape = cls.examples[0]
    return cls(**params).cost(shape) is not None


def test_the_lazy_index_names_every_builtin_block_and_its_family():
    """nasblocks.blocks.BUILTIN (what validate imports lazily) matches the registrations, and a
    fresh process that uses `conv` imports its family alone."""
    import subprocess
    import sys

    from nasblocks.blocks import BUILTIN

    declared = {name: get_block(name).__module__ for name in block_names()}
    builtin = {k: v for k, v in declared.items() if v.startswith("nasblocks.blocks.")}
    assert builtin == {k: f"nasblocks.blocks.{f}" for k, f in BUILTIN.items()}
    code = (
        "import sys\nfrom nasblocks.registry import get_block\nget_block('conv')\n"
        "print(sorted(m for m in sys.modules if m.startswith('nasblocks.blocks.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    import ast

    families = ast.literal_eval(out.stdout)
    assert "nasblocks.blocks.core" in families
    assert not {"nasblocks.blocks.inception", "nasblocks.blocks.attention"} & set(families)


def test_a_plugin_cannot_take_a_builtin_name_before_it_is_loaded():
    from nasblocks.errors import RegistryError
    from nasblocks.registry import BlockSpec, register_block

    with pytest.raises(RegistryError, match="'spp' is a built-in block"):

        @register_block("spp")
        class NotSpp(BlockSpec):
            """x"""
