"""Per-layer analysis of a spec: output shape, parameters and FLOPs, without training.

Output shapes come from the shape plan; parameters and FLOPs from each block's analytic
:meth:`~nasblocks.registry.BlockSpec.cost` (a block without one is built alone on PyTorch's
``meta`` device and counted under ``FlopCounterMode``, once per input shape).
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
from nasblocks.spec.plan import Node, Plan, plan_costs


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


Cost = tuple[int, int]  # (parameters, multiply-accumulates)
_MEASURED: dict[tuple[str, str, Any], Cost] = {}  # blocks without a cost contract, counted


def block_cost(block: Any, in_shape: Any) -> Cost:
    """``(parameters, MACs)`` of one block for ``in_shape``: its analytic :meth:`cost`, or,
    for a block that declares none (attention blocks, plugins), the block alone built on the
    meta device and counted once per (fields, input shape)."""
    declared = block.cost(in_shape)
    if declared is not None:
        return declared
    key = (block.kind, block.model_dump_json(), _frozen(in_shape))
    cached = _MEASURED.get(key)
    if cached is None:
        cached = measure_block(block, in_shape)
        if len(_MEASURED) > 4096:
            _MEASURED.clear()
        _MEASURED[key] = cached
    return cached


def _frozen(shape: Any) -> Any:
    return tuple(_frozen(s) for s in shape) if isinstance(shape, list) else tuple(shape)


def measure_block(block: Any, in_shape: Any) -> Cost:
    """Count one block built alone (see :func:`_counted`)."""
    shapes = in_shape if type(block).arity != 1 else [in_shape]
    return _counted(lambda: block.build_for(in_shape), shapes)


def _counted(build: Any, shapes: list[Any]) -> Cost:
    """Parameters, and ``FlopCounterMode`` FLOPs halved of an eval-mode forward of one sample
    per input shape, of the module ``build()`` makes on the meta device (on the CPU where an
    op has no meta kernel, e.g. deformable convolution)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    def run(device: str) -> Cost:
        with torch.device(device):
            module = build()
        module.eval()
        xs = [torch.zeros(1, *s, device=device) for s in shapes]
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            module(*xs)
        return sum(p.numel() for p in module.parameters()), counter.get_total_flops() // 2

    try:
        return run("meta")
    except (NotImplementedError, RuntimeError):  # no meta kernel: count on the CPU
        return run("cpu")


def node_costs(p: Plan) -> dict[int, Cost]:
    """Cost of every node of ``p`` by index (:func:`nasblocks.spec.plan.plan_costs` with
    :func:`block_cost`)."""
    return dict(enumerate(plan_costs(p, block_cost)))


def measure(spec: Spec, input_shape: tuple[int, ...] | None = None) -> Cost:
    """``(parameters, MACs)`` counted on the whole network built (see :func:`_counted`): the
    reference the analytic costs are checked against (slow: seconds for a large net)."""
    from nasblocks.builder import build_spec

    shape = tuple(input_shape) if input_shape else spec.input_shape
    return _counted(lambda: build_spec(spec, shape), [shape])


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
    rows: list[Row] = []

    def add(p: Plan, prefix: str, level: int) -> Cost:
        costs = node_costs(p)
        for i, node in enumerate(p.nodes):
            name = prefix + node.name
            params, macs = costs[i]
            rows.append(Row(name, _kind(node), node.out_shape, params, macs, level))
            if node.group is not None and level < depth and node.layer.repeat == 1:
                add(node.group, name + ".", level + 1)
        return sum(c[0] for c in costs.values()), sum(c[1] for c in costs.values())

    total, flops = add(net_plan, "", 0)
    # nasblocks freezes nothing: every parameter of a built network is trainable
    return Summary(spec.name, shape, net_plan.out_shape, rows, total, total, flops)


def _kind(node: Node) -> str:
    kind = node.layer.kind
    if node.layer.repeat > 1:
        kind += f" x{node.layer.repeat}"
    if node.layer.aux:
        kind += " (aux)"
    return kind


def count(
    spec_or_path: str | Path | dict | Spec, input_shape: tuple[int, ...] | None = None
) -> Cost:
    """``(parameters, FLOPs)`` of a spec, from the blocks' analytic costs (no network is
    built; blocks without a cost contract are counted alone, once per shape)."""
    spec = load_spec(spec_or_path)
    costs = node_costs(plan(spec, tuple(input_shape) if input_shape else None))
    return sum(c[0] for c in costs.values()), sum(c[1] for c in costs.values())
