"""``nasblocks schema``: the JSON Schema of spec files, generated from the pydantic models."""

from __future__ import annotations

import json

from nasblocks.cli.main import add_command


def run(args) -> int:
    from nasblocks.spec.schema import spec_json_schema

    print(json.dumps(spec_json_schema(), indent=args.indent))
    return 0


def register(sub) -> None:
    p = add_command(
        sub,
        "schema",
        "print the JSON Schema of spec files (for editor autocompletion)",
        "nasblocks schema > nasblocks.schema.json   # then point your YAML extension at it",
        run,
    )
    p.add_argument("--indent", type=int, default=2)
