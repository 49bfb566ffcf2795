"""Field types and descriptions shared by block declarations, so every block words them alike."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

Norm = Literal["batch", "group", "instance", "none"]
Activation = Literal[
    "relu", "relu6", "leaky_relu", "silu", "gelu", "hardswish", "sigmoid", "tanh", "none"
]
Attention = Literal["none", "se", "sk", "cbam"]

Channels = Annotated[int, Field(ge=1, le=1 << 16)]
Kernel = Annotated[int, Field(ge=1, le=64)] | Annotated[list[Annotated[int, Field(ge=1, le=64)]], Field(min_length=2, max_length=2)]
Stride = Annotated[int, Field(ge=1, le=64)] | Annotated[list[Annotated[int, Field(ge=1, le=64)]], Field(min_length=2, max_length=2)]
Padding = Annotated[int, Field(ge=0, le=64)] | Annotated[list[Annotated[int, Field(ge=0, le=64)]], Field(min_length=2, max_length=2)]

NORM_DOC = "Normalization after the convolution: batch, group, instance or none."
ACT_DOC = "Activation after the normalization: relu, relu6, leaky_relu, silu, gelu, hardswish, sigmoid, tanh or none."
EPS_DOC = "Epsilon of the normalization layers (torchvision uses 1e-5; GoogLeNet and Inception 1e-3)."
MOMENTUM_DOC = "Momentum of the batch-norm running statistics."
