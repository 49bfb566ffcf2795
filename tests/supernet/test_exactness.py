"""The supernet's contract: what it scores is what ships.

For every shipped space and 20 random samples each, the weights extracted for a sample load
with ``strict=True`` into ``nasblocks.build(sample spec)`` and give the supernet's outputs for
that subnet (eval mode, its recalibrated statistics) within 1e-5 relative error.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import nasblocks
from nasblocks.search.candidate import DataInfo
from nasblocks.space import load_space
from nasblocks.space.nodes import is_structural
from nasblocks.supernet import Supernet

SPACES = sorted((Path(__file__).parents[2] / "search_spaces").glob("*.yaml"))
SHAPES = {"nas_bench_201": (3, 32, 32)}  # the others take the data's shape: digits' 1x8x8


def info_for(space) -> DataInfo:
    written = space.template.get("input")
    if isinstance(written, list):
        return DataInfo(tuple(written), 10)
    return DataInfo(SHAPES.get(space.name, (1, 8, 8)), 10)


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_extracted_weights_reproduce_the_supernet(path):
    space = load_space(path)
    info = info_for(space)
    torch.manual_seed(0)
    net = Supernet(space, info, discovery=16)
    shape = info.input_shape
    worst = 0.0
    for i in range(20):
        sub = net.draw(net.random_path(1000 + i))
        calibration = [(torch.randn(8, *shape), None) for _ in range(2)]
        stats = net.recalibrate(sub, calibration)
        net.eval()
        net.activate(sub, stats)
        x = torch.randn(4, *shape)
        with torch.no_grad():
            ours = net(x)
        model = nasblocks.build(sub.spec)
        model.load_state_dict(net.extract(sub, stats), strict=True)
        model.eval()
        with torch.no_grad():
            built = model(x)
        scale = built.abs().max().clamp_min(1e-12)
        worst = max(worst, ((ours - built).abs().max() / scale).item())
        # the statistics are the subnet's own, not the defaults
        means = [v for k, v in stats.items() if k.endswith("running_mean")]
        assert not means or any(m.abs().sum() > 0 for m in means)
    assert worst <= 1e-5


def test_structural_choices_get_their_own_weights_and_widths_share():
    space = load_space(Path(__file__).parents[2] / "search_spaces" / "nas_bench_201.yaml")
    net = Supernet(space, DataInfo((3, 32, 32), 10), discovery=4)
    assert all(is_structural(n) for n in space.nodes)
    every = {f"edge_{a}": "nor_conv_3x3" for a in ("1_0", "2_0", "2_1", "3_0", "3_1", "3_2")}
    one = dict(every, edge_1_0="nor_conv_1x1")
    from nasblocks.space import FixedSource

    three = net.subnet(space.sample(FixedSource(every)))
    ones = net.subnet(space.sample(FixedSource(one)))
    slot3 = dict((n, s) for n, s, _ in three.params)
    slot1 = dict((n, s) for n, s, _ in ones.params)
    name = "stage1.0.node1.op.1.weight"
    assert slot3[name] != slot1[name]  # a mixed op: 1x1 and 3x3 do not share
    assert slot3["stage1.0.e20.op.1.weight"] == slot1["stage1.0.e20.op.1.weight"]

    resnet = load_space(Path(__file__).parents[2] / "search_spaces" / "resnet_cifar_oneshot.yaml")
    net = Supernet(resnet, DataInfo((3, 32, 32), 10), discovery=8)
    params = {
        "stem.out_channels": 32, "stem.kernel_size": 5, "stages.block": "basic",
        "stages.layers[0]": 3, "stages.layers[1]": 1, "stages.layers[2]": 1,
        "stages.widths[0]": 32, "stages.widths[1]": 64, "stages.widths[2]": 128,
    }  # fmt: skip
    big = net.subnet(resnet.sample(FixedSource(params)))
    small = net.subnet(
        resnet.sample(FixedSource(dict(params, **{"stem.kernel_size": 3, "stages.widths[0]": 16})))
    )
    b, s = ({n: (slot, where) for n, slot, where in x.params} for x in (big, small))
    assert b["conv1.weight"][0] == s["conv1.weight"][0]  # one kernel slot, 5x5
    assert s["conv1.weight"][1][2:] == (slice(1, 4), slice(1, 4))  # the 3x3 is its centre
    assert b["layer1.0.conv1.weight"][0] == s["layer1.0.conv1.weight"][0]
    assert s["layer1.0.conv1.weight"][1][0] == slice(0, 16)  # the first 16 of 32 filters
    # the block kind is a structural choice: a bottleneck's 1x1 conv1 is not basic's 3x3
    bottleneck = net.subnet(
        resnet.sample(FixedSource(dict(params, **{"stages.block": "bottleneck"})))
    )
    other = {n: slot for n, slot, _ in bottleneck.params}
    assert other["layer1.0.conv1.weight"] != b["layer1.0.conv1.weight"][0]
