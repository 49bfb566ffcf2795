"""GPU-trial code paths, run for real on the CPU device: device choice, autocast (bf16, fp16
with a GradScaler), channels-last, torch.compile and its fallback, out-of-memory recovery.

The tests marked ``gpu`` run the same paths on CUDA and are skipped without it.
"""

from __future__ import annotations

import gc
import math
import weakref

import pytest
import torch
from torch import nn

from nasblocks.errors import NasBlocksError
from nasblocks.train import (
    TrainConfig,
    TrainingError,
    TrainOutOfMemoryError,
    evaluate,
    fit,
    load_dataset,
    prepare,
)
from nasblocks.train.hardware import amp_dtype, free_memory, resolve_device, use_channels_last

FAST = dict(device="cpu", batch_size=32, lr=0.05, weight_decay=0.0)
CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture(scope="module")
def gray():
    data = load_dataset(
        "synthetic", seed=0, synthetic_shape=(1, 8, 8), synthetic_classes=4, synthetic_size=480
    )
    return prepare(data)


@pytest.fixture(scope="module")
def rgb():
    data = load_dataset(
        "synthetic", seed=0, synthetic_shape=(3, 8, 8), synthetic_classes=4, synthetic_size=480
    )
    return prepare(data)


def tiny_net(in_channels: int = 1, classes: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32, classes),
    )


def losses(result) -> list[float]:
    return [h["train_loss"] for h in result.history]


# -- the auto choices (torch's answers patched; nothing runs on a fake GPU) ---------------------


def test_auto_device_is_cuda_exactly_when_torch_sees_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == CUDA and resolve_device("cuda") == CUDA
    assert resolve_device("cpu") == CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == CPU
    with pytest.raises(TrainingError, match="no CUDA device"):
        resolve_device("cuda")


@pytest.mark.parametrize("bf16_supported", [True, False])
def test_auto_amp_and_channels_last_are_on_for_cuda_only(monkeypatch, bf16_supported):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16_supported)
    assert amp_dtype("auto", CUDA) == (torch.bfloat16 if bf16_supported else torch.float16)
    assert amp_dtype("auto", CPU) is None and amp_dtype("off", CUDA) is None
    assert amp_dtype("bf16", CPU) == torch.bfloat16 and amp_dtype("fp16", CPU) == torch.float16
    auto = TrainConfig()
    assert use_channels_last(auto, CUDA) and not use_channels_last(auto, CPU)
    assert use_channels_last(TrainConfig(channels_last=True), CPU)
    assert not use_channels_last(TrainConfig(channels_last=False), CUDA)


# -- mixed precision --------------------------------------------------------------------------


@pytest.mark.parametrize(("amp", "dtype"), [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_autocast_trains_in_low_precision_on_cpu(gray, monkeypatch, amp, dtype):
    scalers = []

    class RecordingScaler(torch.amp.GradScaler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.updates = 0
            scalers.append(self)

        def update(self, *args, **kwargs) -> None:
            self.updates += 1
            super().update(*args, **kwargs)

    monkeypatch.setattr(torch.amp, "GradScaler", RecordingScaler)
    model = tiny_net()
    conv_dtypes = set()
    model[0].register_forward_hook(lambda m, i, out: conv_dtypes.add(out.dtype))
    result = fit(model, gray, TrainConfig(epochs=3, amp=amp, **FAST))
    assert result.amp == str(dtype).removeprefix("torch.") and conv_dtypes == {dtype}
    assert all(math.isfinite(loss) for loss in losses(result))
    assert losses(result)[-1] < 0.5 * losses(result)[0]
    assert result.history[0]["val_acc"] < result.final_val_acc and result.final_val_acc > 0.9
    if amp == "fp16":  # fp16 gradients are scaled: one scaler update per optimiser step
        assert len(scalers) == 1 and scalers[0].updates == 3 * (len(gray.train) // 32)
    else:
        assert not scalers
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay fp32


# -- channels-last ----------------------------------------------------------------------------


class RecordInputs(nn.Module):
    """Wraps a model; records the memory format of every batch it is given."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.formats: list[tuple[bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.formats.append(
            (x.is_contiguous(memory_format=torch.channels_last), x.is_contiguous())
        )
        return self.inner(x)


def test_channels_last_model_and_batches_train_like_contiguous_ones(rgb):
    config = TrainConfig(epochs=2, augment={"flip": True, "crop_padding": 1}, **FAST)
    plain = RecordInputs(tiny_net(in_channels=3))
    last = RecordInputs(tiny_net(in_channels=3))
    contiguous = fit(plain, rgb, config.model_copy(update={"channels_last": False}))
    channels_last = fit(last, rgb, config.model_copy(update={"channels_last": True}))
    assert channels_last.channels_last and not contiguous.channels_last
    assert last.inner[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not last.inner[0].weight.is_contiguous()
    assert plain.inner[0].weight.is_contiguous()
    # Training and validation batches alike: channels-last, not NCHW-contiguous (C = 3).
    assert last.formats and set(last.formats) == {(True, False)}
    assert set(plain.formats) == {(False, True)}
    for a, b in zip(contiguous.history, channels_last.history, strict=True):
        for key in ("train_loss", "val_loss", "val_acc"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5), key
    metrics = evaluate(last, rgb, TrainConfig(device="cpu", channels_last=True))
    assert metrics["acc"] == pytest.approx(channels_last.final_val_acc, abs=0.2)


# -- torch.compile ----------------------------------------------------------------------------


def test_compile_trains_the_same_model(gray):
    """Inductor on the CPU (needs a C++ compiler): same training, same state_dict keys."""
    config = TrainConfig(epochs=2, **FAST)
    eager_model, compiled_model = tiny_net(), tiny_net()
    eager = fit(eager_model, gray, config)
    compiled = fit(compiled_model, gray, config.model_copy(update={"compile": True}))
    assert compiled.compiled and not eager.compiled
    assert compiled_model.state_dict().keys() == eager_model.state_dict().keys()
    assert losses(compiled) == pytest.approx(losses(eager), rel=1e-4)
    torch.testing.assert_close(
        compiled_model.state_dict(), eager_model.state_dict(), rtol=1e-3, atol=1e-4
    )


def test_compile_failure_falls_back_to_eager_with_a_warning(gray, monkeypatch):
    def broken_compile(model, *args, **kwargs):
        def compiled(x):
            raise RuntimeError("InductorError: no working C++ compiler found\nmore detail")

        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    config = TrainConfig(epochs=2, compile=True, **FAST)
    with pytest.warns(RuntimeWarning, match="training eagerly instead: RuntimeError: Inductor"):
        fallback = fit(tiny_net(), gray, config)
    eager = fit(tiny_net(), gray, config.model_copy(update={"compile": False}))
    assert not fallback.compiled
    assert losses(fallback) == losses(eager)  # no step lost or taken twice


# -- out of memory ----------------------------------------------------------------------------


class FailsAtStep(nn.Module):
    """Raises PyTorch's OOM error in training step ``fail_at``, after allocating activations."""

    def __init__(self, fail_at: int | None) -> None:
        super().__init__()
        self.inner = tiny_net()
        self.fail_at, self.steps = fail_at, 0
        self.activations: list[weakref.ref] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        if self.training:
            self.steps += 1
            if self.steps == self.fail_at:
                big = torch.empty(1 << 20)
                self.activations += [weakref.ref(big), weakref.ref(out)]
                out.sum().backward()  # gradients behind, as a half-done step would leave
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return out


def _optimizers_of(model: nn.Module) -> list[torch.optim.Optimizer]:
    params = {id(p) for p in model.parameters()}
    return [
        o
        for o in gc.get_objects()
        if issubclass(type(o), torch.optim.Optimizer)  # type(): some objects warn on __class__
        and any(id(p) in params for group in o.param_groups for p in group["params"])
    ]


def test_out_of_memory_frees_the_run_and_the_model_trains_again(gray):
    model = FailsAtStep(fail_at=3)  # two optimiser steps (momentum buffers) before it
    config = TrainConfig(epochs=2, **FAST)
    with pytest.raises(TrainOutOfMemoryError) as info:
        fit(model, gray, config)
    error = info.value
    assert isinstance(error, torch.OutOfMemoryError) and isinstance(error, NasBlocksError)
    assert str(error) == (
        "out of memory training on cpu with batch_size=32: "
        "CUDA out of memory. Tried to allocate 2.00 GiB"
    )
    assert error.__context__ is None  # raised afresh: PyTorch's error and its frames are gone
    del info, error
    gc.collect()
    assert model.steps == 3 and all(p.grad is None for p in model.parameters())
    assert all(ref() is None for ref in model.activations)  # the step's tensors are gone
    assert not _optimizers_of(model)  # the optimiser and its momentum buffers too
    model.fail_at = None
    again = fit(model, gray, config)
    assert again.final_val_acc > 0.8 and all(math.isfinite(x) for x in losses(again))


def test_out_of_memory_in_evaluation_is_the_same_error(gray):
    class FailsInEval(nn.Module):
        def forward(self, x):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")

    with pytest.raises(TrainOutOfMemoryError, match="evaluating on cpu .*9.00 GiB"):
        evaluate(FailsInEval(), gray, TrainConfig(device="cpu"))


def test_plain_runtime_errors_are_not_taken_for_out_of_memory(gray):
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.ones(1))

        def forward(self, x):
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="shapes") as info:
        fit(Broken(), gray, TrainConfig(epochs=1, **FAST))
    assert not isinstance(info.value, TrainOutOfMemoryError)


@pytest.mark.parametrize(("device", "emptied"), [(CPU, False), (CUDA, True)])
def test_free_memory_empties_the_cuda_cache_only_for_cuda(monkeypatch, device, emptied):
    calls = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append(True))
    model = tiny_net()
    model(torch.randn(2, 1, 8, 8)).sum().backward()
    free_memory(model, device)
    assert bool(calls) == emptied and all(p.grad is None for p in model.parameters())


# -- on a real GPU ----------------------------------------------------------------------------


@pytest.mark.gpu
def test_cuda_fit_with_amp_channels_last_and_uint8_resident_data():
    assert resolve_device("auto").type == "cuda"
    raw = load_dataset(
        "synthetic", seed=0, synthetic_shape=(3, 16, 16), synthetic_classes=4, synthetic_size=800
    )
    splits = prepare(raw, device="cuda")
    assert splits.train.images.is_cuda and splits.train.images.dtype == torch.uint8
    model = tiny_net(in_channels=3)
    config = TrainConfig(
        epochs=4, batch_size=64, lr=0.05, augment={"flip": True, "crop_padding": 2}
    )  # device, amp and channels_last all "auto"
    result = fit(model, splits, config)
    assert result.device.startswith("cuda") and result.amp in ("bfloat16", "float16")
    assert result.channels_last
    assert model[0].weight.is_cuda
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert all(math.isfinite(x) for x in losses(result)) and result.final_val_acc > 0.8
    test = evaluate(model, splits, config)
    assert test["acc"] > 0.8


@pytest.mark.gpu
def test_cuda_prefetch_copies_pinned_batches_in_order():
    from torch.utils.data import DataLoader, TensorDataset

    from nasblocks.train.prefetch import Prefetch

    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    loader = DataLoader(TensorDataset(images, torch.arange(64)), batch_size=8, pin_memory=True)
    got = list(Prefetch(loader, CUDA))
    assert len(got) == 8
    for (x, y), (ex, ey) in zip(got, loader, strict=True):
        assert x.is_cuda and y.is_cuda
        assert torch.equal(x.cpu(), ex) and torch.equal(y.cpu(), ey)


@pytest.mark.gpu
def test_cuda_out_of_memory_returns_the_memory():
    class Greedy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = tiny_net()

        def forward(self, x):
            out = self.inner(x)
            held = torch.ones(256 << 20, dtype=torch.uint8, device=x.device)  # noqa: F841
            free, _ = torch.cuda.mem_get_info()
            torch.empty(2 * free, dtype=torch.uint8, device=x.device)  # a real OOM
            return out

    model = Greedy().cuda()
    gray = prepare(
        load_dataset("synthetic", synthetic_shape=(1, 8, 8), synthetic_classes=4),
        device="cuda",
    )
    # Warm up what CUDA keeps allocated for good (cuBLAS / cuDNN workspaces) before measuring.
    with torch.no_grad(), torch.autocast("cuda", dtype=amp_dtype("auto", CUDA)):
        model.inner(torch.zeros(32, 1, 8, 8, device="cuda"))
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    with pytest.raises(TrainOutOfMemoryError, match="out of memory training on cuda"):
        fit(model, gray, TrainConfig(epochs=1, device="cuda", batch_size=32))
    torch.cuda.synchronize()
    # The 256 MiB the failed step held (and its activations) are back; slack for allocator
    # rounding, far below what a leaked step would keep.
    assert torch.cuda.memory_allocated() <= before + (16 << 20)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.gpu
@pytest.mark.slow
def test_cuda_compile_trains():
    splits = prepare(
        load_dataset("synthetic", synthetic_shape=(3, 16, 16), synthetic_classes=4),
        device="cuda",
    )
    config = TrainConfig(epochs=2, batch_size=64, lr=0.05, compile=True)
    result = fit(tiny_net(in_channels=3), splits, config)
    assert result.compiled and result.final_val_acc > 0.8
