"""Dotted layer names put a module inside a container whatever the data flow: timm's
interleaved children (Res2Net's ``convs.i`` / ``bns.i``) written as a plain layer list, with
timm's state_dict loading strictly; misuse is one located line."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch import nn

import nasblocks
from nasblocks.cli.main import main


def _scale_group(i: int, width: int) -> list[str]:
    """Group i of Res2Net's hierarchical 3x3 convs: slice, add the previous output, conv,
    norm, relu."""
    take = f"{{name: x{i}, from: act, split: {{start: {i * width}, channels: {width}}}}}"
    into = [take] if i == 0 else [take, f"{{name: s{i}, add: [y{i - 1}, x{i}]}}"]
    return [
        *into,
        f"{{name: convs.{i}, conv2d: {{out_channels: {width}, kernel_size: 3, padding: 1, "
        "bias: false}}",
        f"{{name: bns.{i}, batchnorm: null}}",
        f"{{name: y{i}, relu: null}}",
    ]


def bottle2neck(width: int = 26, scale: int = 4, channels: int = 256) -> str:
    """timm's ``Bottle2neck`` (stride 1, no downsample) in the general layer list."""
    layers = [
        f"{{name: conv1, conv2d: {{out_channels: {width * scale}, kernel_size: 1, bias: false}}}}",
        "{name: bn1, batchnorm: null}",
        "{name: act, relu: null}",
    ]
    for i in range(scale - 1):
        layers += _scale_group(i, width)
    last = scale - 1
    layers += [
        f"{{name: x{last}, from: act, split: {{start: {last * width}, channels: {width}}}}}",
        "{name: cat, concat: [" + ", ".join([*(f"y{i}" for i in range(last)), f"x{last}"]) + "]}",
        f"{{name: conv3, conv2d: {{out_channels: {channels}, kernel_size: 1, bias: false}}}}",
        "{name: bn3, batchnorm: null}",
        "{name: sum, add: [bn3, input]}",
        "{name: out, relu: null}",
    ]
    head = f"name: bottle2neck\ninput: [{channels}, 16, 16]\nlayers:\n"
    return head + "".join(f"  - {layer}\n" for layer in layers)


def test_res2nets_interleaved_children_as_a_layer_list(tmp_path):
    pytest.importorskip("timm")
    from timm.models.res2net import Bottle2neck

    path = tmp_path / "b.yaml"
    path.write_text(bottle2neck())
    ours = nasblocks.build(path).eval()
    theirs = Bottle2neck(256, 64, base_width=26, scale=4, norm_layer=nn.BatchNorm2d).eval()
    gen = torch.Generator().manual_seed(0)
    for m in theirs.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    assert set(ours.state_dict()) == set(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 256, 16, 16, generator=gen)
    with torch.no_grad():
        want = theirs(x.clone())
        torch.testing.assert_close(ours(x.clone()), want)
        torch.testing.assert_close(torch.fx.symbolic_trace(ours)(x.clone()), want)
        torch.testing.assert_close(pickle.loads(pickle.dumps(ours))(x.clone()), want)
        torch.testing.assert_close(copy.deepcopy(ours)(x.clone()), want)
    assert [n for n, _ in ours.convs.named_children()] == ["0", "1", "2"]


def test_a_chain_with_dotted_names_and_references_to_them(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "name: c\ninput: [3, 8, 8]\nlayers:\n"
        "  - {name: body.conv, conv2d: {out_channels: 4, kernel_size: 3, padding: 1}}\n"
        "  - {name: body.norm, batchnorm: null}\n"
        "  - {name: skip.0, from: input, conv2d: {out_channels: 4, kernel_size: 1}}\n"
        "  - {name: sum, add: [body.norm, skip.0]}\n"
        "  - {name: head.fc, global_avgpool: {flatten: true}}\n"
    )
    model = nasblocks.build(path)
    keys = {k.rsplit(".", 1)[0] for k in model.state_dict()}
    assert keys == {"body.conv", "body.norm", "skip.0"}
    assert model(torch.randn(1, 3, 8, 8)).shape == (1, 4)


BAD = [
    (
        "{name: convs, conv: 4}\n  - {name: convs.0, conv: 4}",
        5,
        "layer 'convs.0' would go inside layer 'convs', which is a module of its own",
    ),
    (
        "{name: a.b, conv: 4}\n  - {name: a.b.c, conv: 4}",
        5,
        "layer 'a.b.c' would go inside layer 'a.b'",
    ),
    ("{name: a.b.c.d.e, conv: 4}", 4, "layer name 'a.b.c.d.e' has more than 3 dots"),
    ("{name: a..b, conv: 4}", 4, "in layer name 'a..b': layer name part '' is not allowed"),
    (
        "{name: convs.forward, conv: 4}",
        4,
        "layer name part 'forward' is an attribute every nn.Module has",
    ),
    ("{name: x.__class__, conv: 4}", 4, "layer name part '__class__' is not allowed"),
    ("{name: forward_head, conv: 4}", 4, "'forward_head' is an attribute of nasblocks' networks"),
    ("{name: num_classes.x, conv: 4}", 4, "'num_classes' is an attribute of nasblocks' networks"),
]


@pytest.mark.parametrize("layers, line, message", BAD)
def test_bad_dotted_names_are_one_located_line(tmp_path, capsys, layers, line, message):
    path = tmp_path / "bad.yaml"
    path.write_text(f"name: t\ninput: [3, 8, 8]\nlayers:\n  - {layers}\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"{path}:{line}:"), err
    assert message in err, err


def test_network_attribute_names_stay_free_for_template_parameters(tmp_path):
    """Only layer names become attributes of the network: a template parameter may be called
    ``drop_rate``, an inner part of a dotted name ``num_classes``."""
    path = tmp_path / "t.yaml"
    path.write_text(
        "name: t\ninput: [3, 8, 8]\n"
        "templates:\n"
        "  unit:\n"
        "    params: {width: null, drop_rate: 0.1}\n"
        "    layers: [{conv: $width}, {dropout: $drop_rate}]\n"
        "layers:\n"
        "  - {name: body, unit: {width: 4}}\n"
        "  - {name: head.num_classes, global_avgpool: {flatten: true}}\n"
    )
    model = nasblocks.build(path)
    assert model(torch.randn(1, 3, 8, 8)).shape == (1, 4)


def test_output_fields_of_dotted_layers_use_underscores(tmp_path):
    text = (
        "name: t\ninput: [3, 8, 8]\nlayers:\n"
        "  - {name: body.conv, conv: 4}\n"
        "  - {name: aux.head, aux: true, global_avgpool: {flatten: true}}\n"
        "  - {name: head.pool, from: body.conv, global_avgpool: {flatten: true}}\n"
    )
    (tmp_path / "a.yaml").write_text(text)
    out = nasblocks.build(tmp_path / "a.yaml").train()(torch.randn(1, 3, 8, 8))
    assert out._fields == ("head_pool", "aux_head")
    (tmp_path / "b.yaml").write_text(text + "outputs: [body.conv, head.pool]\n")
    model = nasblocks.build(tmp_path / "b.yaml")
    assert [f for f, _ in model.spec.outputs] == ["body_conv", "head_pool"]
    conv, pooled = model.eval()(torch.randn(1, 3, 8, 8))
    assert conv.shape == (1, 4, 8, 8) and pooled.shape == (1, 4)
