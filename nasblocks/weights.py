"""Load weights into a built network: a local state-dict file, or torchvision's pretrained.

``build(name, weights=PATH)`` and ``build(name, weights="torchvision")`` end here. Loading is
strict: a key or shape that does not match is a :class:`SpecError` naming it, never a
silently half-loaded model. torchvision's weights come through torchvision's own cache and
download (``torch.hub``), so a file fetched once is reused offline.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasblocks.errors import SpecError
from nasblocks.spec import Spec

TORCHVISION = "torchvision"
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")  # common checkpoint layouts


def load_weights(model: nn.Module, spec: Spec, weights: str | Path) -> None:
    """Load ``weights`` (a file, or ``"torchvision"``) into ``model`` built from ``spec``."""
    if str(weights) == TORCHVISION:
        state, source = torchvision_state_dict(spec), f"torchvision's {spec.name} weights"
    else:
        state, source = read_state_dict(weights), str(weights)
    load_strict(model, state, source)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from ``torch.save`` output: a bare one or a checkpoint wrapping one."""
    p = Path(path)
    if not p.is_file():
        raise SpecError("no such weights file", ("weights",), file=str(path))
    try:
        obj: Any = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors have no common base class
        raise SpecError(
            f"not a state-dict file torch.load can read safely: {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}",
            ("weights",),
            file=str(path),
        ) from None
    for key in _WRAPPER_KEYS:
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise SpecError(
            "expected a state dict (parameter names -> tensors), e.g. from "
            "torch.save(model.state_dict(), path)",
            ("weights",),
            file=str(path),
        )
    state = dict(obj)
    # nn.DataParallel / DistributedDataParallel checkpoints prefix every key with "module.".
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def load_strict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """``model.load_state_dict(state, strict=True)``, with the mismatch explained first."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    for what, items in (
        ("missing keys", missing),
        ("unexpected keys", unexpected),
        ("shape mismatches (file vs model)", shapes),
    ):
        if items:
            shown = ", ".join(items[:3]) + (
                f" and {len(items) - 3} more" if len(items) > 3 else ""
            )
            problems.append(f"{len(items)} {what}: {shown}")
    if problems:
        raise SpecError(f"{source} do not fit this network: " + "; ".join(problems), ("weights",))
    model.load_state_dict(state, strict=True)


def torchvision_state_dict(spec: Spec) -> dict[str, torch.Tensor]:
    """torchvision's default pretrained weights for the model named like ``spec``."""
    from torchvision import models

    name = spec.name
    try:
        enum = models.get_model_weights(name)
    except (ValueError, KeyError):
        raise SpecError(
            f"torchvision has no pretrained weights named {name!r}: weights='torchvision' works "
            "for the presets torchvision also defines (resnet50, vgg16_bn, ...); give a "
            "state-dict file instead",
            ("weights",),
        ) from None
    chosen = enum.DEFAULT
    classes = len(chosen.meta.get("categories") or ()) or spec.num_classes
    if spec.num_classes != classes:
        raise SpecError(
            f"torchvision's {chosen} weights have {classes} classes, the network "
            f"{spec.num_classes}: build with num_classes={classes}, load, then replace the "
            "classifier",
            ("weights",),
        )
    if spec.doc.vars.get("transform_input") is False:
        warnings.warn(
            f"torchvision's pretrained {name} expects transform_input; build with "
            "vars.transform_input=true to compute what torchvision's pretrained model does",
            stacklevel=3,
        )
    try:
        return chosen.get_state_dict(progress=False, check_hash=True)
    except (OSError, RuntimeError) as e:  # URLError is an OSError; a bad hash a RuntimeError
        hub = Path(torch.hub.get_dir()) / "checkpoints"
        reason = getattr(e, "reason", None) or e
        raise SpecError(
            f"could not get torchvision's {chosen} weights ({reason}); they are downloaded "
            f"once into {hub} and read from there afterwards: connect once, copy the file "
            "there, or pass weights=PATH to a saved state dict",
            ("weights",),
        ) from None
