"""timm's Deep Layer Aggregation nets as the dla34 preset and overrides of its trees: timm's
modules (random init, randomised BN statistics) load strictly with no key renames and give the
same outputs, and the analytic parameter count equals the built one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from timm_reference import same_as_timm, yaml_lines

import nasblocks

timm = pytest.importorskip("timm")

PRESETS = Path(nasblocks.__file__).parent / "presets"
TREES = range(3, 7)  # layers[3] ... layers[6]: level2 ... level5


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


def test_dla34_feature_levels_are_timms():
    with torch.device("meta"):
        ours = nasblocks.build("dla34", features_only=True)
    theirs = timm.create_model("dla34", features_only=True, out_indices=tuple(range(6)))
    keys = ("module", "num_chs", "reduction")
    assert [[d[k] for k in keys] for d in ours.feature_info.get_dicts()] == [
        [d[k] for k in keys] for d in theirs.feature_info.get_dicts()
    ]


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
