"""Checking a preset against timm's module of the same name (random init, no weights
downloaded): the shared helpers of ``tests/presets/test_timm_*.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import nasblocks
from nasblocks.analysis import count

timm = pytest.importorskip("timm")  # a test dependency (the dev extra)
PRESETS = Path(nasblocks.__file__).parent / "presets"


def yaml_lines(name: str) -> int:
    """Non-comment, non-blank lines of a preset file."""
    text = (PRESETS / f"{name}.yaml").read_text().splitlines()
    return sum(1 for line in text if line.strip() and not line.lstrip().startswith("#"))


def randomize_bn_stats(model: nn.Module) -> None:
    """Running statistics and affine parameters away from (0, 1), so that the eval outputs
    depend on every BN buffer (its place and its epsilon)."""
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert m.running_mean is not None and m.running_var is not None
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(1 + torch.randn(m.num_features, generator=gen) * 0.1)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


def same_as_timm(ours: nn.Module, name: str, size: int = 64, **timm_kwargs) -> nn.Module:
    """timm's ``name`` loads strictly into ``ours`` (no renames) and gives its eval outputs;
    equal parameter counts, and nasblocks' analytic count equals the built module's.
    Returns timm's module."""
    theirs = timm.create_model(name, **timm_kwargs).eval()
    randomize_bn_stats(theirs)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    ours.eval()
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = theirs(x)
        torch.testing.assert_close(ours(x), want, rtol=1e-5, atol=1e-5)
    assert want.abs().max() > 1e-3  # the comparison saw a live signal
    n = sum(p.numel() for p in ours.parameters())
    assert n == sum(p.numel() for p in theirs.parameters())
    assert count(ours.spec)[0] == n  # analytic, equal to the built module
    return theirs
