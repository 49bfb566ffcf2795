"""ONNX export of every preset under 100 M parameters, checked by ONNX Runtime.

For each preset: ``nasblocks.export_onnx`` (PyTorch's dynamo exporter, a dynamic batch axis)
and ONNX Runtime's outputs against PyTorch's on a batch of 3 (the traced batch is 2); the
largest absolute difference must be at most 1e-4. Presets with a deformable convolution are
expected to be refused with one line naming the layer. Prints a table (markdown) and a
summary; the suite checks the examples and a search's best, this checks the zoo.

    python benchmarks/onnx_presets.py [--max-params 100e6] [--pattern 'resnet*']
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch

import nasblocks
from nasblocks.analysis import count, human
from nasblocks.export import ExportError, export_onnx


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max-params", type=float, default=100e6)
    p.add_argument("--pattern", default=None)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    names = nasblocks.preset_names(args.pattern)
    print(f"# torch {torch.__version__}, {platform.machine()}, {args.threads} threads")
    print("| preset | params | opset | max abs error | export s | result |")
    print("|---|---:|---:|---:|---:|---|")
    ok = refused = failed = 0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            spec = nasblocks.load_spec(name)
            params, _ = count(spec)
            if params > args.max_params:
                continue
            try:
                done = export_onnx(name, Path(tmp) / f"{name}.onnx")
            except ExportError as e:
                text = str(e)
                refused += "deformable" in text
                failed += "deformable" not in text
                print(f"| {name} | {human(params)} | | | | {text[:120]} |", flush=True)
                continue
            ok += 1
            print(
                f"| {name} | {human(params)} | {done.opset} | {done.max_abs_error:.1e} | "
                f"{done.seconds:.1f} | ok |",
                flush=True,
            )
            (Path(tmp) / f"{name}.onnx").unlink()
    print(
        f"\n{ok} exported and matched, {refused} refused (deformable conv), {failed} failed, "
        f"in {time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
