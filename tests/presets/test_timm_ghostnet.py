"""timm's GhostNet (v1) as the ghostnet_100 preset: timm's module (random init, randomised BN
statistics) loads strictly with no key renames and gives the same eval outputs; its 0.5 and 1.3
widths are one width_multiple override away; the analytic parameter count is the built one."""

from __future__ import annotations

import pytest
from timm_reference import same_as_timm, yaml_lines
from torch import nn

import nasblocks
from nasblocks.analysis import count
from nasblocks.blocks.ghostnet import se_hidden

timm = pytest.importorskip("timm")


def test_ghostnet_100_is_timms_in_a_few_lines():
    assert yaml_lines("ghostnet_100") <= 40
    model = nasblocks.build("ghostnet_100", input_size=64)
    theirs = same_as_timm(model, "ghostnet_100", size=64)
    assert count("ghostnet_100")[0] == sum(p.numel() for p in model.parameters())

    # the module trees too: BN settings and the SE gates (not in the state dict)
    def kinds(m: nn.Module) -> dict[str, object]:
        return {
            n: (type(c).__name__, getattr(c, "eps", None))
            for n, c in m.named_modules()
            if isinstance(c, (nn.BatchNorm2d, nn.Hardsigmoid, nn.Conv2d))
        }

    assert kinds(model) == kinds(theirs)


@pytest.mark.parametrize(("width", "timm_name"), [(0.5, "ghostnet_050"), (1.3, "ghostnet_130")])
def test_neighbours_are_one_width_multiple_away(width, timm_name):
    model = nasblocks.build("ghostnet_100", input_size=32, width_multiple=width)
    same_as_timm(model, timm_name, size=32)


@pytest.mark.parametrize("channels", [8, 12, 20, 36, 72, 120, 480, 672, 960, 1248])
def test_se_width_is_timms(channels):
    from timm.layers import make_divisible

    assert se_hidden(channels, 0.25) == make_divisible(channels * 0.25, 4)
