"""One trial as one pure function: concrete spec + training config + data -> metrics.

:func:`run_trial` is what every backend calls — in-process Optuna, N worker processes, Ray
workers — so a trial trains the same way and gives the same numbers wherever it runs.
It knows nothing of Optuna: intermediate values go to a plain ``report(epoch, metrics)``
callback, which returns True to stop (prune) the trial.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from nasblocks.spec import Spec, load_spec
from nasblocks.train.handle import DataHandle

if TYPE_CHECKING:
    from nasblocks.train import TrainConfig, TrainResult

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


@dataclasses.dataclass
class TrialOutcome:
    """What a trained trial gives back: metrics, the trainer's result, and its weights."""

    metrics: dict[str, float]
    pruned: bool
    result: TrainResult | None  # None from trainers that train nothing (testing.HashTrainer)
    state_dict: dict[str, Any] | None = None


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
    from nasblocks.train.trainer import build_model, fit, resolve_device

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
    from nasblocks.train.trainer import build_model, evaluate, resolve_device

    spec = load_spec(spec)
    model = build_model(spec, config.seed)
    model.load_state_dict(dict(weights))
    splits = data.prepared(spec.input_shape, resolve_device(config.device))
    return evaluate(model, splits, config, split=split)
