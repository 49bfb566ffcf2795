"""Train any ``nn.Module`` classifier on :class:`DatasetSplits`: a trial's whole training run.

The hot loop is what a hand-written PyTorch loop does and nothing more: index a permutation of
device tensors, forward, loss, backward, step. The loss is summed on the device and read once
per epoch, so the host never waits on the device mid-epoch; that read also checks divergence.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from torch.utils.data import Dataset

from nasblocks.errors import NasBlocksError
from nasblocks.train.augment import BatchAugment
from nasblocks.train.batches import TrainBatches, eval_batches
from nasblocks.train.config import AugmentConfig, TrainConfig
from nasblocks.train.data import DatasetSplits, TensorData, prepare
from nasblocks.train.optim import make_optimizer, make_scheduler

__all__ = [
    "AugmentConfig",
    "DivergedError",
    "TrainConfig",
    "TrainOutOfMemoryError",
    "TrainResult",
    "TrainingError",
    "evaluate",
    "fit",
    "train_one",
]

Report = Callable[[int, dict[str, float]], "bool | None"]


class TrainingError(NasBlocksError):
    """A training run that could not go on as asked."""


class DivergedError(TrainingError):
    """The training loss became NaN or infinite; ``epoch`` (1-based) is where it was seen."""

    def __init__(self, epoch: int, loss: float) -> None:
        self.epoch = epoch
        self.loss = loss
        super().__init__(f"training diverged in epoch {epoch}: mean training loss is {loss}")


class TrainOutOfMemoryError(TrainingError, torch.OutOfMemoryError):
    """The model, batch and optimiser state did not fit in memory; the cache has been freed.

    Also a ``torch.OutOfMemoryError``, so code that handles PyTorch's error handles this one.
    """


class TrainResult(BaseModel):
    """What :func:`fit` measured. Epochs are 1-based; times are in seconds."""

    model_config = ConfigDict(frozen=True)

    final_val_acc: float = Field(description="Validation accuracy after the last epoch run.")
    best_val_acc: float = Field(description="Best validation accuracy over the epochs run.")
    best_epoch: int = Field(description="Epoch of best_val_acc.")
    epochs_run: int = Field(description="Epochs completed (fewer than asked when pruned).")
    pruned: bool = Field(description="The report callback asked to stop.")
    train_time_s: float = Field(description="Time spent in training steps, evaluation excluded.")
    total_time_s: float = Field(description="Wall time of the epochs, evaluation included.")
    images_per_s: float = Field(description="Training images per second of train_time_s.")
    device: str = Field(description="Device trained on.")
    amp: str = Field(description="Autocast dtype used (bfloat16, float16) or off.")
    history: tuple[dict[str, float], ...] = Field(description="Per-epoch metrics, as reported.")
    test_acc: float | None = Field(None, description="Test accuracy, when evaluated.")
    test_loss: float | None = Field(None, description="Test cross-entropy, when evaluated.")


def fit(
    model: nn.Module,
    splits: DatasetSplits,
    config: TrainConfig | None = None,
    report: Report | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``splits.train``, validating on ``splits.val`` every epoch.

    After each epoch ``report(epoch, metrics)`` gets ``val_acc``, ``val_loss``, ``train_loss``,
    ``lr``, ``epoch_time``, ``train_time`` and ``images_per_s``; returning True stops training
    (``pruned``). Raises :class:`DivergedError` on a NaN / inf loss and
    :class:`TrainOutOfMemoryError` when memory runs out. Global RNG state is left as found.
    """
    config = config or TrainConfig()
    device = resolve_device(config.device)
    splits = prepare(splits, device=device)
    oom: str | None = None
    with torch.random.fork_rng(devices=_rng_devices(device)):
        torch.manual_seed(config.seed)
        try:
            return _Run(model, splits, config, device).train(report)
        except torch.OutOfMemoryError as err:
            oom = _first_line(err)
        except RuntimeError as err:  # some CUDA / cuDNN allocation failures are plain errors
            if "out of memory" not in str(err).lower():
                raise
            oom = _first_line(err)
    # Out of the except block, the traceback and its frames (activations) are released.
    model.zero_grad(set_to_none=True)
    gc.collect()
    torch.cuda.empty_cache()
    raise TrainOutOfMemoryError(
        f"out of memory training on {device} with batch_size={config.batch_size}: {oom}"
    )


def evaluate(
    model: nn.Module,
    data: DatasetSplits | TensorData | Dataset,
    config: TrainConfig | None = None,
    *,
    split: str = "test",
) -> dict[str, float]:
    """Accuracy and mean cross-entropy of ``model`` on ``data`` (``data.<split>`` for splits).

    A bare ``TensorData`` / ``Dataset`` must already be prepared (normalised, model-shaped).
    """
    config = config or TrainConfig()
    device = resolve_device(config.device)
    if isinstance(data, DatasetSplits):
        data = getattr(prepare(data, device=device), split)
    channels_last = _channels_last(config, device)
    model.to(device)
    acc, loss = _evaluate(
        model,
        eval_batches(data, config, device, channels_last),
        _autocast(_amp_dtype(config.amp, device), device),
    )
    return {"acc": acc, "loss": loss, "images": float(len(data))}


def train_one(
    model: nn.Module,
    dataset: DatasetSplits,
    config: TrainConfig,
    out_dir: str | Path,
    report: Report | None = None,
) -> TrainResult:
    """Fit, evaluate on the test split, write ``metrics.json`` and ``weights.pt`` to ``out_dir``.

    ``weights.pt`` is the CPU ``state_dict``; ``metrics.json`` holds the dataset name, the
    config and the :class:`TrainResult` fields.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dataset = prepare(dataset, device=resolve_device(config.device))  # once for fit and test
    result = fit(model, dataset, config, report)
    test = evaluate(model, dataset, config, split="test")
    result = result.model_copy(update={"test_acc": test["acc"], "test_loss": test["loss"]})
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, out / "weights.pt")
    metrics = {
        "dataset": dataset.name,
        "config": config.model_dump(mode="json"),
        **result.model_dump(mode="json"),
    }
    tmp = out / "metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    tmp.replace(out / "metrics.json")
    return result


class _Run:
    """One :func:`fit` call's state: everything the epoch loop needs, made once up front."""

    def __init__(
        self, model: nn.Module, splits: DatasetSplits, config: TrainConfig, device: torch.device
    ) -> None:
        self.model, self.config, self.device = model, config, device
        self.channels_last = _channels_last(config, device)
        model.to(device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.train_batches = TrainBatches(splits.train, config, device, self.channels_last)
        self.val = splits.val
        if self.channels_last and isinstance(self.val, TensorData):
            self.val = TensorData(
                self.val.images.contiguous(memory_format=torch.channels_last), self.val.labels
            )
        self.amp_dtype = _amp_dtype(config.amp, device)
        self.autocast = _autocast(self.amp_dtype, device)
        self.optimizer = make_optimizer(model, config)
        self.scheduler = make_scheduler(self.optimizer, config, self.train_batches.steps)
        use_scaler = self.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler(device.type) if use_scaler else None
        aug = config.augment
        self.augment = (
            BatchAugment(aug.flip, aug.crop_padding, device, config.seed + 1)
            if aug.flip or aug.crop_padding
            else None
        )
        self.criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)

    def train(self, report: Report | None) -> TrainResult:
        history: list[dict[str, float]] = []
        train_time = total_time = 0.0
        images = 0
        pruned = False
        for epoch in range(1, self.config.epochs + 1):
            start = time.perf_counter()
            loss_sum, steps, seen = self._epoch()
            train_loss = loss_sum.item() / max(steps, 1)  # the epoch's one host-device sync
            epoch_train = time.perf_counter() - start
            if not math.isfinite(train_loss):
                raise DivergedError(epoch, train_loss)
            val_acc, val_loss = _evaluate(
                self.model,
                eval_batches(self.val, self.config, self.device, self.channels_last),
                self.autocast,
            )
            epoch_time = time.perf_counter() - start
            train_time += epoch_train
            total_time += epoch_time
            images += seen
            metrics = {
                "epoch": float(epoch),
                "train_loss": train_loss,
                "val_acc": val_acc,
                "val_loss": val_loss,
                "lr": self.optimizer.param_groups[0]["lr"],
                "epoch_time": epoch_time,
                "train_time": epoch_train,
                "images_per_s": seen / epoch_train if epoch_train > 0 else 0.0,
            }
            history.append(metrics)
            if report is not None and report(epoch, dict(metrics)):
                pruned = True
                break
        best = max(history, key=lambda m: m["val_acc"])
        return TrainResult(
            final_val_acc=history[-1]["val_acc"],
            best_val_acc=best["val_acc"],
            best_epoch=int(best["epoch"]),
            epochs_run=len(history),
            pruned=pruned,
            train_time_s=train_time,
            total_time_s=total_time,
            images_per_s=images / train_time if train_time > 0 else 0.0,
            device=str(self.device),
            amp=str(self.amp_dtype).removeprefix("torch.") if self.amp_dtype else "off",
            history=tuple(history),
        )

    def _epoch(self) -> tuple[Tensor, int, int]:
        """One pass; returns the on-device loss sum, the steps taken and the images seen."""
        model, criterion, optimizer = self.model, self.criterion, self.optimizer
        scheduler, scaler = self.scheduler, self.scaler
        augment, autocast = self.augment, self.autocast
        clip = self.config.grad_clip
        params = [p for group in optimizer.param_groups for p in group["params"]]
        model.train()
        loss_sum = torch.zeros((), device=self.device)
        steps = seen = 0
        for x, y in self.train_batches:
            if augment is not None:
                x = augment(x)
            with autocast():
                loss = criterion(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                if clip is not None:
                    torch.nn.utils.clip_grad_norm_(params, clip)
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                if clip is not None:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(params, clip)
                scaler.step(optimizer)
                scaler.update()
            if scheduler is not None:
                scheduler.step()
            loss_sum += loss.detach()
            steps += 1
            seen += y.shape[0]
        return loss_sum, steps, seen


@torch.no_grad()
def _evaluate(
    model: nn.Module,
    batches: Iterator[tuple[Tensor, Tensor]],
    autocast: Callable[[], contextlib.AbstractContextManager[Any]],
) -> tuple[float, float]:
    """``(accuracy, mean cross-entropy)``; sums stay on the device until one final read."""
    was_training = model.training
    model.eval()
    loss_sum = correct = None
    count = 0
    for x, y in batches:
        with autocast():
            logits = model(x)
        batch_loss = F.cross_entropy(logits.float(), y, reduction="sum").double()
        batch_correct = (logits.argmax(1) == y).sum()
        if loss_sum is None:
            loss_sum, correct = batch_loss, batch_correct
        else:
            loss_sum += batch_loss
            correct += batch_correct
        count += y.shape[0]
    model.train(was_training)
    if loss_sum is None:
        return 0.0, math.nan
    total_loss, total_correct = torch.stack([loss_sum, correct.double()]).tolist()
    return total_correct / count, total_loss / count


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; asking for CUDA without one is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise TrainingError("device 'cuda' was asked for but torch sees no CUDA device")
    return torch.device(device)


def _rng_devices(device: torch.device) -> list[int]:
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def _amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def _autocast(
    dtype: torch.dtype | None, device: torch.device
) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    if dtype is None:
        return contextlib.nullcontext
    return partial(torch.autocast, device.type, dtype=dtype)


def _channels_last(config: TrainConfig, device: torch.device) -> bool:
    if config.channels_last == "auto":
        return device.type == "cuda"
    return bool(config.channels_last)


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
