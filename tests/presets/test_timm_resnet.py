"""timm's ResNet family as compact presets: timm's own modules (random init) load strictly into
them with no key renames and give the same outputs; the DSL features they need (deep stems,
average-pool shortcuts, attention kinds by name, stochastic depth) behave as timm's do."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from pydantic import Field
from timm_reference import same_as_timm, yaml_lines
from torch import nn

import nasblocks
from nasblocks import BlockSpec, register_block
from nasblocks.analysis import count
from nasblocks.registry import attention_kinds

timm = pytest.importorskip("timm")

PRESETS = Path(nasblocks.__file__).parent / "presets"
RESNETS = [
    "resnet50d",
    "resnet26d",
    "seresnet50",
    "seresnext26d_32x4d",
    "ecaresnet26t",
    "skresnet18",
    "skresnext50_32x4d",
    "repvgg_a0",
    "darknet53",
    "cspdarknet53",
    "cspresnet50",
    "res2net50_26w_4s",
    "dpn68",
]
LAYER_LISTS = {
    "repvgg_a0",
    "darknet53",
    "cspdarknet53",
    "cspresnet50",
    "dpn68",
}  # no stem/stages sugar


@pytest.mark.parametrize("name", RESNETS)
def test_preset_is_timms_model_in_a_few_lines(name):
    assert yaml_lines(name) <= (40 if name in LAYER_LISTS else 20)
    model = nasblocks.build(name)
    same_as_timm(model, name)
    n_params = sum(p.numel() for p in model.parameters())
    assert count(name)[0] == n_params  # analytic, equal to the built module


@pytest.mark.parametrize(
    ("preset", "overrides", "timm_name"),
    [
        ("resnet50d", {"stages.layers": [3, 4, 23, 3]}, "resnet101d"),
        ("ecaresnet26t", {"stages.layers": [3, 4, 6, 3]}, "ecaresnet50t"),
        ("skresnet18", {"stages.layers": [3, 4, 6, 3]}, "skresnet34"),
        (
            "res2net50_26w_4s",
            {"stages.width_per_group": 14, "stages.block_args.scale": 8},
            "res2net50_14w_8s",
        ),  # fmt: skip
        (
            "darknet53",
            {f"layers[1].layers[{i}].dark_stage.depth": d for i, d in enumerate([1, 1, 1, 2, 2])},
            "darknet21",
        ),
        (
            "seresnext26d_32x4d",
            {"stages.layers": [3, 4, 6, 3], "stem.type": "plain", "stages.avg_down": False},
            "seresnext50_32x4d",
        ),  # fmt: skip
    ],
)
def test_neighbours_are_one_override_away(preset, overrides, timm_name):
    same_as_timm(nasblocks.build(preset, **overrides), timm_name, size=32)


def test_drop_path_rate_follows_timms_linear_schedule():
    ours = nasblocks.build("resnet26d", drop_path_rate=0.1)  # = stages.drop_path_rate
    theirs = timm.create_model("resnet26d", drop_path_rate=0.1)

    def rates(model, attr):
        stages = (model.layer1, model.layer2, model.layer3, model.layer4)
        return [getattr(b.drop_path, attr, 0.0) or 0.0 for s in stages for b in s]

    assert rates(ours, "p") == pytest.approx(rates(theirs, "drop_prob"))
    assert rates(ours, "p")[-1] == pytest.approx(0.1) and rates(ours, "p")[0] == 0.0


def test_drop_path_rate_needs_stages():
    with pytest.raises(nasblocks.SpecError, match="drop_path_rate schedules the blocks"):
        nasblocks.build("repvgg_a0", drop_path_rate=0.1)


def test_drop_path_drops_whole_samples_in_training_only():
    block = nasblocks.build(
        {
            "name": "b",
            "input": [8, 4, 4],
            "layers": [{"basic": {"channels": 8, "drop_path": 0.5}}],
        }
    )
    torch.manual_seed(0)
    x = torch.randn(64, 8, 4, 4)
    layer = block.get_submodule("0")
    branch = layer.bn2(layer.conv2(layer.relu(layer.bn1(layer.conv1(x)))))
    block.train()
    out = block(x)
    dropped = [torch.allclose(out[i], torch.relu(x[i])) for i in range(64)]
    kept = [torch.allclose(out[i], torch.relu(x[i] + 2 * branch[i]), atol=1e-5) for i in range(64)]
    assert all(d or k for d, k in zip(dropped, kept, strict=True))
    assert 16 < sum(dropped) < 48  # about half of the samples, each whole
    block.eval()
    torch.testing.assert_close(block(x), torch.relu(x + layer.bn2(layer.conv2(
        layer.relu(layer.bn1(layer.conv1(x)))))))  # fmt: skip


@pytest.mark.parametrize("channels", [16, 64, 256, 512, 1000, 2048])
def test_eca_kernel_is_ecanets_adaptive_size(channels):
    from nasblocks.blocks.attention import eca_kernel

    expected = timm.layers.EcaModule(channels).conv.kernel_size[0]
    assert eca_kernel(channels) == expected
    t = int(abs(math.log2(channels) + 1) / 2)  # the paper's |log2(C)/gamma + b/gamma|_odd
    assert eca_kernel(channels) in (max(3, t), max(3, t + 1)) and eca_kernel(channels) % 2


def test_se_gate_as_a_graph_broadcasts_at_any_input_size():
    spec = {
        "name": "se_graph",
        "input": [8, 16, 16],
        "layers": [
            {"name": "x", "conv": 8},
            {"global_avgpool": {"flatten": False}},
            {"conv2d": {"out_channels": 2, "kernel_size": 1}},
            "relu",
            {"conv2d": {"out_channels": 8, "kernel_size": 1}},
            "sigmoid",
            {"name": "gated", "multiply": ["x", -1]},
        ],
    }
    model = nasblocks.build(spec).eval()
    for size in (16, 23):
        x = torch.randn(2, 8, size, size)
        with torch.no_grad():
            feats = model.x(x)
            gate = model.get_submodule("5")(
                model.get_submodule("4")(
                    model.get_submodule("3")(model.get_submodule("2")(feats.mean((2, 3), True)))
                )
            )
            torch.testing.assert_close(model(x), feats * gate)


class _HalfGate(nn.Module):
    """A user's attention kind: x * sigmoid(w), one learnt scale per channel."""

    def __init__(self, in_channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(in_channels, 1, 1))

    def forward(self, x):
        return x * torch.sigmoid(self.w)


def test_a_users_attention_kind_is_one_declaration():
    @register_block("test_channel_gate")
    class ChannelGate(BlockSpec):
        """A learnt sigmoid gate per channel."""

        module = _HalfGate
        role = "attention"
        reduction: int = Field(16, ge=1, description="unused")
        examples = (({}, (8, 4, 4)),)

        def output_shape(self, in_shape):
            return tuple(in_shape)

    assert "test_channel_gate" in attention_kinds()
    spec = {
        "name": "r",
        "input": [3, 16, 16],
        "stem": {"out_channels": 8, "kernel_size": 3, "stride": 1, "pool": "none"},
        "stages": {
            "block": "bottleneck",
            "layers": [1, 1],
            "widths": [4, 8],
            "attention": "test_channel_gate",
        },  # fmt: skip
    }
    model = nasblocks.build(spec)
    assert isinstance(model.layer2[0].se, _HalfGate)
    assert "layer1.0.se.w" in model.state_dict()
    # no cost declared: the block is counted built, and the count is still exact
    assert count(spec)[0] == sum(p.numel() for p in model.parameters())


def test_repvgg_reparameterizes_into_plain_convs_with_equal_outputs():
    model = nasblocks.build("repvgg_a0", input_size=64)
    theirs = timm.create_model("repvgg_a0")
    for m in theirs.modules():  # non-trivial BN statistics, so that the fusion is exercised
        if isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.running_mean, 0, 0.1)
            nn.init.uniform_(m.running_var, 0.5, 1.5)
            nn.init.normal_(m.weight, 1, 0.1)
            nn.init.normal_(m.bias, 0, 0.1)
    model.load_state_dict(theirs.state_dict(), strict=True)
    model.eval().double()  # float64: the fusion is exact up to rounding through 22 layers
    theirs.double()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        before = model(x)
        assert nasblocks.reparameterize(model) is model
        nasblocks.reparameterize(model)  # idempotent
        torch.testing.assert_close(model(x), before, rtol=1e-9, atol=1e-9)
        theirs.eval()
        timm.utils.reparameterize_model(theirs, inplace=True)
        torch.testing.assert_close(model(x), theirs(x), rtol=1e-9, atol=1e-9)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 22 and all(c.kernel_size == (3, 3) and c.bias is not None for c in convs)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_non_local_attention_is_usable_in_stages():
    spec = {
        "name": "nl",
        "input": [3, 16, 16],
        "stem": {"out_channels": 8, "kernel_size": 3, "stride": 1, "pool": "none"},
        "stages": {
            "block": "bottleneck",
            "layers": [1, 1],
            "widths": [4, 8],
            "attention": ["none", "non_local"],
            "attention_reduction": 4,
        },  # fmt: skip
    }
    model = nasblocks.build(spec)
    assert type(model.layer2[0].se).__name__ == "NonLocal2d"
    assert model.layer2[0].se.theta.out_channels == 32 // 4
    assert count(spec)[0] == sum(p.numel() for p in model.parameters())
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 1000)
