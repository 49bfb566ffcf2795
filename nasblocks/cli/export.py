"""``nasblocks export NAME``: write a preset (with overrides) as a standalone spec file."""

from __future__ import annotations

import sys
from pathlib import Path

from nasblocks.cli.main import add_command
from nasblocks.cli.summary import add_set_option, overrides_from


def run(args) -> int:
    from nasblocks.spec import load_spec
    from nasblocks.spec.yamlio import dump_spec

    if args.onnx:
        return _onnx(args)
    spec = load_spec(args.spec, overrides_from(args))
    text = dump_spec(spec.raw)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0


def _onnx(args) -> int:
    """``--onnx FILE``: a spec, a preset or a search's best (with its weights) as ONNX."""
    import torch

    from nasblocks.errors import NasBlocksError
    from nasblocks.export import export_onnx
    from nasblocks.search.outputs.folder import RUN_FILE
    from nasblocks.spec import load_spec

    source, weights, note = Path(args.spec), None, ""
    if source.is_dir() and (source / RUN_FILE).is_file():  # a search's output folder
        best = source / "best.yaml"
        if not best.is_file():
            raise NasBlocksError(f"{args.spec}: no trial has completed yet (no best.yaml)")
        if (source / "best.pt").is_file():
            weights = torch.load(source / "best.pt", map_location="cpu", weights_only=True)
            note = ", with best.pt's weights"
        else:
            note = ", random weights (the search kept none)"
        source = best
    spec = load_spec(str(source), overrides_from(args))
    done = export_onnx(spec, args.onnx, weights=weights)
    shape = "x".join(map(str, done.input_shape))
    print(
        f"wrote {done.path} (ONNX opset {done.opset}, input batch x {shape}, dynamic batch"
        f"{note}); ONNX Runtime matches PyTorch on a batch of {done.checked_batch}: max abs "
        f"error {done.max_abs_error:.2g}"
    )
    return 0


def register(sub) -> None:
    p = add_command(
        sub,
        "export",
        "write a preset or spec as a standalone YAML spec, or as ONNX (--onnx)",
        "nasblocks export resnet50 --set num_classes=10 > my_resnet.yaml\n"
        "  nasblocks export experiments/runs/resnet_like --onnx best.onnx",
        run,
    )
    p.add_argument(
        "spec",
        metavar="PRESET|FILE|OUT",
        help="a preset, a spec file, or (with --onnx) a search's output folder: its best",
    )
    p.add_argument(
        "--onnx",
        metavar="FILE",
        help="write ONNX here instead (dynamic batch), checked by ONNX Runtime against "
        "PyTorch; needs the onnx extra",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    add_set_option(p)
