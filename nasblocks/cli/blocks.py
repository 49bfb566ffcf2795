"""``nasblocks blocks [NAME]``: the registered blocks, or one block's fields."""

from __future__ import annotations

from nasblocks.cli.main import add_command


def run(args) -> int:
    from nasblocks.registry import block_names, get_block

    if args.name:
        cls = get_block(args.name)
        print(f"{args.name}: {(cls.__doc__ or '').strip()}")
        if cls.shorthand:
            print(f"short form: {{{args.name}: <{cls.shorthand}>}}")
        if cls.arity != 1:
            print(f"inputs: {'two or more' if cls.arity is None else cls.arity} (via `from`)")
        for name, info in cls.model_fields.items():
            default = "required" if info.is_required() else f"default {info.default!r}"
            print(f"  {name} ({default}): {info.description or ''}")
        return 0
    for name in block_names():
        doc = (get_block(name).__doc__ or "").strip().splitlines()
        print(f"{name:22s} {doc[0] if doc else ''}")
    return 0


def register(sub) -> None:
    p = add_command(
        sub,
        "blocks",
        "list the registered blocks, or one block's fields",
        "nasblocks blocks bottleneck",
        run,
    )
    p.add_argument("name", nargs="?", help="a block name")
