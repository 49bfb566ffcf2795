"""``nasblocks search SPACE``: run or resume an architecture search (thin over the library).

Rerunning the same command resumes the study in OUT (``--trials N`` extends it); a space
whose study differs is refused, ``--fresh`` moves the old one aside. Every failure is one line
on stderr and exit code 2: a mistake in the space is located in its file
(``FILE:LINE:COL: yaml.path: message``), a bad flag value names the flag
(``--trials: ...``, ``--set PATH=VALUE: ...``), a full disk or read-only folder names the file
and says how to resume. Ctrl-C exits with 130.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from nasblocks.cli.main import add_command

if TYPE_CHECKING:
    from nasblocks.errors import NasBlocksError, SpecError, YamlPath

SAMPLERS = ("tpe", "random", "nsga2", "grid", "evolution", "local_search")
PRUNERS = ("none", "median", "successive_halving", "hyperband")

FLAGS = {
    "--trials": "search.budget.trials",
    "--timeout": "search.budget.timeout",
    "--seed": "search.seed",
    "--dataset": "search.data.dataset",
    "--device": "search.train.device",
    "--threads": "search.threads",
    "--compile": "search.train.compile",
    "--sampler": "search.sampler",
    "--pruner": "search.pruner",
}
"""The flags that override a value of the space, and the path of that value."""


def flag_value(args, flag: str) -> Any:
    """The value ``flag`` was given; None when it was not (0 is a value: ``--trials 0``)."""
    value = getattr(args, flag[2:].replace("-", "_"), None)
    return None if value is False else value


def overrides_from_args(args, raw_search: dict[str, Any] | None) -> dict[str, Any]:
    """``--set`` assignments, then the dedicated flags (which win), as dotted overrides.

    Switching the sampler or pruner by flag drops the file's options for the old one only.
    """
    out: dict[str, Any] = dict(assignment(text) for text in args.set)
    section = raw_search if isinstance(raw_search, dict) else {}
    for flag, dotted in FLAGS.items():
        value = flag_value(args, flag)
        if value is None:
            continue
        if flag in ("--sampler", "--pruner"):
            current = section.get(dotted.split(".")[1])
            if isinstance(current, dict) and current.get("name") == value:
                continue  # the file's options for it stay
        out[dotted] = value
    return out


def assignment(text: str) -> tuple[str, Any]:
    """One ``--set PATH=VALUE`` (the value read as YAML); one line when it is not that."""
    from nasblocks.errors import NasBlocksError, SpecError
    from nasblocks.spec.overrides import parse_assignment

    try:
        return parse_assignment(text)
    except SpecError as e:
        raise NasBlocksError(f"{e.message} (e.g. --set search.budget.epochs=5)") from None


def flag_sources(args) -> dict[YamlPath, str]:
    """The path each override of the command line sets -> the flag to blame for it."""
    from nasblocks.spec.overrides import ALIASES

    sources: dict[YamlPath, str] = {}
    for text in args.set:
        dotted = text.partition("=")[0].strip()
        sources[override_path(dotted, ALIASES)] = f"--set {text}"
    for flag, dotted in FLAGS.items():
        if flag_value(args, flag) is not None:
            sources[override_path(dotted, ALIASES)] = flag
    return sources


def override_path(dotted: str, aliases: dict[str, YamlPath]) -> YamlPath:
    """The YAML path ``apply_overrides`` writes ``dotted`` to."""
    if dotted == "input_size":
        return ("input",)
    if dotted in aliases:
        return tuple(aliases[dotted])
    return tuple(int(k) if k.lstrip("-").isdigit() else k for k in dotted.split("."))


def blame_flags(
    error: SpecError, sources: dict[YamlPath, str], positions: dict
) -> SpecError | NasBlocksError:
    """An error at a path a flag set is that flag's: ``--trials: Input should be ...``; an
    error elsewhere stays located in the file."""
    from nasblocks.errors import NasBlocksError, format_path

    path, found = error.path, None
    for key, flag in sources.items():
        under = path[: len(key)] == key  # the flag's value, or inside it
        made = len(path) > 0 and key[: len(path)] == path and path not in positions
        if (under or made) and (found is None or len(key) > len(found[0])):
            found = (key, flag)
    if found is None:
        return error
    key, flag = found
    detail = f"{format_path(path)}: " if path != key and path[: len(key)] == key else ""
    return NasBlocksError(f"{flag}: {detail}{error.message}")


def run(args) -> int:
    from nasblocks.errors import SpecError
    from nasblocks.space import load_space
    from nasblocks.spec.yamlio import load_yaml

    raw, positions = load_yaml(args.space)
    section = raw.get("search") if isinstance(raw, dict) else None
    overrides = overrides_from_args(args, section)
    try:
        space = load_space(args.space, overrides)
    except SpecError as e:
        raise blame_flags(e, flag_sources(args), positions) from None
    if not space.nodes:
        from nasblocks.errors import SearchError

        raise SearchError(
            f"{args.space}: nothing to search: the file has no search node ({{choice: ...}}, "
            f"{{int: ...}}, {{float: ...}}); to train this one network, run "
            f"`nasblocks train {args.space}`"
        )
    try:
        _search(space, args)
    except SpecError as e:
        raise blame_flags(e, flag_sources(args), positions) from None
    except KeyboardInterrupt:
        from nasblocks.search.run import default_out

        out = args.out or default_out(space)
        print(
            f"interrupted: the finished trials are kept in {out}; run the same command again "
            "to resume",
            file=sys.stderr,
        )
        return 130
    return 0


def _search(space, args) -> None:
    if args.backend == "ray":
        from nasblocks.errors import SearchError
        from nasblocks.search.backends.ray_backend import search_ray

        if (args.workers or 1) > 1:
            raise SearchError("--workers is for the Optuna backend; with Ray use --max-concurrent")
        search_ray(
            space,
            out=args.out,
            storage=args.storage,
            address=args.address,
            cpus_per_trial=1.0 if args.cpus_per_trial is None else args.cpus_per_trial,
            gpus_per_trial=0.0 if args.gpus_per_trial is None else args.gpus_per_trial,
            max_concurrent=args.max_concurrent,
            progress=False if args.quiet else None,
            fresh=args.fresh,
            ray_verbose=args.ray_verbose,
        )
        return
    from nasblocks.search.engine import search

    search(
        space,
        out=args.out,
        storage=args.storage,
        progress=False if args.quiet else None,
        workers=args.workers,
        heartbeat=args.heartbeat,
        fresh=args.fresh,
    )


def at_least_one(text: str) -> int:
    """argparse type: a whole number >= 1 (one-line error otherwise)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def register(sub) -> None:
    p = add_command(
        sub,
        "search",
        "search a space of architectures with Optuna (resumes when run again)",
        "nasblocks search search_spaces/resnet_like.yaml --trials 20 --workers 2",
        run,
    )
    p.add_argument("space", metavar="SPACE", help="search space YAML file")
    p.add_argument(
        "--trials",
        type=int,
        metavar="N",
        help="stop when N trials have finished, earlier runs included",
    )
    p.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="start no trial after this many seconds"
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="output folder (default experiments/runs/<space name>); it holds one study, "
        "resumed when run again",
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="start a new study: what OUT holds is moved to OUT/previous-<time>/ first "
        "(nothing is deleted)",
    )
    p.add_argument(
        "--storage",
        metavar="URL",
        help="Optuna storage URL (default sqlite:///OUT/study.db); the same command with "
        "--storage postgresql://USER@HOST/DB on several machines runs one study",
    )
    p.add_argument(
        "--workers",
        type=at_least_one,
        default=1,
        metavar="N",
        help="run N trials at once in N processes, each with its share of the CPU cores "
        "(or its own GPU)",
    )
    p.add_argument(
        "--heartbeat",
        type=at_least_one,
        metavar="SECONDS",
        help="a running trial's heartbeat interval; a trial silent for 3 intervals is failed "
        "and retried (default 10 on a database server, off on SQLite)",
    )
    p.add_argument(
        "--backend",
        choices=("optuna", "ray"),
        default="optuna",
        help="optuna (default): in-process or --workers processes; ray: Ray Tune "
        "with OptunaSearch and ASHA",
    )
    p.add_argument(
        "--address",
        metavar="auto|HOST:PORT|ray://HOST:PORT",
        help="Ray cluster to join (default: start a local Ray)",
    )
    p.add_argument("--cpus-per-trial", type=float, metavar="C", help="Ray: CPUs per trial")
    p.add_argument(
        "--gpus-per-trial",
        type=float,
        metavar="G",
        help="Ray: GPUs per trial; 0.25 puts four trials on one GPU",
    )
    p.add_argument("--max-concurrent", type=int, metavar="K", help="Ray: trials at once")
    p.add_argument("--compile", action="store_true", help="compile each model (torch.compile)")
    p.add_argument("--seed", type=int, metavar="S", help="sampler, split, init and training seed")
    p.add_argument("--sampler", choices=SAMPLERS, help="default: the space's, else tpe")
    p.add_argument("--pruner", choices=PRUNERS, help="default: median")
    p.add_argument(
        "--dataset",
        metavar="NAME",
        help="digits, synthetic, cifar10, cifar100, mnist, fashion_mnist, svhn, imagefolder:PATH",
    )
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), help="default: auto")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override any value of the space, e.g. stem.kernel_size=3 or "
        "search.budget.epochs=5 (repeatable)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.add_argument(
        "--ray-verbose",
        type=int,
        choices=(0, 1, 2, 3),
        default=0,
        metavar="V",
        help="with --backend ray: Ray Tune's own progress tables (Tune's verbose, 0-3); by "
        "default they go to OUT/ray/tune.log and nasblocks prints a line per trial",
    )
