"""Analytic parameters and MACs equal the ones counted on the built network, for every preset
and the NAS-Bench-201 extremes, and the pinned published counts."""

from __future__ import annotations

import pytest

from nasblocks import preset_names
from nasblocks.analysis import count, measure, summary
from nasblocks.spec import load_spec


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_counts_analytically_what_the_built_module_has(name):
    spec = load_spec(name)
    assert count(spec) == measure(spec)


@pytest.mark.parametrize(
    ("name", "params", "macs"),
    [
        ("resnet50", 25_557_032, 4_089_184_256),  # torchvision's table: 25.6 M, 4.09 G
        ("resnet18", 11_689_512, 1_814_073_344),
        ("mobilenet_v2", 3_504_872, 300_774_272),
    ],
)
def test_published_counts_are_pinned(name, params, macs):
    assert count(name) == (params, macs)
    s = summary(name)
    assert (s.total_params, s.total_flops) == (params, macs)
    assert sum(r.params for r in s.rows if r.depth == 0) == params


def test_summary_rows_add_up_and_groups_repeat():
    s = summary(
        {
            "input": [3, 16, 16],
            "layers": [
                {"name": "c", "conv": 8},
                {"name": "body", "layers": [{"conv": 8}], "repeat": 3},
                "flatten",
                {"name": "fc", "linear": 10},
            ],
        },
        depth=2,
    )
    rows = {r.name: r for r in s.rows}
    one = 8 * 3 * 9 + 16, 8 * 3 * 9 * 16 * 16  # conv 3->8 (no bias: a norm follows) + bn
    assert (rows["c"].params, rows["c"].flops) == one
    block = 8 * 8 * 9 + 16, 8 * 8 * 9 * 16 * 16
    assert (rows["body"].params, rows["body"].flops) == (3 * block[0], 3 * block[1])
    assert (rows["fc"].params, rows["fc"].flops) == (8 * 256 * 10 + 10, 8 * 256 * 10)
    assert s.total_params == sum(r.params for r in s.rows if r.depth == 0)
