"""Field types and descriptions shared by block declarations, so every block words them alike."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema

from nasblocks.registry import suggest

Norm = Literal["batch", "group", "instance", "none"]
ActivationName = Literal[
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
ACTIVATION_NAMES: tuple[str, ...] = get_args(ActivationName)
LEAKY_SLOPE = 0.1
"""The slope of a bare ``leaky_relu`` activation field (YOLO's and Darknet's)."""


class LeakyReLUArgs(BaseModel):
    """The arguments of ``activation: {leaky_relu: ...}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    negative_slope: float = Field(
        LEAKY_SLOPE, ge=0, le=1, strict=True, allow_inf_nan=False, description="Slope for x < 0."
    )


class ActivationArgs(BaseModel):
    """An activation with its arguments, as validated from ``{leaky_relu: 0.01}``: frozen like
    the rest of a spec; ``model_dump()`` is the mapping written out."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    leaky_relu: LeakyReLUArgs


ACTIVATION_ARGS: dict[str, tuple[type[BaseModel], str]] = {
    "leaky_relu": (LeakyReLUArgs, "negative_slope"),
}
"""Activations that take arguments: their model and the field a scalar stands for."""


def _check_activation(value: Any, allowed: tuple[str, ...]) -> Any:
    """A name of ``allowed`` (``relu``) or a one-key mapping with arguments
    (``{leaky_relu: 0.01}``, ``{leaky_relu: {negative_slope: 0.01}}``): an ActivationArgs."""
    if isinstance(value, ActivationArgs):
        return value
    names = ", ".join(repr(n) for n in allowed[:-1]) + f" or {allowed[-1]!r}"
    takes = " or ".join(f"{{{k}: {v[1]}}}" for k, v in ACTIVATION_ARGS.items())
    if isinstance(value, str):
        if value not in allowed:
            hint = suggest(value, allowed)
            raise ValueError(f"Input should be {names}, or a mapping like {takes}{hint}")
        return value
    if not isinstance(value, dict) or len(value) != 1:
        raise ValueError(f"an activation is a name ({names}) or a one-key mapping like {takes}")
    ((name, args),) = value.items()
    if name not in ACTIVATION_ARGS:
        hint = suggest(str(name), ACTIVATION_ARGS)
        raise ValueError(f"{name!r} takes no arguments here; those that do: {takes}{hint}")
    scalar = ACTIVATION_ARGS[name][1]
    if not isinstance(args, dict):
        args = {} if args is None else {scalar: args}
    try:
        return ActivationArgs.model_validate({name: args})
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise ValueError(f"{where}: {first['msg']}") from None


def activation_checks(allowed: tuple[str, ...]) -> tuple[BeforeValidator, WithJsonSchema]:
    """The validator and JSON schema of an activation field taking the names ``allowed`` or,
    with arguments, a mapping like ``{leaky_relu: 0.01}`` (then an :class:`ActivationArgs`):
    ``check, schema = activation_checks(names)``, then
    ``Annotated[str | ActivationArgs, check, schema]``."""
    mapping = {
        "type": "object",
        "properties": {k: {"type": ["number", "object", "null"]} for k in ACTIVATION_ARGS},
        "additionalProperties": False,
        "minProperties": 1,
        "maxProperties": 1,
    }
    return (
        BeforeValidator(lambda v: _check_activation(v, allowed)),
        WithJsonSchema({"anyOf": [{"enum": list(allowed)}, mapping]}),
    )


_CHECK, _SCHEMA = activation_checks(ACTIVATION_NAMES)
Activation = Annotated[str | ActivationArgs, _CHECK, _SCHEMA]
"""An activation field: a name, or a one-key mapping with its arguments
(``{leaky_relu: 0.01}``)."""


def activation_layer(activation: str | ActivationArgs) -> dict[str, Any]:
    """The layer item an activation field stands for (a bare ``leaky_relu``: slope 0.1)."""
    if isinstance(activation, ActivationArgs):
        return activation.model_dump()
    if activation == "leaky_relu":
        return {"leaky_relu": {"negative_slope": LEAKY_SLOPE}}
    return {activation: None}


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
    "hardswish, hardsigmoid, sigmoid, tanh or none; {leaky_relu: SLOPE} for another slope."
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
