"""How a trial trains: one frozen, validated value that a search can sample and a YAML can hold."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class AugmentConfig(BaseModel):
    """Training-set augmentation, applied to whole batches on the training device."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    flip: bool = Field(False, description="Mirror each training image left-right with p = 1/2.")
    crop_padding: int = Field(
        0,
        ge=0,
        description="Random crop: zero-pad each side by this many pixels (zero is the mean once "
        "normalised) and crop back to the original size at a random offset. 0 turns it off; "
        "4 is the usual CIFAR setting.",
    )


class TrainConfig(BaseModel):
    """Optimiser, schedule, augmentation and hardware settings of one training run."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    epochs: int = Field(10, ge=1, description="Passes over the training split.")
    batch_size: int = Field(
        128,
        ge=1,
        description="Training images per optimiser step. The last partial batch of an epoch is "
        "dropped (each epoch draws a fresh permutation).",
    )
    eval_batch_size: int | None = Field(
        None, ge=1, description="Images per evaluation batch; None means 2 x batch_size."
    )
    optimizer: Literal["sgd", "adamw"] = Field(
        "sgd", description="sgd: torch.optim.SGD; adamw: torch.optim.AdamW."
    )
    lr: float = Field(
        0.1, gt=0, description="Peak learning rate, reached at the end of the warmup."
    )
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum; AdamW uses it as beta1.")
    weight_decay: float = Field(
        5e-4, ge=0, description="Weight decay (decoupled for AdamW, L2 for SGD) on all weights."
    )
    nesterov: bool = Field(
        True, description="Nesterov momentum for SGD (ignored when momentum is 0 or for AdamW)."
    )
    schedule: Literal["cosine", "onecycle", "constant"] = Field(
        "cosine",
        description="Learning-rate schedule, stepped every batch. cosine: linear warmup then "
        "cosine decay to 0; onecycle: torch's OneCycleLR (warmup_epochs sets its rising phase, "
        "30 % when 0); constant: linear warmup then lr.",
    )
    warmup_epochs: float = Field(
        0.0, ge=0, description="Epochs of linear learning-rate warmup from 0 (may be fractional)."
    )
    label_smoothing: float = Field(
        0.0, ge=0, lt=1, description="Label smoothing of the cross-entropy training loss."
    )
    augment: AugmentConfig = Field(
        default_factory=AugmentConfig, description="Training augmentation, batched on device."
    )
    amp: Literal["auto", "off", "bf16", "fp16"] = Field(
        "auto",
        description="Mixed precision. auto: on for CUDA (bf16 where supported, else fp16 with a "
        "GradScaler), off on CPU.",
    )
    channels_last: bool | Literal["auto"] = Field(
        "auto", description="Model and images in channels-last memory format; auto: on CUDA."
    )
    compile: bool = Field(
        False,
        description="Compile the model with torch.compile before training (the first steps "
        "pay the compile time; a compile failure falls back to eager with a warning). "
        "Evaluation runs eagerly.",
    )
    grad_clip: float | None = Field(
        None, gt=0, description="Clip the global gradient L2 norm to this value; None: no clip."
    )
    max_train_batches: int | None = Field(
        None,
        ge=1,
        description="Stop each epoch after this many batches (tests, small budgets); None: all.",
    )
    loader_workers: int = Field(
        2,
        ge=0,
        description="DataLoader worker processes for file-backed datasets (imagefolder); "
        "in-memory datasets use none.",
    )
    seed: int = Field(
        0,
        ge=0,
        le=2**32 - 1,  # a search's seed becomes this one: nasblocks.space.settings.MAX_SEED
        description="Seeds batch order, augmentation and dropout (not the model's init).",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where to train; auto: CUDA when available, else CPU."
    )

    @model_validator(mode="after")
    def _warmup_within_training(self) -> TrainConfig:
        if self.warmup_epochs > self.epochs:
            raise ValueError(
                f"warmup_epochs ({self.warmup_epochs}) exceeds epochs ({self.epochs})"
            )
        return self
