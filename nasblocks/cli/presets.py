"""``nasblocks presets [PATTERN]``: the presets with their parameters, FLOPs and source paper."""

from __future__ import annotations

from nasblocks.cli.main import add_command


def run(args) -> int:
    from nasblocks.analysis import count, human
    from nasblocks.errors import NasBlocksError
    from nasblocks.presets import preset_names
    from nasblocks.registry import suggest
    from nasblocks.spec import load_spec

    names = preset_names(args.pattern)
    if not names:
        raise NasBlocksError(
            f"no preset matches {args.pattern!r}{suggest(args.pattern, preset_names())}; "
            "`nasblocks presets` lists them all"
        )
    rows = []
    for name in names:
        spec = load_spec(name)
        params, flops = count(spec)
        shape = "x".join(map(str, spec.input_shape))
        rows.append((name, human(params), human(flops), shape, spec.doc.source))
    head = ("preset", "params", "FLOPs", "input", "source")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4])
    return 0


def register(sub) -> None:
    p = add_command(
        sub,
        "presets",
        "list presets with parameter count, FLOPs and source paper",
        "nasblocks presets 'resnet*'",
        run,
    )
    p.add_argument(
        "pattern",
        nargs="?",
        metavar="PATTERN",
        help="only the presets matching this shell-style pattern (resnet*, *_bn)",
    )
