"""``nasblocks export NAME``: write a preset (with overrides) as a standalone spec file."""

from __future__ import annotations

import sys

from nasblocks.cli.main import add_command
from nasblocks.cli.summary import add_set_option, overrides_from


def run(args) -> int:
    from nasblocks.spec import load_spec
    from nasblocks.spec.yamlio import dump_spec

    spec = load_spec(args.spec, overrides_from(args))
    text = dump_spec(spec.raw)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0


def register(sub) -> None:
    p = add_command(
        sub,
        "export",
        "write a preset or spec as a standalone YAML spec",
        "nasblocks export resnet50 --set num_classes=10 > my_resnet.yaml",
        run,
    )
    p.add_argument("spec", metavar="PRESET|FILE")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    add_set_option(p)
