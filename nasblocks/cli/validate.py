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
            out = plan(spec).out_shape
        except SpecError as e:
            print(str(e), file=sys.stderr)
            failed += 1
            continue
        if not args.quiet:
            shape = "x".join(map(str, out))
            print(f"{file}: ok ({spec.name}: {'x'.join(map(str, spec.input_shape))} -> {shape})")
    return 2 if failed else 0


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
