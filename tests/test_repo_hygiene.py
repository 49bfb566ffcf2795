"""What the commands write by default is ignored by git, and the package installs quietly."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from nasblocks.search.run import default_out
from nasblocks.space import load_space

ROOT = Path(__file__).resolve().parents[1]


def _ignored(path: Path) -> bool:
    proc = subprocess.run(
        ["git", "check-ignore", "-q", str(path)], cwd=ROOT, capture_output=True, timeout=30
    )
    return proc.returncode == 0


@pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout"
)
def test_default_outputs_are_ignored():
    space = load_space(ROOT / "search_spaces" / "resnet_like.yaml")
    search_out = ROOT / default_out(space) / "study.db"
    train_out = ROOT / "experiments" / "train" / "resnet18" / "model.pt"  # cli/train's default
    assert _ignored(search_out) and _ignored(train_out)
    assert not _ignored(ROOT / "experiments" / "permutation_ablation.py")


def test_license_is_an_spdx_expression():
    """setuptools >= 77 warns about the table form ``license = {text = ...}`` at every
    install (PEP 639); the SPDX string form is silent."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    assert requires == ["setuptools>=77"]


def test_ray_and_postgres_are_extras_named_in_their_messages(monkeypatch):
    import sys

    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("ray") for d in project["dependencies"])
    extras = project["optional-dependencies"]
    assert extras["ray"] == ["ray[tune]>=2.40"] and extras["postgres"] == ["psycopg2-binary>=2.9"]
    assert "nasblocks[ray,postgres,onnx]" in extras["dev"]  # make install: all the README uses
    assert extras["onnx"] == ["onnx>=1.17", "onnxscript>=0.5", "onnxruntime>=1.20"]

    from nasblocks.errors import SearchError
    from nasblocks.search.backends import ray_backend, storage

    monkeypatch.setitem(sys.modules, "ray.tune", None)  # as if Ray Tune were not installed
    with pytest.raises(SearchError, match=r"pip install 'nasblocks\[ray\]'"):
        ray_backend._require_tune()
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name.startswith("psycopg") else real(name, *a),
    )
    with pytest.raises(SearchError, match=r"pip install 'nasblocks\[postgres\]'"):
        storage.with_driver("postgresql://u@h/db")
    assert storage.with_driver("sqlite:///x.db") == "sqlite:///x.db"
