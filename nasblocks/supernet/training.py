"""Training a supernet with the one trainer: single-path sampling or the sandwich rule.

The supernet is an ``nn.Module`` whose every training call runs the subnet its path draws, so
:func:`nasblocks.train.fit` trains it unchanged: the same data, augmentation, optimiser,
schedule, AMP, channels-last and device handling as a trained trial, and its checkpoints
(:mod:`nasblocks.train.checkpoint`) make a killed supernet resume from its last finished
epoch. Strategies:

- ``spos``: one uniformly drawn subnet per step (Guo et al., "Single Path One-Shot", 2020);
- ``sandwich``: per step the largest, the smallest and two random subnets, the gradients of
  their mean loss applied once (Yu et al., BigNAS 2020; Cai et al., Once-for-All 2020).

Nodes of ``search.train`` are not architecture: the supernet trains at one stated value of
each (:func:`fixed_training`), and the study searches the architecture alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from nasblocks.search.candidate import DataInfo, train_settings
from nasblocks.space import Choice, FixedSource, FloatRange, IntRange, Sample, SearchSpace
from nasblocks.space.nodes import iter_nodes, resolve
from nasblocks.supernet.gdas import Architecture
from nasblocks.supernet.network import ExtremeSource, Supernet, SupernetError
from nasblocks.supernet.slots import structural_nodes

CHECKPOINT = "supernet.pt"
CURVE_VAL_IMAGES = 2000  # validation images of the per-epoch curve (random subnets)
SANDWICH_PATHS = 4
SETTINGS = "space, data and supernet settings"  # what a checkpoint's meta records


def stated_value(node: Any) -> Any:
    """The value a training node is fixed at for the supernet: a choice's first option, the
    midpoint of a range (geometric for ``log``)."""
    if isinstance(node, Choice):
        return node.labels[0]
    if isinstance(node, IntRange):
        return node.low + ((node.high - node.low) // node.step // 2) * node.step
    assert isinstance(node, FloatRange)
    if node.log:
        return math.sqrt(node.low * node.high)
    return (node.low + node.high) / 2


def fixed_training(space: SearchSpace) -> tuple[SearchSpace, dict[str, Any]]:
    """The space with its ``search.train`` nodes fixed (``search.supernet.train`` first, then
    :func:`stated_value`), and the values chosen, by node name."""
    settings = space.settings.supernet
    given = dict(settings.train) if settings is not None else {}
    train_nodes = list(iter_nodes(space.train))
    stated = {node.name: stated_value(node) for node in train_nodes}
    train = resolve(space.train, FixedSource(stated), {}) if train_nodes else dict(space.train)
    train.update(given)  # the supernet's own settings, whatever the trials' ranges
    chosen = {
        name: given.get(name.removeprefix("train."), value) for name, value in stated.items()
    }
    names = {n.name for n in train_nodes}
    fixed = dataclasses.replace(
        space, train=train, nodes=tuple(n for n in space.nodes if n.name not in names)
    )
    return fixed, chosen


def train_config(space: SearchSpace) -> Any:
    """The supernet's ``TrainConfig``: the space's (fixed) training settings, its epochs."""
    from nasblocks.train import TrainConfig

    settings = space.settings.supernet
    assert settings is not None
    values = train_settings(space.train, space.settings)
    values["epochs"] = settings.epochs
    try:
        return TrainConfig.model_validate(values)
    except ValidationError as e:
        first = e.errors()[0]
        key = first["loc"][0] if first["loc"] else ""
        where = (
            ("search", "supernet", "train", key)
            if key in settings.train
            else ("search", "train", key)
        )
        raise space.error(f"{first['msg']} (got {first.get('input')!r})", where) from None


def fingerprint(space: SearchSpace, info: DataInfo, config: Any) -> str:
    """What a supernet checkpoint belongs to: the architecture, the data, the settings."""
    from nasblocks.search.outputs.folder import RUNTIME_TRAIN_KEYS

    settings = space.settings
    net = settings.supernet
    what = {
        "template": space.template,
        "info": [list(info.input_shape), info.num_classes],
        "data": settings.data.model_dump(mode="json", exclude={"root", "download"}),
        "strategy": net.strategy if net is not None else None,
        "train": config.model_dump(mode="json", exclude=set(RUNTIME_TRAIN_KEYS) - {"epochs"}),
        "seed": settings.seed,
    }
    if net is not None and net.strategy == "gdas":
        what["arch_lr"] = net.arch_lr
    text = json.dumps(what, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_checkpoint(space: SearchSpace, info: DataInfo, out: Path) -> None:
    """Refuse, before anything is written, a supernet checkpoint in ``out`` that another
    space, data or supernet settings trained (one line)."""
    from nasblocks.train.checkpoint import Checkpoint, CheckpointError

    meta = {SETTINGS: fingerprint(space, info, train_config(space))}
    try:
        Checkpoint(out / CHECKPOINT, meta).load()
    except CheckpointError as e:
        raise SupernetError(str(e)) from None


class Paths:
    """The subnets training draws, resumable (its state is part of the supernet's)."""

    def __init__(self, space: SearchSpace, seed: int, strategy: str) -> None:
        self.space, self.strategy = space, strategy
        self.rng = random.Random(seed)
        self.step = 0

    def __call__(self) -> Sample:
        seed = self.rng.randrange(2**32)
        turn = self.step % SANDWICH_PATHS if self.strategy == "sandwich" else 2
        self.step += 1
        high = {0: True, 1: False}.get(turn)
        if high is None:
            from nasblocks.space import RandomSource

            return self.space.sample(RandomSource(seed))
        return self.space.sample(ExtremeSource(seed, high))

    def state(self) -> dict[str, Any]:
        return {"rng": self.rng.getstate(), "step": self.step}

    def restore(self, state: dict[str, Any]) -> None:
        self.rng.setstate(state["rng"])
        self.step = int(state["step"])


class TrainedSupernet(Supernet):
    """A supernet whose training path is a :class:`Paths` (saved in its ``state_dict``)."""

    def __init__(self, space: SearchSpace, info: DataInfo, **kwargs: Any) -> None:
        settings = space.settings.supernet
        strategy = settings.strategy if settings is not None else "spos"
        seed = int(kwargs.get("seed", 0))
        if strategy == "gdas":
            kwargs["architecture"] = Architecture(structural_nodes(space), space, seed)
        super().__init__(space, info, **kwargs)
        self.paths = Paths(space, self.seed, strategy)
        self.path = self.paths
        if self.architecture is not None:
            architecture = self.architecture
            self.path = lambda: architecture.draw(space)
        self.curve_paths = Paths(space, self.seed + 1, "spos")
        self.eval_path = self.curve_paths
        self.paths_per_step = SANDWICH_PATHS if strategy == "sandwich" else 1

    def get_extra_state(self) -> Any:
        return {
            "paths": self.paths.state(),
            "curve": self.curve_paths.state(),
            "skipped": self.skipped,
            "architecture": self.architecture.state() if self.architecture else None,
        }

    def set_extra_state(self, state: Any) -> None:
        self.paths.restore(state["paths"])
        if self.architecture is not None and state.get("architecture") is not None:
            self.architecture.restore(state["architecture"])
        self.curve_paths.restore(state["curve"])
        self.skipped = int(state["skipped"])


def train_supernet(
    space: SearchSpace,
    data: Any,
    info: DataInfo,
    out: Path,
    log: Callable[[str], None] = print,
) -> tuple[TrainedSupernet, dict[str, Any]]:
    """Train (or resume, or load when finished) the supernet of ``space`` in ``out``.

    Returns the supernet and its record (strategy, settings, history, times) for the report.
    A checkpoint of another space or settings is refused with one line; a NaN loss stops
    with the trainer's ``DivergedError`` and the last good checkpoint kept.
    """
    import torch

    from nasblocks.files import make_folder
    from nasblocks.train import Bilevel, TrainOutOfMemoryError, fit
    from nasblocks.train.checkpoint import Checkpoint
    from nasblocks.train.trainer import resolve_device

    settings = space.settings.supernet
    if settings is None:
        raise SupernetError("the space has no search.supernet section")
    config = train_config(space)
    meta = {SETTINGS: fingerprint(space, info, config)}
    path = out / CHECKPOINT
    saved = Checkpoint(path, meta).load()
    kwargs: dict[str, Any] = {"seed": config.seed, "discovery": settings.discovery}
    if saved is not None:
        kwargs["slots"] = saved["slots"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = TrainedSupernet(space, info, **kwargs)
    checkpoint = Checkpoint(path, meta, {"slots": net.slots(), "strategy": settings.strategy})
    record: dict[str, Any] = {
        "strategy": settings.strategy,
        "paths_per_step": net.paths_per_step,
        "epochs": settings.epochs,
        "train": config.model_dump(mode="json"),
        "recalibration_batches": settings.recalibration_batches,
        "slots": len(net.shapes),
        "parameters": int(sum(p.numel() for p in net.weights)),
    }
    if saved is not None and int(saved["epoch"]) >= settings.epochs:
        net.load_state_dict(saved["model"])
        record.update(
            history=saved["history"], train_time_s=saved["totals"][0], skipped_draws=net.skipped
        )
        return net, _with_architecture(net, record)
    if saved is not None:
        log(f"supernet: resuming after epoch {saved['epoch']} of {settings.epochs} ({path})")
    device = resolve_device(config.device)
    splits = data.prepared(info.input_shape, device)
    make_folder(out)
    curve = dataclasses.replace(splits, val=val_subset(splits.val, CURVE_VAL_IMAGES))

    def each_epoch(epoch: int, metrics: dict[str, float]) -> bool:
        log(
            f"supernet epoch {epoch}/{settings.epochs}: train loss {metrics['train_loss']:.4f}, "
            f"random subnets' val acc {metrics['val_acc']:.4f} ({metrics['epoch_time']:.0f} s)"
            + (_argmax_text(net) if net.architecture is not None else "")
        )
        return False

    bilevel = None
    if net.architecture is not None:  # GDAS: alpha steps on the validation split
        arch = net.architecture
        optimizer = arch.optimizer(settings.arch_lr)
        bilevel = Bilevel(list(arch.alpha), optimizer, splits.val, arch.start_epoch)
    try:
        result = fit(net, curve, config, each_epoch, checkpoint=checkpoint, bilevel=bilevel)
    except TrainOutOfMemoryError as e:
        raise TrainOutOfMemoryError(f"{e}{_where(net, device)}") from None
    record["history"] = [dict(h) for h in result.history]
    record["train_time_s"] = result.train_time_s
    record["skipped_draws"] = net.skipped
    return net, _with_architecture(net, record)


def _argmax_text(net: Supernet) -> str:
    assert net.architecture is not None
    chosen = net.architecture.chosen(net.space)
    return f"; tau {net.architecture.tau:.2f}, argmax of alpha: " + ", ".join(
        f"{k}={v}" for k, v in chosen.items()
    )


def _with_architecture(net: Supernet, record: dict[str, Any]) -> dict[str, Any]:
    """GDAS's result in the record: the chosen option and softmax(alpha) of every node."""
    if net.architecture is not None:
        record["architecture"] = net.architecture.chosen(net.space)
        record["alpha"] = net.architecture.probabilities(net.space)
        settings = net.space.settings.supernet
        record["arch_lr"] = settings.arch_lr if settings is not None else None
    return record


def _where(net: Supernet, device: Any) -> str:
    """Which subnet ran out of memory, and the peak the device saw."""
    import torch

    where = ""
    if net.last is not None:
        spec = net.last.spec
        where = f" (subnet {spec.hash()[:12]}: {dict(net.last.sample.params)})"
    if getattr(device, "type", "") == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**30
        where += f"; peak memory {peak:.2f} GiB"
    return where


def val_subset(part: Any, n: int, seed: int = 0) -> Any:
    """``n`` images of a split drawn at random (seeded), in random order: splits are stored
    class by class, and a batch of one class would make batch statistics erase the class."""
    import torch

    from nasblocks.train.data import TensorData

    if isinstance(part, TensorData) and len(part) > n:
        order = torch.randperm(len(part), generator=torch.Generator().manual_seed(seed))
        return part.subset(order[:n])
    return part
