"""The trainer: learning, reporting and pruning, determinism, failures, schedules, outputs.

Device, autocast, channels-last, compile and out-of-memory paths: test_hardware.py."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import BaseModel, ValidationError
from torch import nn

from nasblocks.errors import NasBlocksError
from nasblocks.train import (
    DatasetSplits,
    DivergedError,
    TensorData,
    TrainConfig,
    TrainingError,
    evaluate,
    fit,
    fit_and_save,
    load_dataset,
    prepare,
)
from nasblocks.train.augment import random_crop, random_flip
from nasblocks.train.config import AugmentConfig
from nasblocks.train.optim import lr_factor

FAST = dict(device="cpu", batch_size=32, lr=0.05, weight_decay=0.0)


@pytest.fixture(scope="module")
def splits():
    data = load_dataset(
        "synthetic", seed=0, synthetic_shape=(1, 8, 8), synthetic_classes=4, synthetic_size=480
    )
    return prepare(data)


def tiny_net(seed: int = 0, in_channels: int = 1, classes: int = 4) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32, classes),
    )


class CountCalls(nn.Module):
    """Wraps a model; counts training-mode forwards and can turn them NaN from a given call."""

    def __init__(self, inner: nn.Module, nan_from: int | None = None) -> None:
        super().__init__()
        self.inner, self.nan_from, self.calls = inner, nan_from, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        if self.training:
            self.calls += 1
            if self.nan_from is not None and self.calls >= self.nan_from:
                out = out * math.nan
        return out


# -- config ---------------------------------------------------------------------------------


def test_config_forbids_unknown_fields_and_describes_every_field():
    with pytest.raises(ValidationError):
        TrainConfig(epoch=3)
    with pytest.raises(ValidationError):
        TrainConfig(augment={"flip": True, "cutout": 8})
    with pytest.raises(ValidationError, match="warmup_epochs"):
        TrainConfig(epochs=2, warmup_epochs=3)
    for model in (TrainConfig, AugmentConfig):
        assert issubclass(model, BaseModel)
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


# -- training -------------------------------------------------------------------------------


def test_fit_learns_and_reports_every_epoch(splits):
    seen: list[tuple[int, dict]] = []
    result = fit(
        tiny_net(), splits, TrainConfig(epochs=4, **FAST), report=lambda e, m: seen.append((e, m))
    )
    assert [e for e, _ in seen] == [1, 2, 3, 4]
    assert {"val_acc", "train_loss", "epoch_time"} <= set(seen[0][1])
    assert result.final_val_acc > 0.8 and result.best_val_acc >= result.final_val_acc
    assert result.epochs_run == 4 and not result.pruned and len(result.history) == 4
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.images_per_s > 0 and result.device == "cpu" and result.amp == "off"


def test_fit_is_deterministic_on_cpu(splits):
    config = TrainConfig(epochs=2, augment={"flip": True, "crop_padding": 1}, **FAST)
    first = fit(tiny_net(), splits, config)
    second = fit(tiny_net(), splits, config)
    keys = ("train_loss", "val_acc", "val_loss")
    assert [[h[k] for k in keys] for h in first.history] == [
        [h[k] for k in keys] for h in second.history
    ]
    other_seed = fit(tiny_net(), splits, config.model_copy(update={"seed": 1}))
    assert other_seed.history[0]["train_loss"] != first.history[0]["train_loss"]


def test_report_returning_true_prunes(splits):
    result = fit(tiny_net(), splits, TrainConfig(epochs=5, **FAST), report=lambda e, m: e == 2)
    assert result.pruned and result.epochs_run == 2 and len(result.history) == 2


def test_max_train_batches_caps_every_epoch(splits):
    model = CountCalls(tiny_net())
    result = fit(model, splits, TrainConfig(epochs=3, max_train_batches=2, **FAST))
    assert model.calls == 6
    assert result.images_per_s > 0 and result.history[0]["images_per_s"] > 0


def test_divergence_raises_with_the_epoch(splits):
    model = CountCalls(tiny_net(), nan_from=3)  # batches 1-2 fine, NaN from batch 3 (epoch 2)
    with pytest.raises(DivergedError) as info:
        fit(model, splits, TrainConfig(epochs=4, max_train_batches=2, **FAST))
    assert info.value.epoch == 2 and math.isnan(info.value.loss)
    assert isinstance(info.value, NasBlocksError)


def test_fit_leaves_global_rng_alone(splits):
    model = tiny_net()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit(model, splits, TrainConfig(epochs=1, max_train_batches=1, **FAST))
    assert torch.equal(torch.rand(3), expected)


def test_fit_prepares_raw_uint8_splits_itself(splits):
    def as_uint8(data: TensorData) -> TensorData:
        return TensorData((data.images * 40 + 128).clamp(0, 255).to(torch.uint8), data.labels)

    raw = DatasetSplits(
        "raw", as_uint8(splits.train), as_uint8(splits.val), as_uint8(splits.test), 4, (1, 8, 8)
    )
    result = fit(tiny_net(), raw, TrainConfig(epochs=1, max_train_batches=2, **FAST))
    assert math.isfinite(result.history[0]["train_loss"]) and not raw.prepared


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_asking_for_missing_cuda_is_a_training_error(splits):
    with pytest.raises(TrainingError, match="no CUDA device"):
        fit(tiny_net(), splits, TrainConfig(device="cuda"))


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
@pytest.mark.parametrize("schedule", ["cosine", "onecycle", "constant"])
def test_optimizers_and_schedules_train(splits, optimizer, schedule):
    lr = 0.05 if optimizer == "sgd" else 0.01
    config = TrainConfig(
        epochs=2,
        optimizer=optimizer,
        schedule=schedule,
        warmup_epochs=0.5,
        label_smoothing=0.1,
        grad_clip=1.0,
        max_train_batches=4,
        **{**FAST, "lr": lr},
    )
    result = fit(tiny_net(), splits, config)
    assert all(math.isfinite(h["train_loss"]) for h in result.history)
    last_lr = result.history[-1]["lr"]
    expected = {"cosine": 0.0, "onecycle": lr / 25e4, "constant": lr}[schedule]
    assert last_lr == pytest.approx(expected, abs=1e-9)


def test_lr_factor_shapes():
    assert [lr_factor("constant", s, warmup=4, total=10) for s in range(5)] == [
        0.25,
        0.5,
        0.75,
        1.0,
        1.0,
    ]
    cosine = [lr_factor("cosine", s, warmup=0, total=10) for s in range(11)]
    assert cosine[0] == 1.0 and cosine[5] == pytest.approx(0.5) and cosine[10] == 0.0
    assert all(a >= b for a, b in zip(cosine, cosine[1:], strict=False))
    one = [lr_factor("onecycle", s, warmup=0, total=10) for s in range(11)]
    assert one[0] == pytest.approx(1 / 25) and one[3] == 1.0 and one[10] == pytest.approx(4e-6)


# -- augmentation ---------------------------------------------------------------------------


def test_random_crop_is_a_shifted_window_of_the_padded_image():
    x = torch.arange(16 * 2 * 5 * 5, dtype=torch.float32).view(16, 2, 5, 5) + 1
    out = random_crop(x, 2, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    offsets = set()
    for b in range(16):
        matches = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(out[b], padded[b, :, dy : dy + 5, dx : dx + 5])
        ]
        assert len(matches) == 1
        offsets.add(matches[0])
    assert len(offsets) > 3  # offsets differ between samples
    assert random_crop(x, 0, torch.Generator()) is x


def test_random_flip_mirrors_about_half():
    x = torch.randn(64, 3, 4, 4)
    out = random_flip(x, torch.Generator().manual_seed(0))
    flipped = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x, strict=True)]
    kept = [torch.equal(o, i) for o, i in zip(out, x, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 16 < sum(flipped) < 48


# -- evaluation and outputs -----------------------------------------------------------------


class Constant(nn.Module):
    """Always predicts class 0."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([5.0, 0.0, 0.0, 0.0]))

    def forward(self, x):
        return self.bias.expand(x.shape[0], -1)


def test_evaluate_measures_accuracy_and_loss(splits):
    test = splits.test
    expected_acc = (test.labels == 0).float().mean().item()
    metrics = evaluate(Constant(), splits, TrainConfig(device="cpu", eval_batch_size=7))
    assert metrics["acc"] == pytest.approx(expected_acc)
    logits = torch.tensor([5.0, 0.0, 0.0, 0.0]).expand(len(test), -1)
    expected_loss = nn.functional.cross_entropy(logits, test.labels).item()
    assert metrics["loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert evaluate(Constant(), TensorData(test.images, test.labels))["acc"] == metrics["acc"]


def test_train_one_writes_metrics_and_weights(splits, tmp_path):
    model = tiny_net()
    result = fit_and_save(model, splits, TrainConfig(epochs=1, **FAST), tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["dataset"] == "synthetic" and metrics["config"]["epochs"] == 1
    assert metrics["test_acc"] == result.test_acc and 0.0 <= result.test_acc <= 1.0
    assert metrics["final_val_acc"] == result.final_val_acc
    fresh = tiny_net(seed=1)
    fresh.load_state_dict(torch.load(tmp_path / "run" / "weights.pt"), strict=True)
    torch.testing.assert_close(fresh.state_dict(), model.state_dict())


def test_fit_reads_image_folders_through_a_data_loader(tmp_path):
    rng = np.random.default_rng(0)
    for label, name in enumerate(("a", "b")):
        (tmp_path / name).mkdir()
        for i in range(12):
            pixels = rng.integers(0, 60, (6, 6, 3)) + 190 * label
            Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / name / f"{i}.png")
    data = prepare(load_dataset(f"imagefolder:{tmp_path}"), (3, 6, 6))
    config = TrainConfig(
        epochs=3, loader_workers=0, augment={"flip": True}, **{**FAST, "batch_size": 4}
    )
    result = fit(tiny_net(in_channels=3, classes=2), data, config)
    assert result.history[0]["images_per_s"] > 0 and result.final_val_acc == 1.0
