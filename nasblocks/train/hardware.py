"""What a :class:`TrainConfig` means on this machine: device, autocast, memory format, compile.

The ``auto`` choices are made here, by small pure functions of the config and of what torch
reports (``torch.cuda.is_available``, ``is_bf16_supported``), so they can be tested on any
machine; the training loop only applies them.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import nn

from nasblocks.errors import NasBlocksError
from nasblocks.train.config import TrainConfig


class TrainingError(NasBlocksError):
    """A training run that could not go on as asked."""


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; asking for CUDA without one is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise TrainingError("device 'cuda' was asked for but torch sees no CUDA device")
    return torch.device(device)


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype: ``auto`` is bf16 on CUDA where supported, else fp16; off on the CPU.

    ``bf16`` / ``fp16`` are honoured on any device (the CPU's autocast has both).
    """
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def autocast(
    dtype: torch.dtype | None, device: torch.device
) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """A factory of the autocast context for ``dtype`` (a no-op context when None)."""
    if dtype is None:
        return contextlib.nullcontext
    return partial(torch.autocast, device.type, dtype=dtype)


def use_channels_last(config: TrainConfig, device: torch.device) -> bool:
    """``auto``: channels-last on CUDA, where tensor-core convolutions want it."""
    if config.channels_last == "auto":
        return device.type == "cuda"
    return bool(config.channels_last)


def rng_devices(device: torch.device) -> list[int]:
    """The CUDA devices whose RNG state a run on ``device`` may touch (to fork it)."""
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def compile_model(model: nn.Module) -> Callable[..., Any]:
    """``torch.compile(model)``, after clearing dynamo's caches.

    A search compiles one architecture after another in one process, all through the same
    ``forward`` code; dynamo's per-code cache would fill up (``recompile_limit``) and quietly
    run later models eagerly. Trials in a process run one at a time, so a reset is safe.
    Compiling is lazy: failures surface at the first call (see the trainer's fallback).
    """
    torch.compiler.reset()
    return torch.compile(model)


def free_memory(model: nn.Module, device: torch.device) -> None:
    """After an out-of-memory error: drop gradients, collect the run's garbage, empty the cache.

    Call it outside the ``except`` block, once the traceback (whose frames hold activations,
    the optimiser and its state) is gone.
    """
    model.zero_grad(set_to_none=True)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def is_out_of_memory(err: BaseException) -> bool:
    """PyTorch's OOM error, or the plain RuntimeErrors some CUDA / cuDNN allocations raise."""
    if isinstance(err, torch.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """``torch.set_num_threads(threads)`` inside, restored after (None: untouched). A search
    and its retraining use the same threads: the same float reductions, the same numbers."""
    if not threads:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
