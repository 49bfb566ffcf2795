"""Entry point: parse arguments, dispatch, and turn library errors into one clean line.

Every command module defines ``register(subparsers)`` (cheap: no torch import) and sets
``func`` on its parser to a ``run(args) -> int``. A :class:`NasBlocksError` is printed as one
line with exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from nasblocks.errors import NasBlocksError

COMMANDS = (
    "validate",
    "summary",
    "schema",
    "blocks",
    "presets",
    "export",
    "draw",
    "train",
    "search",
    "report",
)

EPILOG = """examples:
  nasblocks validate my_net.yaml              check a spec (shapes included), no torch needed
  nasblocks summary resnet50 --input 3x160x160
  nasblocks presets                           the standard networks
  nasblocks search search_spaces/resnet_like.yaml --trials 20
"""


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad flags already; keep its message to one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nasblocks",
        description="Compose CNNs from blocks in YAML, reproduce classic nets, search them.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from nasblocks import __version__

    parser.add_argument("--version", action="version", version=f"nasblocks {__version__}")
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE|FILE.py",
        help="import user blocks before running (repeatable)",
    )
    parser.add_argument(
        "--allow-plugins",
        action="store_true",
        help="let `plugins:` in spec and space files import the code they name (off: a spec "
        "naming a plugin is refused, since opening it would run that code)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        module = importlib.import_module(f"nasblocks.cli.{name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def add_command(sub, name: str, help: str, example: str, run) -> argparse.ArgumentParser:
    """A subcommand whose help ends with an example."""
    p = sub.add_parser(
        name,
        help=help,
        description=help,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=run)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        if args.allow_plugins:
            from nasblocks.plugins import allow_spec_plugins

            allow_spec_plugins()
        if args.plugin:
            from nasblocks.plugins import load_plugins

            load_plugins(args.plugin)
        return int(args.func(args) or 0)
    except NasBlocksError as e:
        print(str(e), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
