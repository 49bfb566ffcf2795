"""Per-layer analysis of a spec: output shape, parameters and FLOPs, without training.

Output shapes come from the shape plan; parameters and FLOPs from building the network on
PyTorch's ``meta`` device (no memory) and running one forward under ``FlopCounterMode``.
FLOPs are counted as multiply-accumulates, the convention of torchvision's model tables and
of most papers (ResNet-50: 4.1 GFLOPs at 224x224); normalization, activations and pooling
are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasblocks.errors import SpecError
from nasblocks.spec import Spec, load_spec, plan
from nasblocks.spec.plan import Node, Plan


@dataclass(frozen=True)
class Row:
    name: str
    kind: str
    out_shape: tuple[int, ...]
    params: int
    flops: int
    depth: int = 0


@dataclass(frozen=True)
class Summary:
    """A per-layer table with totals; ``str()`` renders it."""

    name: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    rows: list[Row] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    total_flops: int = 0

    def __str__(self) -> str:
        return format_table(self)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "params": self.total_params,
            "flops": self.total_flops,
            "layers": [r.__dict__ | {"out_shape": list(r.out_shape)} for r in self.rows],
        }


def human(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


def format_table(s: Summary) -> str:
    head = ("layer", "kind", "output", "params", "FLOPs")
    body = [
        (
            "  " * r.depth + r.name,
            r.kind,
            "x".join(map(str, r.out_shape)),
            f"{r.params:,}",
            human(r.flops),
        )
        for r in s.rows
    ]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]

    def line(cells):
        return "  ".join(
            c.ljust(w) if i < 3 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    rule = "-" * len(line(head))
    out = [f"{s.name}: input {'x'.join(map(str, s.input_shape))}", rule, line(head), rule]
    out += [line(b) for b in body]
    out += [
        rule,
        f"total params: {s.total_params:,} ({human(s.total_params)})",
        f"trainable params: {s.trainable_params:,}",
        f"FLOPs (multiply-accumulates): {s.total_flops:,} ({human(s.total_flops)})",
        f"output: {'x'.join(map(str, s.output_shape))}",
    ]
    return "\n".join(out)


def _measure(spec: Spec, input_shape: tuple[int, ...]):
    """Build on the meta device and count parameters and FLOPs per module."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from nasblocks.builder import build_spec

    def run(device: str):
        with torch.device(device):
            model = build_spec(spec, input_shape)
        model.eval()
        x = torch.zeros(1, *input_shape, device=device)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
        return model, counter.get_flop_counts()

    try:
        model, counts = run("meta")
    except (NotImplementedError, RuntimeError):  # an op without a meta kernel (deform conv)
        model, counts = run("cpu")
    root = type(model).__name__
    flops = {
        (k[len(root) + 1 :] if k.startswith(root + ".") else ("" if k == root else k)): sum(
            v.values()
        )
        // 2
        for k, v in counts.items()
        if k != "Global"
    }
    return model, flops


def summary(
    spec_or_path: str | Path | dict | Spec,
    input_shape: tuple[int, ...] | list[int] | None = None,
    depth: int = 1,
) -> Summary:
    """Rows (name, kind, output shape, params, FLOPs) for every layer, groups to ``depth``.

    ``spec_or_path``: a spec file, preset name, mapping or Spec, or a model nasblocks built
    (its ``model.spec``).
    """
    if not isinstance(spec_or_path, (str, Path, dict, Spec)):
        built = getattr(spec_or_path, "spec", None)
        if not isinstance(built, Spec):
            raise SpecError(
                "summary takes a spec file, a preset name, a mapping, a Spec or a model built "
                f"by nasblocks.build, got {type(spec_or_path).__name__}"
            )
        spec_or_path = built
    spec = load_spec(spec_or_path)
    shape = tuple(input_shape) if input_shape else spec.input_shape
    net_plan = plan(spec, shape)
    model, flops = _measure(spec, shape)
    rows: list[Row] = []

    def params_of(name: str) -> int:
        return sum(p.numel() for p in model.get_submodule(name).parameters())

    def add(p: Plan, prefix: str, level: int) -> None:
        for node in p.nodes:
            name = prefix + node.name
            rows.append(
                Row(name, _kind(node), node.out_shape, params_of(name), flops.get(name, 0), level)
            )
            if node.group is not None and level < depth and node.layer.repeat == 1:
                add(node.group, name + ".", level + 1)

    add(net_plan, "", 0)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Summary(
        spec.name,
        shape,
        net_plan.out_shape,
        rows,
        total,
        trainable,
        flops.get("", sum(r.flops for r in rows if r.depth == 0)),
    )


def _kind(node: Node) -> str:
    kind = node.layer.kind
    if node.layer.repeat > 1:
        kind += f" x{node.layer.repeat}"
    if node.layer.aux:
        kind += " (aux)"
    return kind


def count(
    spec_or_path: str | Path | dict | Spec, input_shape: tuple[int, ...] | None = None
) -> tuple[int, int]:
    """``(parameters, FLOPs)`` of a spec, cheaply (meta device)."""
    spec = load_spec(spec_or_path)
    model, flops = _measure(spec, tuple(input_shape) if input_shape else spec.input_shape)
    return sum(p.numel() for p in model.parameters()), flops.get("", 0)
