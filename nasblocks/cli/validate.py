"""``nasblocks validate FILE...``: parse, expand and shape-check specs without importing torch."""

from __future__ import annotations

import sys

from nasblocks.cli.main import add_command


def run(args) -> int:
    from nasblocks.errors import SpecError
    from nasblocks.spec import load_spec, plan

    failed = 0
    for file in args.files:
        try:
            spec = load_spec(file)
            net_plan = plan(spec)
        except SpecError as e:
            print(str(e), file=sys.stderr)
            failed += 1
            continue
        if not args.quiet:
            shape = "x".join(map(str, net_plan.out_shape))
            size = _size(net_plan)
            print(
                f"{file}: ok ({spec.name}: {'x'.join(map(str, spec.input_shape))} -> {shape}"
                f"{size})"
            )
    return 2 if failed else 0


def _size(net_plan) -> str:
    """``, P params, M MACs`` from the blocks' analytic costs (torch-free); for a network
    with blocks that declare none, a lower bound and a pointer to ``summary``."""
    from nasblocks.analysis import human
    from nasblocks.spec.plan import plan_costs

    missing: set[str] = set()

    def declared(block, in_shape):
        got = block.cost(in_shape)
        if got is None:
            missing.add(block.kind)
            return (0, 0)
        return got

    costs = plan_costs(net_plan, declared)
    params, macs = sum(c[0] for c in costs), sum(c[1] for c in costs)
    if missing:
        kinds = ", ".join(sorted(missing))
        return (
            f", at least {params:,} params and {human(macs)} MACs; {kinds} counted by "
            "`nasblocks summary`"
        )
    return f", {params:,} params, {human(macs)} MACs"


def register(sub) -> None:
    p = add_command(
        sub,
        "validate",
        "check spec files: syntax, fields and every shape",
        "nasblocks validate nets/*.yaml",
        run,
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
