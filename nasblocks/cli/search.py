"""``nasblocks search SPACE``: run or resume an architecture search (thin over the library)."""

from __future__ import annotations

from typing import Any

from nasblocks.cli.main import add_command

SAMPLERS = ("tpe", "random", "nsga2", "grid", "evolution")
PRUNERS = ("none", "median", "successive_halving", "hyperband")


def overrides_from_args(args, raw_search: dict[str, Any] | None) -> dict[str, Any]:
    """``--set`` assignments, then the dedicated flags (which win), as dotted overrides.

    Switching the sampler or pruner by flag drops the file's options for the old one only.
    """
    from nasblocks.spec.overrides import parse_assignment

    out: dict[str, Any] = dict(parse_assignment(text) for text in args.set)
    flags = {
        "search.budget.trials": args.trials,
        "search.budget.timeout": args.timeout,
        "search.seed": args.seed,
        "search.data.dataset": args.dataset,
        "search.train.device": args.device,
        "search.threads": args.threads,
        "search.train.compile": True if args.compile else None,
    }
    out.update({k: v for k, v in flags.items() if v is not None})
    section = raw_search if isinstance(raw_search, dict) else {}
    for key, name in (("sampler", args.sampler), ("pruner", args.pruner)):
        if name is None:
            continue
        current = section.get(key)
        if isinstance(current, dict) and current.get("name") == name:
            continue
        out[f"search.{key}"] = name
    return out


def run(args) -> int:
    from nasblocks.search.engine import search
    from nasblocks.space import load_space
    from nasblocks.spec.yamlio import load_yaml

    raw, _ = load_yaml(args.space)
    section = raw.get("search") if isinstance(raw, dict) else None
    space = load_space(args.space, overrides_from_args(args, section))
    if args.backend == "ray":
        from nasblocks.search.ray_backend import run_ray_from_args

        run_ray_from_args(space, args)
        return 0
    search(
        space,
        out=args.out,
        storage=args.storage,
        progress=False if args.quiet else None,
        workers=args.workers,
        heartbeat=args.heartbeat,
    )
    return 0


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
        "--out", metavar="DIR", help="output folder (default experiments/runs/<space name>)"
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
    p.add_argument("--sampler", choices=SAMPLERS, help="default: tpe")
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
        help="override any value of the space, e.g. stages.block=basic or "
        "search.budget.epochs=5 (repeatable)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
