"""timm's Deep Layer Aggregation nets as the dla34 preset and overrides of its trees: timm's
modules (random init, randomised BN statistics) load strictly with no key renames and give the
same outputs, and the analytic parameter count equals the built one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import nasblocks
from nasblocks.analysis import count

timm = pytest.importorskip("timm")

PRESETS = Path(nasblocks.__file__).parent / "presets"
TREES = range(3, 7)  # layers[3] ... layers[6]: level2 ... level5


def yaml_lines(name: str) -> int:
    text = (PRESETS / f"{name}.yaml").read_text().splitlines()
    return sum(1 for line in text if line.strip() and not line.lstrip().startswith("#"))


def randomise_bn(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.running_mean, 0, 0.1)
            nn.init.uniform_(m.running_var, 0.5, 1.5)
            nn.init.normal_(m.weight, 1, 0.1)
            nn.init.normal_(m.bias, 0, 0.1)
    return model


def same_as_timm(ours: nn.Module, name: str, size: int = 64) -> None:
    theirs = randomise_bn(timm.create_model(name)).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)  # no renames
    ours.eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)
    n_params = sum(p.numel() for p in ours.parameters())
    assert n_params == sum(p.numel() for p in theirs.parameters())
    assert count(ours.spec)[0] == n_params  # analytic, equal to the built module


def trees(widths=None, levels=None, **fields) -> dict:
    """Overrides of dla34's four trees: per-tree widths and levels, fields set on all four."""
    out = {}
    for i, layer in enumerate(TREES):
        path = f"layers[{layer}].dla_tree"
        if widths:
            out[f"{path}.out_channels"] = widths[i]
        if levels:
            out[f"{path}.levels"] = levels[i]
        out |= {f"{path}.{k}": v for k, v in fields.items()}
    return out


def test_dla34_is_timms_in_a_few_lines():
    assert yaml_lines("dla34") <= 40
    same_as_timm(nasblocks.build("dla34"), "dla34")


X = {"cardinality": 32, "base_width": 4}
NEIGHBOURS = {
    "dla46_c": trees([64, 64, 128, 256], block="bottleneck"),
    "dla46x_c": trees([64, 64, 128, 256], block="bottleneck", **X),
    "dla60": trees([128, 256, 512, 1024], [1, 2, 3, 1], block="bottleneck"),
    "dla102x": trees([128, 256, 512, 1024], [1, 3, 4, 1], block="bottleneck",
                     root_residual=True, **X),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(NEIGHBOURS))
def test_neighbours_are_overrides_of_the_trees(name):
    same_as_timm(nasblocks.build("dla34", **NEIGHBOURS[name]), name, size=32)


def test_odd_size_before_a_strided_tree_is_refused_before_building():
    with pytest.raises(nasblocks.SpecError, match="layers\\[3\\].dla_tree.stride"):
        nasblocks.build("dla34", input_size=[66, 66])  # level2 sees 33x33
