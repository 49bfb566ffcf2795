"""Every preset is a plain traceable module: torch.fx traces it, and the trace computes the
same outputs; a few also go through torch.export."""

from __future__ import annotations

import pytest
import torch

import nasblocks
from nasblocks.presets import preset_names


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_traces(name):
    with torch.device("meta"):
        model = nasblocks.build(name)
    graph = torch.fx.symbolic_trace(model.eval()).graph
    called = {n.target.split(".")[0] for n in graph.nodes if n.op == "call_module"}
    aux = {layer.name for layer in model.spec.layers if layer.aux}  # skipped in eval mode
    top = {n for n, m in model.named_children() if any(True for _ in m.parameters())} - aux
    assert top <= called, f"layers missing from the trace: {top - called}"


SMALL = {  # preset -> overrides giving a small but valid input
    "resnet18": {"input_size": [64, 64]},
    "se_resnet18": {"input_size": [64, 64]},
    "mobilenet_v2": {"input_size": [64, 64]},
    "shufflenet_v2_x0_5": {"input_size": [64, 64]},
    "googlenet": {"input_size": [64, 64]},
    "inception_v3": {"input_size": [96, 96], "outputs": ["fc"]},
    "unet": {"input_size": [32, 64]},
    "mnist_cnn": {},
    "mnist_fc": {},
    "shake_resnet26_2x32d": {},
    "vgg_cifar": {},
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_trace_computes_the_same_outputs(name):
    torch.manual_seed(0)
    model = nasblocks.build(name, **SMALL[name]).eval()
    x = torch.randn(2, *model.spec.input_shape)
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(torch.fx.symbolic_trace(model)(x), expected)


@pytest.mark.parametrize("name", ["resnet18", "googlenet", "mobilenet_v2"])
def test_export(name):
    model = nasblocks.build(name, **SMALL[name]).eval()
    x = torch.randn(1, *model.spec.input_shape)
    with torch.no_grad():
        expected = model(x)
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), expected)
