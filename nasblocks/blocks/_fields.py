"""Field types and descriptions shared by block declarations, so every block words them alike."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

Norm = Literal["batch", "group", "instance", "none"]
Activation = Literal[
    "relu",
    "relu6",
    "leaky_relu",
    "silu",
    "gelu",
    "hardswish",
    "hardsigmoid",
    "sigmoid",
    "tanh",
    "none",
]

Channels = Annotated[int, Field(ge=1, le=1 << 16)]
Kernel = (
    Annotated[int, Field(ge=1, le=64)]
    | Annotated[list[Annotated[int, Field(ge=1, le=64)]], Field(min_length=2, max_length=2)]
)
Stride = (
    Annotated[int, Field(ge=1, le=64)]
    | Annotated[list[Annotated[int, Field(ge=1, le=64)]], Field(min_length=2, max_length=2)]
)
Padding = (
    Annotated[int, Field(ge=0, le=64)]
    | Annotated[list[Annotated[int, Field(ge=0, le=64)]], Field(min_length=2, max_length=2)]
)

NORM_DOC = "Normalization after the convolution: batch, group, instance or none."
ACT_DOC = (
    "Activation after the normalization: relu, relu6, leaky_relu (slope 0.1), silu, gelu, "
    "hardswish, hardsigmoid, sigmoid, tanh or none."
)
EPS_DOC = (
    "Epsilon of the normalization layers (torchvision uses 1e-5; GoogLeNet and Inception 1e-3)."
)
MOMENTUM_DOC = "Momentum of the batch-norm running statistics."


# The norm / activation fields every conv block declares, with one set of bounds. Fields named
# ``norm``, ``norm_eps``, ``norm_momentum`` and ``activation`` receive the model-level defaults.


def norm_field(default: str = "batch", description: str = NORM_DOC) -> Any:
    """A ``norm: Norm`` field."""
    return Field(default, description=description)


def eps_field(default: float = 1e-5) -> Any:
    """A ``norm_eps: float`` field, in (0, 1)."""
    return Field(default, gt=0, lt=1, description=EPS_DOC)


def momentum_field(default: float = 0.1) -> Any:
    """A ``norm_momentum: float`` field, in [0, 1]."""
    return Field(default, ge=0, le=1, description=MOMENTUM_DOC)


def activation_field(default: str = "relu") -> Any:
    """An ``activation: Activation`` field."""
    return Field(default, description=ACT_DOC)
