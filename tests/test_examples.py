"""The example specs the README points at validate, build and run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import nasblocks

EXAMPLES = sorted((Path(__file__).parents[1] / "experiments" / "examples").glob("*.yaml"))


def test_there_are_examples():
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_builds_and_runs(path):
    spec = nasblocks.load_spec(path)
    model = nasblocks.build(spec).eval()
    with torch.no_grad():
        out = model(torch.randn(1, *spec.input_shape))
    assert tuple(out.shape[1:]) == nasblocks.summary(spec).output_shape
