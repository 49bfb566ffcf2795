"""``nasblocks draw SPEC|PRESET|OUT [-o FILE]``: a Mermaid flowchart of a network."""

from __future__ import annotations

import sys
from pathlib import Path

from nasblocks.cli.main import add_command
from nasblocks.cli.summary import add_set_option, overrides_from


def run(args) -> int:
    from nasblocks.draw import counts, mermaid
    from nasblocks.errors import NasBlocksError
    from nasblocks.files import write_atomic
    from nasblocks.search.outputs.folder import RUN_FILE
    from nasblocks.spec import load_spec

    source = Path(args.spec)
    if source.is_dir() and (source / RUN_FILE).is_file():  # a search's output folder
        source = source / "best.yaml"
        if not source.is_file():
            raise NasBlocksError(f"{args.spec}: no trial has completed yet (no best.yaml)")
    spec = load_spec(str(source) if source.exists() else args.spec, overrides_from(args))
    text = mermaid(spec, expand=args.expand, direction=args.direction)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    out = Path(args.output)
    body = text if out.suffix == ".mmd" else f"```mermaid\n{text}```\n"
    write_atomic(out, body)
    nodes, edges = counts(text)
    print(
        f"wrote {out} ({nodes} nodes, {edges} edges; Mermaid: renders in GitHub, GitLab, VS Code)"
    )
    return 0


def register(sub) -> None:
    p = add_command(
        sub,
        "draw",
        "draw a network as a Mermaid flowchart (one node per layer, its block and shape)",
        "nasblocks draw experiments/examples/unet_small.yaml -o unet.md",
        run,
    )
    p.add_argument(
        "spec", metavar="SPEC|PRESET|OUT", help="a spec file, a preset, or a search's folder"
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="FILE.md: a markdown file with a mermaid block; FILE.mmd: Mermaid alone "
        "(default: print the Mermaid text)",
    )
    p.add_argument(
        "--expand", action="store_true", help="draw groups and templates layer by layer"
    )
    p.add_argument(
        "--direction", choices=["TB", "LR"], default="TB", help="top-down or left-right"
    )
    add_set_option(p)
