"""GDAS, the differentiable strategy: hard Gumbel-softmax draws run exactly the drawn subnet,
the architecture logits follow the validation loss in the one trainer, and the search starts
from their argmax."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_oneshot_search import trained_whole_and_interrupted

from nasblocks.cli.main import main
from nasblocks.search import search
from nasblocks.search.candidate import DataInfo
from nasblocks.search.outputs.results import load_study
from nasblocks.space import load_space
from nasblocks.supernet.gdas import TAU_MAX, TAU_MIN, temperature
from nasblocks.supernet.training import TrainedSupernet, fixed_training
from nasblocks.train.handle import DataHandle

SPACE = """
name: tiny_gdas
input: [1, 8, 8]
layers:
  - {name: stem, conv_bn_act: {out_channels: 16, kernel_size: 3}}
  - name: b1
    block:
      choice: [{basic: 16}, {separable: {out_channels: 16}}, identity]
      names: [basic, sep, skip]
      label: op1
  - name: b2
    block: {choice: [{basic: 16}, zero], names: [basic, zero], label: op2}
  - name: b3
    block: {choice: [{basic: 16}, zero], names: [basic, zero], label: op2}
  - {name: pool, global_avgpool: {flatten: true}}
  - {name: fc, linear: $num_classes}
search:
  data: {dataset: digits}
  train: {batch_size: 64, lr: 0.05, device: cpu, max_train_batches: 8}
  supernet: {strategy: gdas, epochs: EPOCHS, discovery: 4, arch_lr: 0.05}
  budget: {trials: 3}
  sampler: random
  pruner: none
  threads: 1
"""
INFO = DataInfo((1, 8, 8), 10)


def write(tmp_path: Path, epochs: int = 3) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(SPACE.replace("EPOCHS", str(epochs)))
    return path


def test_a_training_call_runs_the_drawn_subnet_and_reaches_every_logit(tmp_path):
    space, _ = fixed_training(load_space(write(tmp_path)))
    net = TrainedSupernet(space, INFO, discovery=4)
    arch = net.architecture
    assert arch is not None and arch.names == ["op1", "op2"]
    net.train()
    x = torch.randn(16, 1, 8, 8)
    out = net(x)
    while net.last is None or net.last.sample.params["op2"] != "basic":
        out = net(x)  # (after a zero op, nothing upstream reaches the output)
    drawn, gates = net.last, dict(arch.gates)
    assert drawn is not None and set(gates) == {"op1", "op2"}
    nodes = {n.name: n for n in space.nodes}
    for name, (_, index) in gates.items():  # the gated options are the ones the subnet runs
        assert drawn.sample.params[name] == nodes[name].labels[index]
    out.sum().backward()
    arch.gates = {}  # the same subnet, ungated: the gates are 1 and 0 in value
    torch.testing.assert_close(out.detach(), net.run(drawn, x).detach(), rtol=1e-6, atol=1e-6)
    for alpha in arch.alpha:  # the straight-through weights give every option a gradient
        assert alpha.grad is not None and bool((alpha.grad != 0).all())
    net.eval()  # scoring runs the plain subnet: no gate even with gates left over
    stats = net.recalibrate(drawn, [(x, None)])
    arch.gates = gates
    with torch.no_grad():
        gated = net.run(drawn, x, stats)
        arch.gates = {}
        plain = net.run(drawn, x, stats)
    assert torch.equal(gated, plain)


def test_the_temperature_falls_linearly_from_ten_to_a_tenth():
    assert temperature(1, 5) == TAU_MAX and temperature(5, 5) == pytest.approx(TAU_MIN)
    assert temperature(3, 5) == pytest.approx((TAU_MAX + TAU_MIN) / 2)


def test_gdas_search_learns_to_avoid_the_zero_op_and_starts_from_its_argmax(tmp_path):
    out = tmp_path / "out"
    outcome = search(write(tmp_path), out=out, progress=False)
    assert outcome.finished == 3
    record = json.loads((out / "supernet.json").read_text())
    assert record["strategy"] == "gdas" and record["arch_lr"] == 0.05
    # a zero op cannot lower the validation loss: its weight fell below the basic block's
    assert record["alpha"]["op2"]["basic"] > record["alpha"]["op2"]["zero"]
    assert record["architecture"]["op2"] == "basic"
    first = load_study(out).trials[0]
    assert first.params == record["architecture"]
    assert first.user_attrs["gdas"] == "argmax of alpha"
    report = (out / "report.md").read_text()
    assert "Architecture weights at the end (softmax of alpha" in report
    assert "| `op2` |" in report


def test_an_interrupted_gdas_supernet_resumes_to_the_same_weights_and_logits(tmp_path):
    space, _ = fixed_training(load_space(write(tmp_path)))
    data = DataHandle.from_settings(space.settings.data, 0)
    whole, resumed, record, _ = trained_whole_and_interrupted(space, data, INFO, tmp_path)
    assert len(record["history"]) == 3
    assert whole.architecture is not None and resumed.architecture is not None
    for a, b in zip(
        [*whole.weights, *whole.architecture.alpha],
        [*resumed.weights, *resumed.architecture.alpha],
        strict=True,
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_gdas_on_a_numeric_node_is_one_located_line(tmp_path, capsys):
    path = write(tmp_path)
    path.write_text(
        path.read_text().replace(
            "out_channels: 16, kernel", "out_channels: {choice: [8, 16]}, kernel"
        )
    )
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"{path}:5:")
    assert "layers[0].conv_bn_act.out_channels: search.supernet.strategy gdas" in err
    assert "use spos or sandwich" in err
