"""Helpers shared by the block-family tests: checked builds, torchvision comparisons and the
constructor-mirrors-spec check. Imported as ``block_helpers`` (pytest puts this folder on the
path of its test modules)."""

from __future__ import annotations

import inspect

import torch
from torch import nn

from nasblocks.registry import block_spec, get_block


def randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and BN statistics, so a strict load and equal outputs mean something."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.5)
    return module


def build(kind: str, in_shape: tuple[int, ...], **params) -> nn.Module:
    """Build through the spec (so its shape contract runs too) and check the prediction."""
    spec = block_spec(kind, **params)
    predicted = spec.output_shape(in_shape)
    module = spec.build_for(in_shape).eval()
    with torch.no_grad():
        out = module(torch.randn(2, *in_shape))
    assert tuple(out.shape[1:]) == predicted
    return module


def assert_same(ours: nn.Module, theirs: nn.Module, in_shape: tuple[int, ...]) -> None:
    """``theirs``' randomized weights load strictly into ``ours`` and give the same output."""
    ours.load_state_dict(randomize(theirs).state_dict(), strict=True)
    ours.eval(), theirs.eval()
    x = torch.randn(2, *in_shape)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))


def assert_constructor_mirrors_spec(kind: str) -> None:
    """The module takes ``(in_channels, <the spec's fields>)`` with the fields' defaults."""
    spec_cls = get_block(kind)
    module_cls = spec_cls(**spec_cls.examples[0][0]).module_class()
    params = list(inspect.signature(module_cls).parameters.values())
    fields = spec_cls.model_fields
    assert params[0].name == "in_channels"
    assert [p.name for p in params[1:]] == list(fields)
    for p in params[1:]:
        if fields[p.name].is_required():
            assert p.default is inspect.Parameter.empty, p.name
        else:
            assert p.default == fields[p.name].default, p.name
    assert set(spec_cls.width_fields) <= set(fields)
