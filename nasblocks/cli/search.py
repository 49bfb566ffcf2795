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
    search(space, out=args.out, storage=args.storage, progress=False if args.quiet else None)
    return 0


def register(sub) -> None:
    p = add_command(
        sub,
        "search",
        "search a space of architectures with Optuna (resumes when run again)",
        "nasblocks search search_spaces/resnet_like.yaml --trials 20 --sampler evolution",
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
        "--storage", metavar="URL", help="Optuna storage URL (default sqlite:///OUT/study.db)"
    )
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
