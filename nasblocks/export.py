"""ONNX export of any network, checked by ONNX Runtime against PyTorch.

    nasblocks.export_onnx("resnet18", "resnet18.onnx")          # a preset, a spec, a module
    nasblocks export experiments/runs/resnet_like --onnx best.onnx   # a search's best

The graph comes from PyTorch's own exporter (``torch.onnx.export(..., dynamo=True)``, the
``torch.export``-based one PyTorch recommends since 2.9) with a dynamic batch axis, so the
file serves any batch size in ONNX Runtime, TensorRT or a phone runtime. Every export is
then run by ONNX Runtime on a batch of another size than the one traced and compared with
the PyTorch module: an export whose largest absolute difference exceeds ``atol`` (1e-4) plus
1e-5 of the largest output is an error, never a silent wrong file (randomly initialised deep
networks output up to 1e12, where float32 round-off alone exceeds any absolute bound). A
layer ONNX has no operator for (deformable convolution, ``torchvision.ops.deform_conv2d``) is
one line naming the layer.

``onnx``, ``onnxscript`` and ``onnxruntime`` are the optional extra ``nasblocks[onnx]``; the
error names what is missing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasblocks.errors import NasBlocksError

ATOL = 1e-4
RTOL = 1e-5  # of the largest output: a randomly initialised ResNet-152 outputs 4e8, Inception
# v3 2.5e12, where float32 round-off alone exceeds any absolute bound
INPUT, OUTPUT = "input", "output"
NEEDED = ("onnx", "onnxscript", "onnxruntime")


class ExportError(NasBlocksError):
    """The network cannot be exported, or the exported graph does not compute the same."""


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote and what the check found."""

    path: Path
    input_shape: tuple[int, ...]
    opset: int
    max_abs_error: float
    checked_batch: int
    seconds: float


def _require() -> None:
    missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportError(f"ONNX export needs {', '.join(missing)}: pip install 'nasblocks[onnx]'")


def _unsupported(model: nn.Module) -> None:
    """One line for the first layer ONNX has no operator for."""
    from torchvision.ops import DeformConv2d

    for name, module in model.named_modules():
        if isinstance(module, DeformConv2d):
            layer = name.rsplit(".", 1)[0] if "." in name else name
            raise ExportError(
                f"layer {layer!r}: deformable convolution (torchvision.ops.deform_conv2d) has "
                "no ONNX operator; export a network without deform_conv"
            )


def _model_and_shape(
    source: Any, input_shape: tuple[int, ...] | None, weights: dict[str, Any] | None
) -> tuple[nn.Module, tuple[int, ...]]:
    if isinstance(source, nn.Module):
        shape = input_shape or getattr(getattr(source, "spec", None), "input_shape", None)
        if shape is None:
            raise ExportError("export_onnx(module, ...): give input_shape=(C, H, W)")
        return source, tuple(shape)
    import nasblocks

    spec = nasblocks.load_spec(source)
    model = nasblocks.build(spec)
    if weights is not None:
        model.load_state_dict(weights)
    return model, tuple(input_shape or spec.input_shape)


def export_onnx(
    model: Any,
    path: str | Path,
    *,
    input_shape: tuple[int, ...] | None = None,
    weights: dict[str, Any] | None = None,
    atol: float = ATOL,
    seed: int = 0,
) -> OnnxExport:
    """Write ``model`` (a module, a spec, a preset name or a spec file) to ``path`` as ONNX
    with a dynamic batch axis, and check it with ONNX Runtime (see the module docstring).

    ``input_shape``: (C, H, W), default the spec's input. ``weights``: a ``state_dict`` for a
    model built from a spec. Raises :class:`ExportError` (one line) when the network cannot be
    exported or ONNX Runtime disagrees with PyTorch by more than ``atol``.
    """
    _require()
    module, shape = _model_and_shape(model, input_shape, weights)
    module = module.eval()
    _unsupported(module)
    path = Path(path)
    generator = torch.Generator().manual_seed(seed)
    traced = torch.randn(2, *shape, generator=generator)
    batch = torch.export.Dim("batch", min=1, max=4096)
    start = time.perf_counter()
    log = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(log):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                (traced,),
                input_names=[INPUT],
                output_names=[OUTPUT],
                dynamic_shapes=({0: batch},),
                dynamo=True,
                verbose=False,
            )
    except Exception as e:
        first = " ".join(str(e).split())[:300]
        raise ExportError(f"cannot export to ONNX: {type(e).__name__}: {first}") from None
    if program is None:
        raise ExportError("cannot export to ONNX: the exporter returned nothing")
    path.parent.mkdir(parents=True, exist_ok=True)
    from nasblocks.files import write_atomic

    write_atomic(path, lambda tmp: program.save(str(tmp)))
    seconds = time.perf_counter() - start
    error = check_onnx(path, module, shape, atol=atol, seed=seed + 1)
    opset = next(
        (o.version for o in program.model_proto.opset_import if o.domain in ("", "ai.onnx")), 0
    )
    return OnnxExport(path, shape, opset, error, CHECK_BATCH, seconds)


CHECK_BATCH = 3  # not the traced batch of 2: the batch axis is checked to be dynamic


def check_onnx(
    path: str | Path,
    module: nn.Module,
    input_shape: tuple[int, ...],
    *,
    atol: float = ATOL,
    seed: int = 1,
) -> float:
    """The largest absolute difference between ONNX Runtime's outputs for ``path`` and
    ``module``'s on one random batch of :data:`CHECK_BATCH`; :class:`ExportError` over
    ``atol`` + :data:`RTOL` x the largest output."""
    import onnxruntime

    x = torch.randn(CHECK_BATCH, *input_shape, generator=torch.Generator().manual_seed(seed))
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        want = module.eval()(x)
    error = float((torch.from_numpy(got) - want).abs().max())
    scale = float(want.abs().max())
    allowed = atol + RTOL * scale
    if not error <= allowed:
        raise ExportError(
            f"{path}: ONNX Runtime differs from PyTorch by {error:.3g} (more than {atol:g} + "
            f"{RTOL:g} x the largest output, {scale:.3g})"
        )
    return error
