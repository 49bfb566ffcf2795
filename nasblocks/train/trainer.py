"""Train any ``nn.Module`` classifier on :class:`DatasetSplits`: a trial's whole training run.

The hot loop is what a hand-written PyTorch loop does and nothing more: index a permutation of
device tensors, convert and normalise the batch, forward, loss, backward, step. The loss is
summed on the device and read once per epoch, so the host never waits on the device mid-epoch;
that read also checks divergence. The hardware choices (device, autocast, channels-last,
compile) are made in :mod:`nasblocks.train.hardware`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import math
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from torch.utils.data import Dataset

from nasblocks.files import write_atomic
from nasblocks.train.augment import BatchAugment
from nasblocks.train.batches import TrainBatches, eval_batches
from nasblocks.train.checkpoint import Checkpoint
from nasblocks.train.config import AugmentConfig, TrainConfig
from nasblocks.train.data import DatasetSplits, TensorData, prepare, split_size
from nasblocks.train.hardware import (
    TrainingError,
    amp_dtype,
    autocast,
    compile_model,
    free_memory,
    is_out_of_memory,
    resolve_device,
    rng_devices,
    use_channels_last,
)
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
    "resolve_device",
    "fit_and_save",
]

Report = Callable[[int, dict[str, float]], "bool | None"]
T = TypeVar("T")


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
    channels_last: bool = Field(False, description="Model and batches were channels-last.")
    compiled: bool = Field(
        False, description="Trained through torch.compile (False when it was off or failed)."
    )
    history: tuple[dict[str, float], ...] = Field(description="Per-epoch metrics, as reported.")
    test_acc: float | None = Field(None, description="Test accuracy, when evaluated.")
    test_loss: float | None = Field(None, description="Test cross-entropy, when evaluated.")


@dataclasses.dataclass
class Bilevel:
    """Parameters trained on other data than the weights, one step after each weight step:
    the first-order bilevel scheme of DARTS (Liu et al., ICLR 2019) and GDAS (Dong & Yang,
    CVPR 2019), where the architecture's parameters follow the validation loss.

    ``parameters`` are left out of the weight optimiser and stepped by ``optimizer`` on a
    batch of ``data`` (shuffled and augmented as the training batches, an epoch's pass
    restarting as needed); ``start_epoch(epoch, epochs)`` runs before each epoch (a
    temperature schedule, say). Its optimiser and data order are checkpointed with the rest.
    """

    parameters: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    data: TensorData | Dataset
    start_epoch: Callable[[int, int], None] | None = None


def build_model(spec: Any, seed: int) -> nn.Module:
    """The network of ``spec`` (a :class:`~nasblocks.spec.Spec`) with weights initialised from
    ``seed``; the global random state is untouched."""
    from nasblocks.builder import build_spec

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_spec(spec)


def fit(
    model: nn.Module,
    splits: DatasetSplits,
    config: TrainConfig | None = None,
    report: Report | None = None,
    *,
    checkpoint: Checkpoint | None = None,
    bilevel: Bilevel | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``splits.train``, validating on ``splits.val`` every epoch.

    After each epoch ``report(epoch, metrics)`` gets ``val_acc``, ``val_loss``, ``train_loss``,
    ``lr``, ``epoch_time``, ``train_time`` and ``images_per_s``; returning True stops training
    (``pruned``). Raises :class:`DivergedError` on a NaN / inf loss and
    :class:`TrainOutOfMemoryError` when memory runs out. Global RNG state is left as found.

    ``checkpoint``: the training state is saved there after every finished epoch and a run
    starts from it when it exists (:mod:`nasblocks.train.checkpoint`). A model with a
    ``paths_per_step`` attribute (a supernet under the sandwich rule) is run that many times
    per step, each call on its own path, and the gradients of the mean loss are applied once.

    ``bilevel``: a second set of parameters (a supernet's architecture) stepped on its own
    data after every weight step (:class:`Bilevel`).
    """
    config = config or TrainConfig()
    device = resolve_device(config.device)
    splits = prepare(splits, device=device)
    with torch.random.fork_rng(devices=rng_devices(device)):
        torch.manual_seed(config.seed)
        return _freeing_memory(
            lambda: _Run(model, splits, config, device, checkpoint, bilevel).train(report),
            model,
            device,
            f"training on {device} with batch_size={config.batch_size}",
        )


def evaluate(
    model: nn.Module,
    data: DatasetSplits | TensorData | Dataset,
    config: TrainConfig | None = None,
    *,
    split: str = "test",
) -> dict[str, float]:
    """Accuracy and mean cross-entropy of ``model`` on ``data`` (``data.<split>`` for splits).

    A bare ``TensorData`` / ``Dataset`` must already be model-shaped; its batches are
    normalised with its own ``mean`` / ``std``, as :func:`prepare` leaves them.
    """
    config = config or TrainConfig()
    device = resolve_device(config.device)
    part: TensorData | Dataset = (
        getattr(prepare(data, device=device), split) if isinstance(data, DatasetSplits) else data
    )
    channels_last = use_channels_last(config, device)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    batch = config.eval_batch_size or 2 * config.batch_size
    acc, loss = _freeing_memory(
        lambda: _evaluate(
            model,
            eval_batches(part, config, device, channels_last),
            autocast(amp_dtype(config.amp, device), device),
        ),
        model,
        device,
        f"evaluating on {device} with eval batches of {batch}",
    )
    return {"acc": acc, "loss": loss, "images": float(split_size(part))}


def fit_and_save(
    model: nn.Module,
    dataset: DatasetSplits,
    config: TrainConfig,
    out_dir: str | Path,
    report: Report | None = None,
) -> TrainResult:
    """Fit, evaluate on the test split, write ``metrics.json`` and ``weights.pt`` to ``out_dir``.

    ``weights.pt`` is the CPU ``state_dict``; ``metrics.json`` holds the dataset name, the
    config and the :class:`TrainResult` fields. Both are written atomically; a file that cannot
    be written raises :class:`~nasblocks.files.OutputError`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dataset = prepare(dataset, device=resolve_device(config.device))  # once for fit and test
    result = fit(model, dataset, config, report)
    test = evaluate(model, dataset, config, split="test")
    result = result.model_copy(update={"test_acc": test["acc"], "test_loss": test["loss"]})
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    write_atomic(out / "weights.pt", lambda tmp: torch.save(state, tmp))
    metrics = {
        "dataset": dataset.name,
        "config": config.model_dump(mode="json"),
        **result.model_dump(mode="json"),
    }
    write_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return result


class _Run:
    """One :func:`fit` call's state: everything the epoch loop needs, made once up front."""

    def __init__(
        self,
        model: nn.Module,
        splits: DatasetSplits,
        config: TrainConfig,
        device: torch.device,
        checkpoint: Checkpoint | None = None,
        bilevel: Bilevel | None = None,
    ) -> None:
        self.model, self.config, self.device = model, config, device
        self.checkpoint, self.bilevel = checkpoint, bilevel
        self.paths = max(1, int(getattr(model, "paths_per_step", 1)))
        self.channels_last = use_channels_last(config, device)
        model.to(device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        # Training calls ``forward``; evaluation calls the eager model (one pass per epoch
        # is not worth a second compiled graph).
        self.forward: Callable[[Tensor], Tensor] = model
        self.compiled = self.compile_pending = config.compile
        if config.compile:
            self.forward = compile_model(model)
        self.train_batches = TrainBatches(splits.train, config, device, self.channels_last)
        self.val = splits.val
        self.amp_dtype = amp_dtype(config.amp, device)
        self.autocast = autocast(self.amp_dtype, device)
        self.optimizer = make_optimizer(
            model, config, exclude=bilevel.parameters if bilevel is not None else ()
        )
        self.arch_batches = (
            TrainBatches(
                bilevel.data,
                config.model_copy(update={"seed": config.seed + 2}),
                device,
                self.channels_last,
            )
            if bilevel is not None
            else None
        )
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

    def _state(self, epoch: int, history: list[dict[str, float]], totals: list[float]) -> dict:
        return {
            "epoch": epoch,
            "history": history,
            "totals": totals,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "order": self.train_batches.generator.get_state(),
            "augment": self.augment.generator.get_state() if self.augment else None,
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "bilevel": self._bilevel_state(),
        }

    def _bilevel_state(self) -> dict[str, Any] | None:
        if self.bilevel is None or self.arch_batches is None:
            return None
        return {
            "optimizer": self.bilevel.optimizer.state_dict(),
            "order": self.arch_batches.generator.get_state(),
        }

    def _restore(self, state: dict) -> tuple[int, list[dict[str, float]], list[float]]:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.train_batches.generator.set_state(state["order"])
        if self.augment is not None and state["augment"] is not None:
            self.augment.generator.set_state(state["augment"])
        torch.set_rng_state(state["torch"])
        if self.device.type == "cuda" and state.get("cuda") is not None:
            torch.cuda.set_rng_state(state["cuda"], self.device)
        arch = state.get("bilevel")
        if self.bilevel is not None and self.arch_batches is not None and arch is not None:
            self.bilevel.optimizer.load_state_dict(arch["optimizer"])
            self.arch_batches.generator.set_state(arch["order"])
        return int(state["epoch"]), list(state["history"]), list(state["totals"])

    def train(self, report: Report | None) -> TrainResult:
        history: list[dict[str, float]] = []
        train_time = total_time = 0.0
        images = 0
        pruned = False
        first = 1
        saved = self.checkpoint.load() if self.checkpoint is not None else None
        if saved is not None:
            done, history, (train_time, total_time, seen_total) = self._restore(saved)
            images = int(seen_total)
            first = done + 1
        for epoch in range(first, self.config.epochs + 1):
            start = time.perf_counter()
            if self.bilevel is not None and self.bilevel.start_epoch is not None:
                self.bilevel.start_epoch(epoch, self.config.epochs)
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
            if self.checkpoint is not None:
                totals = [train_time, total_time, float(images)]
                self.checkpoint.save(self._state(epoch, history, totals))
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
            channels_last=self.channels_last,
            compiled=self.compiled,
            history=tuple(history),
        )

    def _epoch(self) -> tuple[Tensor, int, int]:
        """One pass; returns the on-device loss sum, the steps taken and the images seen."""
        model, criterion, optimizer = self.model, self.criterion, self.optimizer
        scheduler, scaler, forward = self.scheduler, self.scaler, self.forward
        augment, autocast = self.augment, self.autocast
        clip = self.config.grad_clip
        params = [p for group in optimizer.param_groups for p in group["params"]]
        model.train()
        loss_sum = torch.zeros((), device=self.device)
        steps = seen = 0
        arch = self._arch_batches()
        for x, y in self.train_batches:
            if augment is not None:
                x = augment(x)
            # Before the forward, so last step's gradients are not alive during this one's.
            optimizer.zero_grad(set_to_none=True)
            if self.compile_pending:
                loss = self._first_compiled_step(x, y)
                forward = self.forward
            elif self.paths > 1:  # one step over several paths of a supernet
                losses = [self._backward(forward, x, y, self.paths) for _ in range(self.paths)]
                loss = torch.stack(losses).sum()
            else:
                with autocast():
                    loss = criterion(forward(x), y)
                (loss if scaler is None else scaler.scale(loss)).backward()
            if clip is not None:
                if scaler is not None:
                    scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, clip)
            if scaler is None:
                optimizer.step()
            else:
                scaler.step(optimizer)
                scaler.update()
            if scheduler is not None:
                scheduler.step()
            if arch is not None:
                self._arch_step(*next(arch))
            loss_sum += loss.detach()
            steps += 1
            seen += y.shape[0]
        return loss_sum, steps, seen

    def _arch_batches(self) -> Iterator[tuple[Tensor, Tensor]] | None:
        """The architecture's batches for one epoch: passes over its data, as many as needed."""
        batches = self.arch_batches
        if batches is None or batches.steps == 0:
            return None
        return itertools.chain.from_iterable(iter(batches) for _ in itertools.count())

    def _arch_step(self, x: Tensor, y: Tensor) -> None:
        """One step of the bilevel parameters on their own batch (first order: the weights
        as they are now). Its gradients on the weights are dropped by the next zero_grad."""
        assert self.bilevel is not None
        optimizer = self.bilevel.optimizer
        if self.augment is not None:
            x = self.augment(x)
        optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            loss = self.criterion(self.model(x), y)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            loss.backward()
            optimizer.step()

    def _backward(
        self, forward: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, share: int = 1
    ) -> Tensor:
        with self.autocast():
            loss = self.criterion(forward(x), y) / share
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()
        return loss.detach()

    def _first_compiled_step(self, x: Tensor, y: Tensor) -> Tensor:
        """Forward and backward of the first step, where torch.compile compiles.

        A compile failure (no C++ compiler, an unsupported op...) is not the trial's fault:
        warn and go on eagerly from this very step. Running out of memory is not a compile
        failure; it propagates. A genuine model error fails again, eagerly, and propagates.
        """
        self.compile_pending = False
        try:
            return self._backward(self.forward, x, y)
        except Exception as err:
            if is_out_of_memory(err):
                raise
            reason = f"{type(err).__name__}: {_first_line(err)}"
        warnings.warn(
            f"torch.compile failed, training eagerly instead: {reason}",
            RuntimeWarning,
            stacklevel=3,
        )
        self.optimizer.zero_grad(set_to_none=True)
        self.forward, self.compiled = self.model, False
        return self._backward(self.model, x, y)


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
    if loss_sum is None or correct is None:  # no batch (both are set together)
        return 0.0, math.nan
    total_loss, total_correct = torch.stack([loss_sum, correct.double()]).tolist()
    return total_correct / count, total_loss / count


def _freeing_memory(run: Callable[[], T], model: nn.Module, device: torch.device, doing: str) -> T:
    """``run()``; when memory runs out, free what the run held and raise the nasblocks error."""
    try:
        return run()
    except (torch.OutOfMemoryError, RuntimeError) as err:
        if not is_out_of_memory(err):
            raise
        reason = _first_line(err)
    # Out of the except block, the traceback and its frames (activations, the optimiser and
    # its state, the batches) are released, so the memory can actually be returned.
    free_memory(model, device)
    raise TrainOutOfMemoryError(f"out of memory {doing}: {reason}")


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
