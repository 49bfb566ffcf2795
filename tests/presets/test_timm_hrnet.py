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


def test_consecutive_hrnet_layers_hand_the_branches_over_unpacked():
    """The compiled forward skips the packing between two HRNet layers; a map that is also a
    feature output stays packed, and every way of running the net gives the same numbers."""
    model = nasblocks.build("hrnet_w18_small").eval()
    calls = {n.target: n.kwargs for n in model.graph.nodes if n.op == "call_module"}
    inner = ["transition1", "stage2", "transition2", "stage3", "transition3", "stage4"]
    assert all(calls[name] == {"pack": False} for name in [*inner, "incre_modules"])
    assert calls["layer1"] == {} and calls["downsamp_modules"] == {}  # one map each

    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        packed, alone = x, {}
        for name, child in model.named_children():  # each layer alone: packed maps
            packed = alone[name] = child(packed)
        torch.testing.assert_close(model(x), packed)
        features = nasblocks.build("hrnet_w18_small", features_only=True)
        missing = features.load_state_dict(model.state_dict(), strict=False).missing_keys
        assert not missing  # (the unexpected keys: the head, which features_only leaves out)
        taps = {n.target: n.kwargs for n in features.eval().graph.nodes if n.op == "call_module"}
        outs = features(x)
    # the stages whose packed map is a feature output pass it packed, and it is the map the
    # layer gives on its own
    tapped = [m["module"] for m in features.feature_info.get_dicts()]
    assert any(taps.get(t) == {} and t in inner for t in tapped), (tapped, taps)
    assert len(outs) == len(tapped) and set(tapped) <= set(alone)
    for out, name in zip(outs, tapped, strict=True):
        torch.testing.assert_close(out, alone[name])
