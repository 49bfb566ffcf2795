"""Optimiser and per-step learning-rate schedule from a :class:`TrainConfig`."""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import partial

import torch
from torch import nn

from nasblocks.train.config import TrainConfig
from nasblocks.train.hardware import TrainingError


def trainable_parameters(
    model: nn.Module, exclude: Iterable[nn.Parameter] = ()
) -> list[nn.Parameter]:
    """The parameters training updates (less ``exclude``, trained by something else); a
    model without any cannot be trained."""
    left_out = {id(p) for p in exclude}
    params = [p for p in model.parameters() if p.requires_grad and id(p) not in left_out]
    if not params:
        raise TrainingError(
            "the network has no trainable parameters (no conv, linear or norm layer): "
            "nothing to train"
        )
    return params


def make_optimizer(
    model: nn.Module, config: TrainConfig, exclude: Iterable[nn.Parameter] = ()
) -> torch.optim.Optimizer:
    params = trainable_parameters(model, exclude)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(
            params, lr=config.lr, betas=(config.momentum, 0.999), weight_decay=config.weight_decay
        )
    return torch.optim.SGD(
        params,
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.nesterov and config.momentum > 0,
        weight_decay=config.weight_decay,
    )


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR | None:
    """Per-step schedule; None for a constant rate without warmup (nothing to step)."""
    total = config.epochs * steps_per_epoch
    warmup = round(config.warmup_epochs * steps_per_epoch)
    if config.schedule == "constant" and warmup == 0:
        return None
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, partial(lr_factor, config.schedule, warmup=warmup, total=total)
    )


def lr_factor(schedule: str, step: int, *, warmup: int, total: int) -> float:
    """Learning-rate multiplier before optimiser step ``step`` (0-based) of ``total``.

    onecycle follows torch's OneCycleLR with its defaults: a cosine rise from lr/25 to lr over
    ``warmup`` steps (30 % of training when 0), then a cosine fall to lr/25e4.
    """
    if schedule == "onecycle":
        rise = warmup or max(1, round(0.3 * total))
        if step < rise:
            return _cosine(1 / 25, 1.0, step / rise)
        return _cosine(1.0, 1 / 25e4, (step - rise) / max(1, total - rise))
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    return _cosine(1.0, 0.0, (step - warmup) / max(1, total - warmup))


def _cosine(start: float, end: float, progress: float) -> float:
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
