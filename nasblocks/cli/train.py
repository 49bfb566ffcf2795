"""``nasblocks train SPEC|PRESET``: train one architecture with the search's trainer."""

from __future__ import annotations

import sys
from pathlib import Path

from nasblocks.cli.main import add_command


def run(args) -> int:
    """Everything is checked (flags, data, spec, the output folder) before anything is
    written; every failure is one line (exit 2)."""
    from nasblocks.cli.search import assignment, blame_flags, flag_sources
    from nasblocks.errors import NasBlocksError, SpecError
    from nasblocks.files import check_folder, make_folder, write_atomic
    from nasblocks.spec import load_spec
    from nasblocks.spec.yamlio import dump_spec, load_yaml
    from nasblocks.train import DataHandle, DatasetError, build_model, fit_and_save
    from nasblocks.train.optim import trainable_parameters

    if args.out:
        check_folder(args.out)
    config = _config(args)
    data = DataHandle(dataset=args.dataset, root=args.data_root, seed=config.seed)
    try:
        shape, classes = data.info()
    except DatasetError as e:
        raise NasBlocksError(f"--dataset: {e}") from None
    overrides = dict(assignment(text) for text in args.set)
    overrides.setdefault("num_classes", classes)
    if args.input_size is not None:
        overrides["input_size"] = args.input_size
    try:
        spec = load_spec(args.spec, overrides)
    except SpecError as e:
        sources = {k: v for k, v in flag_sources(args).items() if v.startswith("--set")}
        if args.input_size is not None:
            sources[("input",)] = "--input-size"
        positions = load_yaml(args.spec)[1] if Path(args.spec).is_file() else {}
        raise blame_flags(e, sources, positions) from None
    out = Path(args.out) if args.out else Path("experiments") / "train" / spec.name
    check_folder(out)
    model = build_model(spec, config.seed)
    try:
        trainable_parameters(model)
    except NasBlocksError as e:
        raise NasBlocksError(f"{args.spec}: {e}") from None
    splits = data.prepared(spec.input_shape)
    make_folder(out)
    write_atomic(out / "spec.yaml", dump_spec(spec.raw))

    def report(epoch: int, m: dict[str, float]) -> None:
        if not args.quiet:
            print(
                f"epoch {epoch}/{config.epochs}: train_loss {m['train_loss']:.4f} "
                f"val_acc {m['val_acc']:.4f} ({m['epoch_time']:.1f}s)",
                file=sys.stderr,
            )

    result = fit_and_save(model, splits, config, out, report)
    print(
        f"{spec.name} on {args.dataset}: val_acc {result.final_val_acc:.4f}, "
        f"test_acc {result.test_acc:.4f}; wrote {out}/metrics.json, {out}/weights.pt"
    )
    return 0


def _config(args):
    """The training flags as a TrainConfig; a bad value names its flag."""
    from pydantic import ValidationError

    from nasblocks.errors import NasBlocksError
    from nasblocks.train import TrainConfig

    fields = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "optimizer": args.optimizer,
        "weight_decay": args.weight_decay,
        "device": args.device,
        "compile": args.compile or None,
        "seed": args.seed,
        "max_train_batches": args.max_train_batches,
    }
    try:
        return TrainConfig(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as e:
        err = e.errors()[0]
        flag = "--" + str(err["loc"][0]).replace("_", "-") if err["loc"] else "settings"
        got = f" (got {err['input']!r})" if "input" in err and err["loc"] else ""
        raise NasBlocksError(f"{flag}: {err['msg']}{got}") from None


def register(sub) -> None:
    p = add_command(
        sub,
        "train",
        "train one spec or preset and write its metrics and weights",
        "nasblocks train experiments/runs/resnet_like/best.yaml --dataset digits --epochs 10",
        run,
    )
    p.add_argument("spec", metavar="SPEC|PRESET", help="a spec YAML file or a preset name")
    p.add_argument(
        "--dataset",
        default="digits",
        metavar="NAME",
        help="digits (default), synthetic, cifar10, ..., imagefolder:PATH",
    )
    p.add_argument("--data-root", metavar="DIR", help="where dataset files live")
    p.add_argument("--epochs", type=int, default=10, metavar="E")
    p.add_argument("--batch-size", type=int, metavar="B")
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer", choices=("sgd", "adamw"))
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--max-train-batches", type=int, metavar="N", help="cap batches per epoch")
    p.add_argument(
        "--input-size",
        type=int,
        metavar="N",
        help="resize images to NxN (sets the spec's input size)",
    )
    p.add_argument("--device", choices=("cpu", "cuda", "auto"))
    p.add_argument("--compile", action="store_true", help="compile the model with torch.compile")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", metavar="DIR", help="default experiments/train/<spec name>")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a spec value (repeatable)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no per-epoch lines")
