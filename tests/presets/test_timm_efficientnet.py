"""timm's EfficientNet family (EfficientNet, MixNet, MobileNetV2) as compact presets: timm's own
modules (random init) load strictly into them with no key renames and give the same outputs;
the neighbours are overrides of the multipliers; block stages scale depth as timm does."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from timm_reference import same_as_timm, yaml_lines
from torch import nn

import nasblocks
from nasblocks.analysis import count
from nasblocks.spec.block_stages import stage_depths

timm = pytest.importorskip("timm")

PRESETS = Path(nasblocks.__file__).parent / "presets"
MODELS = ["mobilenetv2_100", "efficientnet_b0", "mixnet_s", "mixnet_m"]


@pytest.mark.parametrize("name", MODELS)
def test_preset_is_timms_model_in_a_few_lines(name):
    assert yaml_lines(name) <= 40
    model = nasblocks.build(name, input_size=96)
    theirs = same_as_timm(model, name, size=96)
    assert count(name)[0] == sum(p.numel() for p in model.parameters())  # analytic = built
    # the module trees too (eps, momentum, activations: not in the state dict)
    bn = {
        n: (m.eps, m.momentum) for n, m in theirs.named_modules() if isinstance(m, nn.BatchNorm2d)
    }
    assert bn == {
        n: (m.eps, m.momentum) for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)
    }


@pytest.mark.parametrize(
    ("preset", "overrides", "timm_name"),
    [
        ("efficientnet_b0", {"depth_multiple": 1.1}, "efficientnet_b1"),
        ("efficientnet_b0", {"width_multiple": 1.1, "depth_multiple": 1.2}, "efficientnet_b2"),
        ("efficientnet_b0", {"width_multiple": 1.2, "depth_multiple": 1.4}, "efficientnet_b3"),
        ("mobilenetv2_100", {"width_multiple": 1.4}, "mobilenetv2_140"),
        ("mobilenetv2_100", {"width_multiple": 0.5, "layers.3.fixed_width": True},
         "mobilenetv2_050"),
        ("mixnet_m", {"width_multiple": 1.3}, "mixnet_l"),
        ("mixnet_m", {"width_multiple": 1.6, "depth_multiple": 1.2}, "mixnet_xl"),
    ],
)  # fmt: skip
def test_neighbours_are_one_override_away(preset, overrides, timm_name):
    same_as_timm(nasblocks.build(preset, input_size=32, **overrides), timm_name, size=32)


@pytest.mark.parametrize("multiple", [0.5, 1.0, 1.1, 1.2, 1.4, 1.8, 2.2, 3.1, 5.3])
@pytest.mark.parametrize("rounding", ["ceil", "round"])
def test_stage_depths_are_timms(multiple, rounding):
    from timm.models._efficientnet_builder import _scale_stage_depth

    for repeats in ([1], [2], [3], [4], [1, 3], [1, 2], [1, 1], [2, 3, 1]):
        theirs = _scale_stage_depth(list(range(len(repeats))), repeats, multiple, rounding)
        want = [theirs.count(i) for i in range(len(repeats))]
        assert stage_depths(repeats, multiple, rounding) == want, repeats


def test_drop_path_rate_follows_timms_efficientnet_schedule():
    ours = nasblocks.build("efficientnet_b0", **{"layers.2.block_stages.drop_path_rate": 0.2})
    theirs = timm.create_model("efficientnet_b0", drop_path_rate=0.2)

    def rates(model, attr):
        return [getattr(b.drop_path, attr, 0.0) for stage in model.blocks for b in stage]

    # timm: rate * i / n for block i of n, used only where the input is added (timm keeps
    # an unused DropPath in the other blocks; here they have an Identity)
    skip = [b.has_skip for stage in theirs.blocks for b in stage]
    want = [r if s else 0.0 for r, s in zip(rates(theirs, "drop_prob"), skip, strict=True)]
    assert rates(ours, "p") == pytest.approx(want)
    assert rates(ours, "p")[-2] == pytest.approx(0.2 * 14 / 16)  # block 14 of 16


def test_initialisation_is_timms():
    """The efficientnet scheme is timm's _init_weight_goog: the same std per tensor."""
    torch.manual_seed(0)
    ours, theirs = nasblocks.build("mixnet_s"), timm.create_model("mixnet_s")
    mine = ours.state_dict()
    for key, t in theirs.state_dict().items():
        if not t.is_floating_point() or t.numel() < 256:
            continue
        if t.min() == t.max():
            assert torch.equal(mine[key], t), key
            continue
        ratio = mine[key].std().item() / t.std().item()
        assert abs(ratio - 1) < 0.05 + 3 / math.sqrt(t.numel()), key
