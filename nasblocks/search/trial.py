"""One trial as one pure function: concrete spec + training config + data -> metrics.

:func:`run_trial` is what every backend calls — in-process Optuna, N worker processes, Ray
workers — so a trial trains the same way and gives the same numbers wherever it runs.
It knows nothing of Optuna: intermediate values go to a plain ``report(epoch, metrics)``
callback, which returns True to stop (prune) the trial.
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from nasblocks.spec import Spec, load_spec

if TYPE_CHECKING:
    from nasblocks.space.settings import DataSettings
    from nasblocks.train import DatasetSplits, TrainConfig, TrainResult

Report = Callable[[int, dict[str, float]], "bool | None"]

METRICS = (
    "val_acc",
    "best_val_acc",
    "val_loss",
    "train_loss",
    "epochs",
    "train_time_s",
    "images_per_s",
)
"""The metrics a finished trial records, whichever backend ran it."""


@dataclasses.dataclass(frozen=True)
class DataHandle:
    """Which data a trial uses: small, picklable, loaded once per process (then cached).

    A handle travels to worker processes and Ray actors instead of the tensors.
    """

    dataset: str = "digits"
    root: str | None = None
    download: bool = True
    seed: int = 0
    val_fraction: float = 0.1
    synthetic_size: int = 2000
    synthetic_shape: tuple[int, int, int] = (3, 32, 32)
    synthetic_classes: int = 10
    train_per_class: int | None = None

    @classmethod
    def from_settings(cls, data: DataSettings, seed: int) -> DataHandle:
        return cls(
            dataset=data.dataset,
            root=data.root,
            download=data.download,
            seed=seed,
            val_fraction=data.val_fraction,
            synthetic_size=data.synthetic_size,
            synthetic_shape=tuple(data.synthetic_shape),  # type: ignore[arg-type]
            synthetic_classes=data.synthetic_classes,
            train_per_class=data.train_per_class,
        )

    def load(self) -> DatasetSplits:
        """The raw splits (cached per process)."""
        splits = _LOADED.get(self)
        if splits is None:
            from nasblocks.train import load_dataset

            kwargs: dict[str, Any] = {
                "seed": self.seed,
                "val_fraction": self.val_fraction,
                "download": self.download,
                "train_per_class": self.train_per_class,
            }
            if self.dataset == "synthetic":
                kwargs.update(
                    synthetic_size=self.synthetic_size,
                    synthetic_shape=self.synthetic_shape,
                    synthetic_classes=self.synthetic_classes,
                )
            splits = load_dataset(self.dataset, self.root, **kwargs)
            _LOADED.clear()  # one dataset per process at a time
            _PREPARED.clear()
            _LOADED[self] = splits
        return splits

    def prepared(self, input_shape: tuple[int, int, int], device: Any = None) -> DatasetSplits:
        """Splits resized and normalised for a model's input (a few shapes cached)."""
        key = (self, tuple(input_shape), str(device))
        splits = _PREPARED.get(key)
        if splits is None:
            from nasblocks.train import prepare

            splits = prepare(self.load(), input_shape, device=device)
            _PREPARED[key] = splits
            while len(_PREPARED) > 4:
                _PREPARED.popitem(last=False)
        else:
            _PREPARED.move_to_end(key)
        return splits

    def info(self) -> tuple[tuple[int, int, int], int]:
        """``(input_shape, num_classes)`` of the dataset as stored."""
        splits = self.load()
        return tuple(splits.input_shape), splits.num_classes  # type: ignore[return-value]


_LOADED: dict[DataHandle, DatasetSplits] = {}
_PREPARED: OrderedDict[tuple, DatasetSplits] = OrderedDict()


@dataclasses.dataclass
class TrialOutcome:
    """What a trained trial gives back: metrics, the trainer's result, and its weights."""

    metrics: dict[str, float]
    pruned: bool
    result: TrainResult
    state_dict: dict[str, Any] | None = None


def build_model(spec: Spec, seed: int):
    """The network of ``spec`` with weights initialised from ``seed`` (global RNG untouched)."""
    import torch

    from nasblocks.builder import build_spec

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_spec(spec)


def run_trial(
    spec: Spec | Mapping[str, Any],
    config: TrainConfig,
    data: DataHandle,
    report: Report | None = None,
    *,
    keep_weights: bool = True,
) -> TrialOutcome:
    """Build ``spec`` (weights seeded by ``config.seed``), train it, return its metrics.

    ``metrics``: ``val_acc`` (after the last epoch run: the weights returned), ``best_val_acc``,
    ``train_loss``, ``epochs``, ``train_time_s``, ``duration_s``, ``images_per_s``. Raises the
    trainer's ``DivergedError`` / ``TrainOutOfMemoryError``; the caller records them.
    """
    from nasblocks.train.trainer import fit, resolve_device

    start = time.perf_counter()
    spec = load_spec(spec)
    device = resolve_device(config.device)
    splits = data.prepared(spec.input_shape, device)
    model = build_model(spec, config.seed)
    result = fit(model, splits, config, report)
    last = result.history[-1]
    metrics = {
        "val_acc": result.final_val_acc,
        "best_val_acc": result.best_val_acc,
        "val_loss": last.get("val_loss", float("nan")),
        "train_loss": last["train_loss"],
        "epochs": float(result.epochs_run),
        "train_time_s": result.train_time_s,
        "images_per_s": result.images_per_s,
        "duration_s": time.perf_counter() - start,
    }
    weights = None
    if keep_weights:
        weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return TrialOutcome(metrics, result.pruned, result, weights)


def evaluate_weights(
    spec: Spec | Mapping[str, Any],
    weights: Mapping[str, Any],
    config: TrainConfig,
    data: DataHandle,
    split: str = "test",
) -> dict[str, float]:
    """Accuracy and loss of ``spec`` with ``weights`` on one split (the final test score)."""
    from nasblocks.train.trainer import evaluate, resolve_device

    spec = load_spec(spec)
    model = build_model(spec, config.seed)
    model.load_state_dict(dict(weights))
    splits = data.prepared(spec.input_shape, resolve_device(config.device))
    return evaluate(model, splits, config, split=split)
