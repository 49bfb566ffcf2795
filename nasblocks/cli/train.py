"""``nasblocks train SPEC|PRESET``: train one architecture with the search's trainer."""

from __future__ import annotations

import math
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
    from nasblocks.train.hardware import torch_threads
    from nasblocks.train.optim import trainable_parameters

    if args.out:
        check_folder(args.out)
    trial = _search_trial(args)  # a search's output folder (or a file in it): reproduce
    score_only = args.inherit and args.epochs == 0
    if args.inherit and trial is None:
        raise NasBlocksError(f"--inherit: {args.spec} is not a search's output folder")
    if args.epochs == 0 and not args.inherit:
        raise NasBlocksError("--epochs: 0 only scores inherited weights; add --inherit")
    if score_only:
        args.epochs = None
    config = _config(args, trial.train if trial else {})
    if trial and args.dataset is None:
        root = {"root": args.data_root} if args.data_root is not None else {}
        stored = {k: tuple(v) if isinstance(v, list) else v for k, v in trial.data.items()}
        data = DataHandle(**{**stored, **root})  # (run.json holds its fields, lists for tuples)
    else:
        dataset = args.dataset or "digits"
        data = DataHandle(dataset=dataset, root=args.data_root, seed=config.seed)
    try:
        shape, classes = data.info()
    except DatasetError as e:
        raise NasBlocksError(f"--dataset: {e}") from None
    overrides = dict(assignment(text) for text in args.set)
    if not trial or args.dataset is not None:  # other data: its classes
        overrides.setdefault("num_classes", classes)
    if args.input_size is not None:
        overrides["input_size"] = args.input_size
    try:
        spec = load_spec(trial.spec if trial else args.spec, overrides)
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
    if args.inherit:
        assert trial is not None
        try:
            model.load_state_dict(trial.weights(), strict=True)
        except RuntimeError as e:  # --set / --input-size / --dataset changed the network
            reason = str(e).strip().splitlines()[-1].strip()
            raise NasBlocksError(
                f"--inherit: the kept weights do not fit this network ({reason}); drop the "
                "flags that change it"
            ) from None
        if score_only:
            with torch_threads(trial.scored_threads or trial.threads):
                return _score(model, splits, config, trial, spec.name)
    make_folder(out)
    write_atomic(out / "spec.yaml", dump_spec(spec.raw))

    def report(epoch: int, m: dict[str, float]) -> None:
        if not args.quiet:
            print(
                f"epoch {epoch}/{config.epochs}: train_loss {m['train_loss']:.4f} "
                f"val_acc {m['val_acc']:.4f} ({m['epoch_time']:.1f}s)",
                file=sys.stderr,
            )

    with torch_threads(trial.threads if trial else None):
        result = fit_and_save(model, splits, config, out, report)
    recorded = ""
    if trial:
        here = result.history[-1]["train_loss"]
        loss = f", train_loss {trial.train_loss:.4f}" if math.isfinite(trial.train_loss) else ""
        recorded = (
            f" (trial {trial.number} of the search: val_acc {trial.val_acc:.4f}{loss}; "
            f"here train_loss {here:.4f})"
        )
    print(
        f"{spec.name} on {data.dataset}: val_acc {result.final_val_acc:.4f}, "
        f"test_acc {result.test_acc:.4f}{recorded}; wrote {out}/metrics.json, {out}/weights.pt"
    )
    return 0


def _score(model, splits, config, trial: _Trial, name: str) -> int:
    """``--inherit --epochs 0``: the inherited weights scored on the validation images the
    search scored them on, and on the test split."""
    from nasblocks.supernet.training import val_subset
    from nasblocks.train.trainer import evaluate

    val = val_subset(splits.val, trial.scored_images or len(splits.val))
    scored = evaluate(model, val, config)
    test = evaluate(model, splits, config, split="test")
    print(
        f"{name}: inherited weights of trial {trial.number}: val_acc {scored['acc']:.4f} "
        f"(the search recorded {trial.val_acc:.4f}), test_acc {test['acc']:.4f}"
    )
    return 0


class _Trial:
    """A trained trial of a search: its spec, training settings, data and results."""

    def __init__(
        self,
        number: int,
        attrs: dict,
        data: dict,
        threads: int | None,
        out: Path | None = None,
        best: bool = False,
    ) -> None:
        self.number, self.threads = number, threads
        self.spec: dict = attrs["spec"]
        self.train: dict = dict(attrs["train"])
        self.val_acc = float(attrs["val_acc"])
        self.train_loss = float(attrs.get("train_loss", float("nan")))
        self.data = data
        self.out, self.best = out, best
        self.weights_file = attrs.get("weights")
        # a one-shot trial: the validation images and torch threads it was scored with
        self.scored_images: int | None = attrs.get("scored_images")
        self.scored_threads: int | None = attrs.get("threads")

    def weights(self) -> dict:
        """The weights the search kept for this trial (``best.pt`` for the best)."""
        import torch

        from nasblocks.errors import NasBlocksError

        assert self.out is not None
        path = self.out / "best.pt" if self.best else None
        if path is None and self.weights_file:
            path = self.out / str(self.weights_file)
        if path is None or not path.is_file():
            raise NasBlocksError(
                f"--inherit: the weights of trial {self.number} were not kept (the search "
                "keeps the best's, best.pt); drop --trial"
            )
        return torch.load(path, map_location="cpu", weights_only=True)


def _search_trial(args) -> _Trial | None:
    """``nasblocks train OUT`` / ``OUT/best.yaml`` / ``OUT/pareto/trial_N.yaml`` (with
    ``--trial N``: any trial): the trial as the search trained it; None for a plain spec."""
    import json

    from nasblocks.errors import NasBlocksError
    from nasblocks.search.outputs import results
    from nasblocks.search.outputs.folder import RUN_FILE

    path = Path(args.spec)
    candidates = [path] if path.is_dir() else [path.parent, path.parent.parent]
    out = next((c for c in candidates if (c / RUN_FILE).is_file()), None)
    if out is None or (path.is_file() and path.suffix not in (".yaml", ".yml")):
        if args.trial is not None:
            raise NasBlocksError(f"--trial: {args.spec} is not a search's output folder")
        return None
    if path.is_file() and path.parent == out and path.name != "best.yaml":
        return None  # another file next to the run (space.yaml ...): a plain spec
    run = json.loads((out / RUN_FILE).read_text())
    study = results.load_study(out)
    if args.trial is not None:
        found = [t for t in study.get_trials(deepcopy=False) if t.number == args.trial]
        if not found:
            raise NasBlocksError(f"--trial: {out} has no trial {args.trial}")
        t = found[0]
    elif path.is_file() and path.name.startswith("trial_"):
        number = int(path.stem.removeprefix("trial_"))
        t = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    else:
        best = results.best_trial(study)
        if best is None:
            raise NasBlocksError(f"{out}: no trial has completed yet")
        t = best
    attrs = t.user_attrs
    if "duplicate_of" in attrs:  # trained once, under the original's number
        t = next(o for o in study.get_trials(deepcopy=False) if o.number == attrs["duplicate_of"])
        attrs = t.user_attrs
    if "spec" not in attrs or "train" not in attrs or attrs.get("val_acc") is None:
        raise NasBlocksError(
            f"--trial: trial {t.number} of {out} was not trained (nothing to reproduce)"
        )
    settings = run.get("settings") or {}
    is_best = (best := results.best_trial(study)) is not None and best.number == t.number
    return _Trial(t.number, attrs, run.get("data") or {}, settings.get("threads"), out, is_best)


def _config(args, base: dict):
    """The training flags over ``base`` (a trial's settings) as a TrainConfig; a bad value
    names its flag."""
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
    given = {k: v for k, v in fields.items() if v is not None}
    if not base:
        given = {"epochs": 10, "seed": 0, **given}
    try:
        return TrainConfig(**{**base, **given})
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
    p.add_argument(
        "spec",
        metavar="SPEC|PRESET|OUT",
        help="a spec YAML file, a preset name, or a search's output folder (or its best.yaml): "
        "retrains the best trial (or --trial N) with the search's own data and settings",
    )
    p.add_argument("--trial", type=int, metavar="N", help="with OUT: retrain trial N")
    p.add_argument(
        "--dataset",
        metavar="NAME",
        help="digits (default; with OUT: the search's), synthetic, cifar10, ..., imagefolder:PATH",
    )
    p.add_argument("--data-root", metavar="DIR", help="where dataset files live")
    p.add_argument("--epochs", type=int, metavar="E", help="default 10 (with OUT: the trial's)")
    p.add_argument(
        "--inherit",
        action="store_true",
        help="with OUT: start from the weights the search kept (a one-shot search's inherited "
        "weights); --epochs 0 only scores them",
    )
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
    p.add_argument("--seed", type=int, help="default 0 (with OUT: the trial's)")
    p.add_argument("--out", metavar="DIR", help="default experiments/train/<spec name>")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a spec value (repeatable)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no per-epoch lines")
