"""timm's HRNet (classification variant) as a preset: timm's module (random init, random BN
statistics) loads strictly into it with no key renames and gives the same outputs; the wider
HRNets are the same blocks with the numbers of timm's own ``cfg_cls``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from timm_reference import same_as_timm, yaml_lines

import nasblocks
from nasblocks.analysis import count

timm = pytest.importorskip("timm")

PRESETS = Path(nasblocks.__file__).parent / "presets"


def cfg_overrides(name: str) -> dict:
    """Overrides of the hrnet_w18_small preset making timm's ``name``, read off its cfg."""
    from timm.models.hrnet import cfg_cls

    cfg = cfg_cls[name]
    assert cfg["stem_width"] == 64 and cfg["stage1"]["block_type"] == "BOTTLENECK"
    layer1 = [{"bottleneck": cfg["stage1"]["num_channels"][0]}] * cfg["stage1"]["num_blocks"][0]
    out = {"layers[6].layers": layer1}
    for i, s in enumerate(("stage2", "stage3", "stage4")):
        stage = cfg[s]
        assert stage["block_type"] == "BASIC" and len(set(stage["num_blocks"])) == 1
        widths = list(stage["num_channels"])
        out[f"layers[{7 + 2 * i}].hrnet_transition.channels"] = widths
        out[f"layers[{8 + 2 * i}].hrnet_stage"] = {
            "channels": widths,
            "depth": stage["num_blocks"][0],
            "num_modules": stage["num_modules"],
        }
    out["layers[13].hrnet_incre.branches"] = widths
    return out


def test_hrnet_w18_small_is_timms_in_a_few_lines():
    assert yaml_lines("hrnet_w18_small") <= 40
    model = nasblocks.build("hrnet_w18_small")
    same_as_timm(model, "hrnet_w18_small")
    assert count("hrnet_w18_small")[0] == sum(p.numel() for p in model.parameters())


def test_hrnet_w18_small_traces_and_has_timms_classifier():
    model = nasblocks.build("hrnet_w18_small").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(torch.fx.symbolic_trace(model)(x), model(x))
        assert model.forward_features(x).shape == (1, 2048, 2, 2)
    assert model.num_features == 2048 and model.get_classifier() is model.classifier


@pytest.mark.parametrize("name", ["hrnet_w18", "hrnet_w32"])
def test_wider_hrnets_are_the_same_blocks(name):
    overrides = cfg_overrides(name)
    assert len(overrides) == 8
    same_as_timm(nasblocks.build("hrnet_w18_small", **overrides), name)


def test_hrnet_input_must_halve_exactly():
    with pytest.raises(nasblocks.SpecError, match="multiples of 32"):
        nasblocks.build("hrnet_w18_small", input=[3, 200, 200])
