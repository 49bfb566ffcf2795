"""``nasblocks summary FILE|PRESET``: the per-layer table (shape, params, FLOPs) and totals."""

from __future__ import annotations

import json

from nasblocks.cli.main import add_command
from nasblocks.errors import SpecError


def parse_shape(text: str) -> tuple[int, ...]:
    """``3x224x224`` (or ``224x224``, ``224``) -> ``(3, 224, 224)`` (C defaults to 3)."""
    try:
        dims = tuple(int(d) for d in text.lower().replace(",", "x").split("x"))
    except ValueError:
        dims = ()
    if not dims or any(d < 1 for d in dims) or len(dims) > 3:
        raise SpecError(f"--input expects CxHxW like 3x224x224, got {text!r}", ("--input",))
    if len(dims) == 1:
        dims = (3, dims[0], dims[0])
    elif len(dims) == 2:
        dims = (3, *dims)
    return dims


def overrides_from(args) -> dict:
    from nasblocks.spec.overrides import parse_assignment

    return dict(parse_assignment(s) for s in getattr(args, "set", None) or [])


def run(args) -> int:
    from nasblocks.analysis import summary
    from nasblocks.spec import load_spec

    spec = load_spec(args.spec, overrides_from(args))
    shape = parse_shape(args.input) if args.input else None
    result = summary(spec, shape, depth=args.depth)
    print(json.dumps(result.as_dict(), indent=2) if args.json else result)
    return 0


def add_set_option(p) -> None:
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a spec field by dotted path (repeatable), e.g. stages.groups=32",
    )


def register(sub) -> None:
    p = add_command(
        sub,
        "summary",
        "per-layer table of a spec or preset: shape, params, FLOPs",
        "nasblocks summary resnet50 --input 3x160x160 --set stages.groups=32",
        run,
    )
    p.add_argument("spec", metavar="FILE|PRESET")
    p.add_argument("--input", metavar="CxHxW", help="input shape (default: the spec's)")
    p.add_argument("--depth", type=int, default=1, help="how deep to list nested groups")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_set_option(p)
