"""``nasblocks draw``: one node per layer with its block and shape, one edge per input."""

from __future__ import annotations

from pathlib import Path

import pytest

from nasblocks.cli.main import main
from nasblocks.draw import counts, mermaid
from nasblocks.space import FirstSource, load_space
from nasblocks.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]

# (example, nodes, edges): the input node + one per layer; one edge per input of a layer
EXAMPLES = [
    ("unet_small", 7, 8),  # d1 d2 d3 u2 u1 logits: two skips into the up blocks
    (
        "vgg_cifar_bn",
        1 + len(load_spec(ROOT / "experiments/examples/vgg_cifar_bn.yaml").plan.nodes),
        None,
    ),
    (
        "se_resnext_tiny",
        1 + len(load_spec(ROOT / "experiments/examples/se_resnext_tiny.yaml").plan.nodes),
        None,
    ),
]


@pytest.mark.parametrize(("name", "nodes", "edges"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_every_example_draws_one_node_per_layer(name, nodes, edges):
    path = ROOT / "experiments" / "examples" / f"{name}.yaml"
    spec = load_spec(path)
    text = mermaid(spec)
    got_nodes, got_edges = counts(text)
    inputs = sum(len(n.inputs) for n in spec.plan.nodes)
    assert (got_nodes, got_edges) == (nodes, edges if edges is not None else inputs)
    assert text.startswith("flowchart TB\n")
    for node in spec.plan.nodes:  # its name, block and output shape
        assert f"{node.name}<br/>{node.layer.kind}" in text
        assert "x".join(map(str, node.out_shape)) in text


def test_the_nas_bench_201_cell_collapses_and_expands():
    space = load_space(ROOT / "search_spaces" / "nas_bench_201.yaml")
    spec = load_spec(space.sample(FirstSource()).spec)
    collapsed = mermaid(spec)
    assert counts(collapsed) == (13, 12)  # 12 layers in a chain; the cells are one node each
    assert 'n_stage1[["stage1<br/>cell x5<br/>16x32x32"]]' in collapsed
    expanded = mermaid(spec, expand=True)
    # the 7 plain layers and the input; per stage an entry node and the cell's 8 layers (6 ops
    # and 2 sums) with 11 edges; per reduction an entry and 5 layers with 6 edges
    cells, reductions = 3 * (1 + 8), 2 * (1 + 5)
    assert counts(expanded) == (1 + 7 + cells + reductions, 7 + 5 + 3 * 11 + 2 * 6)
    assert 'subgraph n_stage1_g ["stage1: cell x5"]' in expanded
    assert "n_stage1__node2 --> n_stage1__e32" in expanded  # node 2 feeds edge 3<-2


def test_the_cli_writes_markdown_or_mermaid(tmp_path, capsys):
    example = ROOT / "experiments" / "examples" / "unet_small.yaml"
    assert main(["draw", str(example), "-o", str(tmp_path / "unet.md")]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {tmp_path / 'unet.md'} (7 nodes, 8 edges")
    text = (tmp_path / "unet.md").read_text()
    assert text.startswith("```mermaid\nflowchart TB\n") and text.endswith("```\n")
    assert main(["draw", "resnet18", "-o", str(tmp_path / "r18.mmd"), "--direction", "LR"]) == 0
    assert (tmp_path / "r18.mmd").read_text().startswith("flowchart LR\n")
    assert main(["draw", "no_such_net"]) == 2
