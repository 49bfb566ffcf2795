"""The frozen result of loading a spec: :class:`Spec` and its normalized :class:`Layer` tree."""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from nasblocks.errors import YamlPath
from nasblocks.registry import BlockSpec
from nasblocks.spec.models import SpecDocument

if TYPE_CHECKING:
    from nasblocks.spec.plan import Plan


@dataclass(frozen=True)
class Layer:
    """One normalized layer: a block (possibly repeated) or a group of layers."""

    name: str
    block: BlockSpec | None
    children: tuple[Layer, ...] | None
    inputs: tuple[int | str, ...]
    repeat: int = 1
    aux: bool = False
    path: YamlPath = ()
    field_paths: dict[str, YamlPath] = field(default_factory=dict, compare=False, repr=False)
    template: str | None = field(default=None, compare=False)  # the template it is a use of

    @property
    def kind(self) -> str:
        if self.block is not None:
            return self.block.kind
        return self.template or "group"

    def canonical(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "from": list(self.inputs)}
        if self.block is not None:
            out[self.block.kind] = self.block.model_dump(mode="json")
        else:
            out["layers"] = [c.canonical() for c in self.children or ()]
        if self.repeat != 1:
            out["repeat"] = self.repeat
        if self.aux:
            out["aux"] = True
        return out


@dataclass(frozen=True)
class Spec:
    """A validated network: the document as written and its normalized layers.

    Frozen all the way: ``raw`` (the document as loaded) is handed out as a copy, ``positions``
    (where each YAML path is in the file) is read-only, and the shape plan is computed once
    (:attr:`plan`) and shared by ``load_spec``'s check, ``build`` and ``summary``.
    """

    doc: SpecDocument
    layers: tuple[Layer, ...]
    _raw: dict[str, Any] = field(compare=False, repr=False)  # only handed out as copies
    file: str | None = field(default=None, compare=False)
    _positions: tuple[tuple[YamlPath, Any], ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def of(
        cls,
        doc: SpecDocument,
        layers: tuple[Layer, ...],
        raw: dict[str, Any],
        file: str | None = None,
        positions: Mapping[YamlPath, Any] | None = None,
    ) -> Spec:
        frozen = tuple((positions or {}).items())  # (a tuple pickles; a mappingproxy does not)
        return cls(doc, layers, copy.deepcopy(raw), file, frozen)

    @property
    def positions(self) -> Mapping[YamlPath, Any]:
        """Where each YAML path of the document is in its file (read-only)."""
        return MappingProxyType(dict(self._positions))

    @property
    def raw(self) -> dict[str, Any]:
        """The document as loaded (a fresh copy: editing it changes nothing here)."""
        return copy.deepcopy(self._raw)

    @functools.cached_property
    def plan(self) -> Plan:
        """Every layer's shapes for the spec's own input, planned once (see :mod:`.plan`)."""
        from nasblocks.spec.plan import plan_for

        return plan_for(self, self.input_shape)

    @property
    def name(self) -> str:
        return self.doc.name

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.doc.input
        return (c, h, w)

    @property
    def num_classes(self) -> int:
        return self.doc.num_classes

    @property
    def outputs(self) -> list[tuple[str, str]] | None:
        """``(field name, layer name)`` pairs of an explicit ``outputs``, else None; a listed
        layer's field is its name with ``_`` for the dots of a dotted name."""
        out = self.doc.outputs
        if out is None:
            return None
        if isinstance(out, dict):
            return list(out.items())
        return [(n.replace(".", "_") if isinstance(n, str) else n, n) for n in out]

    def canonical(self) -> dict[str, Any]:
        """Everything that determines the built module, in a stable JSON-able form."""
        return {
            "input": list(self.doc.input),
            "init": self.doc.init,
            "outputs": self.doc.outputs,
            "layers": [layer.canonical() for layer in self.layers],
        }

    def hash(self) -> str:
        """Identity of the architecture (same hash, same module), for search dedup."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]
