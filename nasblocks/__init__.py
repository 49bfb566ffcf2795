"""nasblocks: compose CNNs from well-known blocks in YAML, reproduce classic nets, search.

>>> import nasblocks
>>> model = nasblocks.build("resnet50", num_classes=10)
>>> spec = nasblocks.load_spec("my_net.yaml")
>>> print(nasblocks.summary(spec))

Importing the package does not import torch; ``build``, ``summary`` and ``create_block`` do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nasblocks.errors import (
    BuildError,
    NasBlocksError,
    RegistryError,
    SearchError,
    ShapeError,
    SpecError,
)
from nasblocks.registry import BlockSpec, block_names, create_block, register_block
from nasblocks.spec import Spec, load_spec

__version__ = "0.1.0"

__all__ = [
    "BlockSpec",
    "BuildError",
    "NasBlocksError",
    "RegistryError",
    "SearchError",
    "ShapeError",
    "Spec",
    "SpecError",
    "block_names",
    "build",
    "create_block",
    "export_onnx",
    "list_presets",
    "load_spec",
    "preset_names",
    "register_block",
    "reparameterize",
    "search",
    "summary",
]

_LAZY = {
    "build": "nasblocks.builder",
    "export_onnx": "nasblocks.export",
    "summary": "nasblocks.analysis",
    "preset_names": "nasblocks.presets",
    "list_presets": "nasblocks.presets",
    "search": "nasblocks.search.engine",
    "reparameterize": "nasblocks.modules.repvgg",
}

if TYPE_CHECKING:
    from nasblocks.analysis import summary
    from nasblocks.builder import build
    from nasblocks.export import export_onnx
    from nasblocks.modules.repvgg import reparameterize
    from nasblocks.presets import list_presets, preset_names
    from nasblocks.search.engine import search


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nasblocks' has no attribute {name!r}")
