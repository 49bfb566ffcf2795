"""``nasblocks summary FILE|PRESET``: the per-layer table (shape, params, FLOPs) and totals."""

from __future__ import annotations

import json

from nasblocks.cli.main import add_command
from nasblocks.errors import SpecError


def parse_shape(text: str) -> tuple[int, ...]:
    """``3x224x224`` -> ``(3, 224, 224)``: exactly three positive sizes, channels first (a
    short form like ``3x64`` is ambiguous, so it is refused rather than guessed)."""
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise SpecError(
            f"--input expects CxHxW with three positive sizes, like 3x224x224; got {text!r}",
            ("--input",),
        )
    return tuple(int(p) for p in parts)


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
