"""A picture of a network: a Mermaid flowchart of its plan.

    nasblocks draw experiments/examples/unet_small.yaml -o unet.md
    nasblocks.draw.mermaid("resnet18")      # the Mermaid text

One node per layer, labelled with its name, block and output shape (``x4`` when repeated);
an edge per input, so skips and branches (U-Net, Inception, the NAS-Bench-201 cell) read as
they are wired. A group or a template use is one node, collapsed, unless ``expand`` is given:
then it is a subgraph of its own layers (one copy of a repeated group, marked ``x N``).

Why Mermaid: a ``mermaid`` code block renders as a diagram where users read reports and
READMEs (GitHub, GitLab, VS Code's and JupyterLab's markdown) with nothing to install; the
text is small, diffable and needs no renderer here. Graphviz would need the ``dot`` binary
on every machine that draws.
"""

from __future__ import annotations

import re
from typing import Any

from nasblocks.spec.plan import INPUT, Node, Plan, plan


def _shape(shape: Any) -> str:
    if isinstance(shape, list):
        return " + ".join(_shape(s) for s in shape)
    return "x".join(map(str, shape))


def _id(prefix: str, name: str) -> str:
    return prefix + re.sub(r"[^A-Za-z0-9_]", "_", name)


def _label(node: Node) -> str:
    layer = node.layer
    times = f" x{layer.repeat}" if layer.repeat > 1 else ""
    text = f"{layer.name}<br/>{layer.kind}{times}<br/>{_shape(node.out_shape)}"
    return text.replace('"', "'")


class _Graph:
    def __init__(self, expand: bool) -> None:
        self.expand = expand
        self.lines: list[str] = []

    def add(self, p: Plan, prefix: str, entry: str, indent: str = "    ") -> str:
        """Draw ``p``'s layers; ``entry`` is the node its INPUT stands for. Returns the id
        of its output node."""
        ids: list[str] = []
        for node in p.nodes:
            ident = _id(prefix, node.name)
            ids.append(ident)
            sources = [entry if j == INPUT else ids[j] for j in node.inputs]
            if node.group is not None and self.expand:
                times = f" x{node.layer.repeat}" if node.layer.repeat > 1 else ""
                self.lines.append(
                    f'{indent}subgraph {ident}_g ["{node.layer.name}: {node.layer.kind}{times}"]'
                )
                inner_entry = f"{ident}_in"
                self.lines.append(f'{indent}    {inner_entry}(["in<br/>{_shape(node.in_shape)}"])')
                out = self.add(node.group, f"{ident}__", inner_entry, indent + "    ")
                self.lines.append(f"{indent}end")
                for s in sources:
                    self._edge(s, inner_entry, indent)
                ids[-1] = out
                continue
            shape = '["{}"]' if node.group is None else '[["{}"]]'
            self.lines.append(f"{indent}{ident}{shape.format(_label(node))}")
            for s in sources:
                self._edge(s, ident, indent, dashed=node.layer.aux)
        main = [i for i, n in zip(ids, p.nodes, strict=True) if not n.layer.aux]
        return main[-1] if main else entry

    def _edge(self, a: str, b: str, indent: str, dashed: bool = False) -> None:
        self.lines.append(f"{indent}{a} {'-.->' if dashed else '-->'} {b}")


def mermaid(source: Any, *, expand: bool = False, direction: str = "TB") -> str:
    """The Mermaid flowchart of a spec, preset name or spec file (the text of a ``mermaid``
    block). ``expand``: draw groups and templates as subgraphs of their layers."""
    import nasblocks

    spec = source if hasattr(source, "plan") else nasblocks.load_spec(source)
    p = plan(spec)
    g = _Graph(expand)
    g.lines.append(f"flowchart {direction}")
    g.lines.append(f'    input(["input<br/>{_shape(p.in_shape)}"])')
    g.add(p, "n_", "input")
    return "\n".join(g.lines) + "\n"


def counts(text: str) -> tuple[int, int]:
    """(nodes, edges) of a flowchart :func:`mermaid` wrote."""
    nodes = sum(1 for line in text.splitlines() if re.match(r"\s*\w+(\[|\(\[)", line))
    edges = sum(1 for line in text.splitlines() if re.search(r"\s(-->|-\.->)\s", line))
    return nodes, edges
