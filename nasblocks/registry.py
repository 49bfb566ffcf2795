"""The block registry.

A block is declared by a torch-free :class:`BlockSpec` (its parameters as a pydantic model and
its shape contract) and implemented by an ``nn.Module`` whose constructor takes
``in_channels`` followed by exactly the spec's fields. Declarations register themselves with
``@register_block("name")``; duplicates and unknown names raise.

Keeping the declaration free of torch lets ``nasblocks validate`` check a whole network's
shapes without importing torch; the module is imported only when something is built.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

from nasblocks.errors import RegistryError

if TYPE_CHECKING:
    from torch import nn

Shape = tuple[int, ...]
"""``(C, H, W)`` for a feature map, ``(F,)`` for a flat feature vector (batch excluded)."""

Examples = tuple[tuple[dict[str, Any], Any], ...]
"""``(params, input_shape)`` pairs: the type of :attr:`BlockSpec.examples`."""

DEFAULTABLE = ("norm", "norm_eps", "norm_momentum", "activation")
"""Block fields that take the model-level default unless a layer sets them."""


class BlockSpec(BaseModel):
    """Parameters and shape contract of one block kind.

    Subclasses declare fields with ``Field(default, description=...)`` and override
    :meth:`output_shape`. The implementation is ``module``: a class, or a
    ``"package.module:ClassName"`` string imported on first build.
    """

    # strict: `true` is not the number 1, "3" is not 3; NaN and inf are no sizes or rates
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        allow_inf_nan=False,
        defer_build=True,  # a block's validator is built when the kind is first used
    )

    kind: ClassVar[str] = ""
    module: ClassVar[str | type | None] = None
    arity: ClassVar[int | None] = 1
    """Number of inputs; ``None`` means two or more (concat, add)."""
    shorthand: ClassVar[str | None] = None
    """Field set by the short form ``{conv: 64}`` (multi-input blocks: their inputs)."""
    width_fields: ClassVar[tuple[str, ...]] = ()
    """Channel-count fields scaled by the model's ``width_multiple``."""
    source: ClassVar[str] = ""
    """Paper or code the block follows, shown in ``nasblocks blocks``."""
    examples: ClassVar[Examples] = ()
    """``(params, input_shape)`` pairs the conformance suite builds and runs (at least one)."""
    role: ClassVar[str | None] = None
    """``"attention"``: the block keeps its input's shape, its module depends on the channel
    count alone and a ``reduction`` field (if it has one) sets its bottleneck; every block
    with an ``attention`` field (``basic``, ``bottleneck``) can then use it by name, as
    timm's ``create_attn(name, channels)`` does (:func:`attention_block`)."""

    # -- shape contract -------------------------------------------------------------------
    def output_shape(self, in_shape: Any) -> Shape:
        """Output shape from the input shape (a list of shapes when ``arity != 1``).

        Must not run anything; raises :class:`nasblocks.errors.ShapeError` for inputs the
        block cannot take (naming the field at fault).
        """
        raise NotImplementedError(f"block {self.kind!r} declares no shape contract")

    def cost(self, in_shape: Any) -> tuple[int, int] | None:
        """``(parameters, multiply-accumulates)`` of one forward of one sample, from the input
        shape and the fields alone (:mod:`nasblocks.blocks._costs`' conventions).

        None (the default): not declared; :mod:`nasblocks.analysis` then counts the block
        built on the meta device. ``nasblocks.testing.check_block`` checks a declared cost
        against the built module.
        """
        return None

    # -- construction ---------------------------------------------------------------------
    def module_kwargs(self) -> dict[str, Any]:
        """Constructor arguments after ``in_channels``: by default every field."""
        return {name: getattr(self, name) for name in type(self).model_fields}

    def module_class(self) -> type[nn.Module]:
        target = type(self).module
        if target is None:
            raise RegistryError(f"block {self.kind!r} names no module")
        if isinstance(target, str):
            mod_name, _, attr = target.partition(":")
            target = getattr(importlib.import_module(mod_name), attr)
        return target

    def build(self, in_channels: int | list[int]) -> nn.Module:
        """Allocate the module. ``in_channels`` is a list for multi-input blocks."""
        return self.module_class()(in_channels, **self.module_kwargs())

    def build_for(self, in_shape: Any) -> nn.Module:
        """Allocate the module for a known input shape (what the builder calls).

        Override only when the module depends on more than the channel count.
        """
        if type(self).arity == 1:
            return self.build(in_shape[0])
        return self.build([s[0] for s in in_shape])


B = TypeVar("B", bound=type[BlockSpec])

_REGISTRY: dict[str, type[BlockSpec]] = {}
_builtins_loaded = False
_entry_points_loaded = False


def register_block(name: str, *, replace: bool = False) -> Callable[[B], B]:
    """Class decorator registering a :class:`BlockSpec` under ``name``.

    A second registration of the same name raises unless ``replace=True``.
    """

    def deco(cls: B) -> B:
        if not (isinstance(cls, type) and issubclass(cls, BlockSpec)):
            raise TypeError(f"@register_block({name!r}) expects a BlockSpec subclass, got {cls!r}")
        if not name.isidentifier():
            raise RegistryError(f"block name {name!r} is not a valid identifier")
        builtin = _builtin_family(name)
        if builtin is not None and not replace and cls.__module__ != builtin:
            raise RegistryError(f"block {name!r} is a built-in block ({builtin})")
        if name in _REGISTRY and not replace and _REGISTRY[name] is not cls:
            raise RegistryError(
                f"block {name!r} is already registered by {_REGISTRY[name].__module__}"
            )
        cls.kind = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _builtin_family(name: str) -> str | None:
    from nasblocks.blocks import BUILTIN

    family = BUILTIN.get(name)
    return None if family is None else f"nasblocks.blocks.{family}"


def _load_builtins(name: str | None = None) -> None:
    """The family declaring the built-in ``name`` (lazily: :mod:`nasblocks.blocks`), or every
    family when ``name`` is None or no built-in."""
    global _builtins_loaded
    if _builtins_loaded or (name is not None and name in _REGISTRY):
        return
    from nasblocks.blocks import load_all, load_family

    if name is not None and load_family(name):
        return
    _builtins_loaded = True
    load_all()


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group="nasblocks.blocks"):
        ep.load()


def suggest(name: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=3, cutoff=0.6)
    if close:
        return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
    return ""


def get_block(name: str) -> type[BlockSpec]:
    """The spec class registered as ``name``; unknown names raise with suggestions."""
    _load_builtins(name)
    if name not in _REGISTRY:
        _load_entry_points()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise RegistryError(f"unknown block {name!r}{suggest(name, _REGISTRY)}") from None


def is_block(name: str) -> bool:
    _load_builtins(name)
    if name not in _REGISTRY:
        _load_entry_points()
    return name in _REGISTRY


def block_names() -> list[str]:
    """Every registered block name, sorted."""
    _load_builtins()
    _load_entry_points()
    return sorted(_REGISTRY)


ATTENTION = "attention"


def attention_kinds() -> list[str]:
    """Every registered block with the attention role, sorted."""
    return [name for name in block_names() if _REGISTRY[name].role == ATTENTION]


def attention_block(name: str, reduction: int | None = None) -> BlockSpec:
    """The attention ``name`` as a block, its ``reduction`` set when it has one.

    Raises :class:`RegistryError` for an unknown name or a block without the role.
    """
    try:
        cls = get_block(name)
    except RegistryError:
        raise RegistryError(
            f"unknown attention {name!r}{suggest(name, attention_kinds())}; "
            f"kinds: {', '.join(attention_kinds())}"
        ) from None
    if cls.role != ATTENTION:
        raise RegistryError(
            f"block {name!r} is no attention kind (kinds: {', '.join(attention_kinds())})"
        )
    params = (
        {}
        if reduction is None or "reduction" not in cls.model_fields
        else {"reduction": reduction}
    )
    return cls(**params)


def block_spec(kind: str, **params: Any) -> BlockSpec:
    """Validate ``params`` for ``kind`` (pydantic errors propagate)."""
    return get_block(kind)(**params)


def create_block(kind: str, in_channels: int | list[int], **params: Any) -> nn.Module:
    """Build one block by name: ``create_block("se", in_channels=64, reduction=16)``."""
    return block_spec(kind, **params).build(in_channels)
