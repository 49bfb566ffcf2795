"""ONNX export: a dynamic batch axis, checked by ONNX Runtime against PyTorch; one line for
what cannot be exported or is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
pytest.importorskip("onnxscript", reason="the onnx extra is not installed")

import onnxruntime  # noqa: E402

import nasblocks  # noqa: E402
from nasblocks.cli.main import main  # noqa: E402
from nasblocks.export import ExportError, check_onnx, export_onnx  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "experiments" / "examples").glob("*.yaml"))


def run_onnx(path: Path, x: torch.Tensor):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"input": x.numpy()})[0])


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_exports_with_a_dynamic_batch(example, tmp_path):
    model = nasblocks.build(example).eval()
    shape = nasblocks.load_spec(example).input_shape
    done = export_onnx(model, tmp_path / "net.onnx", input_shape=shape)
    assert done.max_abs_error <= 1e-4 and done.opset >= 18
    for batch in (1, 5):  # neither is the batch traced (2) nor the one checked (3)
        x = torch.randn(batch, *done.input_shape)
        with torch.no_grad():
            torch.testing.assert_close(run_onnx(done.path, x), model(x), rtol=1e-4, atol=1e-4)


TINY = {
    "input": [3, 16, 16],
    "layers": [
        {"conv_bn_act": 8},
        {"global_avgpool": {"flatten": True}},
        {"linear": 10},
    ],
}


def test_a_spec_exports_and_the_check_catches_a_different_network(tmp_path):
    done = export_onnx(TINY, tmp_path / "tiny.onnx")
    assert done.input_shape == (3, 16, 16) and done.max_abs_error <= 1e-4
    model = nasblocks.build(TINY).eval()  # other random weights than the exported ones
    with pytest.raises(ExportError, match="ONNX Runtime differs from PyTorch by"):
        check_onnx(done.path, model, (3, 16, 16))


def test_a_deformable_conv_is_one_line_naming_the_layer(tmp_path):
    spec = {
        "input": [3, 16, 16],
        "layers": [
            {"name": "offsets", "deform_conv": 8},
            {"global_avgpool": {"flatten": True}},
            {"linear": 10},
        ],
    }
    with pytest.raises(ExportError, match="layer 'offsets': deformable convolution"):
        export_onnx(spec, tmp_path / "d.onnx")
    assert not (tmp_path / "d.onnx").exists()


def test_missing_dependencies_are_named(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name)
    )
    with pytest.raises(ExportError, match=r"needs onnxscript: pip install 'nasblocks\[onnx\]'"):
        export_onnx("resnet18", tmp_path / "x.onnx")


def test_the_cli_exports_a_searchs_best_with_its_weights(tmp_path, capsys, tiny_space_text):
    space = tmp_path / "space.yaml"
    space.write_text(tiny_space_text(trials=2, epochs=1))
    out = tmp_path / "run"
    assert main(["search", str(space), "--out", str(out), "-q"]) == 0
    capsys.readouterr()
    assert main(["export", str(out), "--onnx", str(tmp_path / "best.onnx")]) == 0
    line = capsys.readouterr().out
    assert line.startswith(f"wrote {tmp_path / 'best.onnx'} (ONNX opset")
    assert "input batch x 1x8x8, dynamic batch, with best.pt's weights" in line
    model = nasblocks.build(out / "best.yaml").eval()
    model.load_state_dict(torch.load(out / "best.pt", weights_only=True))
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(run_onnx(tmp_path / "best.onnx", x), model(x))
    bad = subprocess.run(  # a folder that is no search: one line, exit 2
        [sys.executable, "-m", "nasblocks.cli.main", "export", str(tmp_path), "--onnx", "x"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
