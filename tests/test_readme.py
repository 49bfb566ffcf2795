"""The README's code blocks run as written.

Every ```bash and ```python block is either run here (from a scratch folder that sees the
repository's ``experiments/`` and ``search_spaces/``, with ``/tmp/`` in paths moved into it),
run by another test (named in ELSEWHERE), or skipped with the reason in SKIPPED: it needs a
GPU, a cluster or a database server, or it is a trained search that ``make search`` and the
search tests already run. A new block must be put in one of the three places.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent

# A block is known by its first line.
ELSEWHERE = {
    "# myblocks.py": "tests/test_plugins.py::test_the_readme_plugin_example_runs_as_written",
    "import myblocks  # registers dense_layer": "tests/test_plugins.py (same example)",
    "import torch\nimport nasblocks\n\nbackbone": "tests/test_timm_api.py (Coming from timm)",
}
SKIPPED = {
    "make search": "the Quick start itself: run on a fresh clone by CI's checklist",
    "ls experiments/runs/resnet_like/": "reads the outputs of `make search` (a trained run)",
    ".venv/bin/nasblocks search search_spaces/nas_bench_201.yaml --out /tmp/nb201_warm": (
        "scores 50 candidates with a proxy on CIFAR-shaped networks: minutes on CPU"
    ),
    ".venv/bin/nasblocks search search_spaces/vgg_like.yaml": "trained searches (minutes)",
    ".venv/bin/nasblocks search search_spaces/resnet_like.yaml --workers 2": (
        "a trained search; tests/search/test_workers.py runs --workers"
    ),
    "# on each machine": "needs a PostgreSQL server on several machines",
    "# local Ray": "a Ray cluster; tests/search/test_ray.py runs the Ray backend",
}


def blocks(language: str) -> list[tuple[int, str]]:
    text = README.read_text(encoding="utf-8")
    return [
        (text[: m.start()].count("\n") + 1, m.group(1))
        for m in re.finditer(rf"```{language}\n(.*?)```", text, re.S)
    ]


def _known(body: str) -> bool:
    return any(body.startswith(k) for k in (*ELSEWHERE, *SKIPPED))


def _scratch(tmp_path: Path) -> Path:
    for name in ("experiments", "search_spaces"):
        (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path


BASH = [(line, body) for line, body in blocks("bash") if not _known(body)]
PYTHON = [(line, body) for line, body in blocks("python") if not _known(body)]


def test_every_block_is_run_or_accounted_for():
    everything = blocks("bash") + blocks("python")
    assert len(BASH) + len(PYTHON) + sum(_known(b) for _, b in everything) == len(everything)
    assert len(BASH) >= 5 and len(PYTHON) >= 3
    for key in (*ELSEWHERE, *SKIPPED):  # no stale entries
        assert any(b.startswith(key) for _, b in everything), key


@pytest.mark.parametrize(("line", "body"), BASH, ids=[f"README.md:{n}" for n, _ in BASH])
def test_bash_block_runs(line, body, tmp_path):
    cwd = _scratch(tmp_path)
    # /tmp/ first: the venv itself may live under /tmp (a fresh clone there)
    script = body.replace("/tmp/", f"{tmp_path}/").replace(".venv/bin/", f"{BIN}/")
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert proc.returncode == 0, f"README.md:{line}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("line", "body"), PYTHON, ids=[f"README.md:{n}" for n, _ in PYTHON])
def test_python_block_runs(line, body, tmp_path, monkeypatch):
    monkeypatch.chdir(_scratch(tmp_path))
    if "se_resnext_tiny.yaml" in body and "experiments/examples/" not in body:
        # the opening example names a file of one's own: the one in experiments/examples
        (tmp_path / "se_resnext_tiny.yaml").symlink_to(
            ROOT / "experiments" / "examples" / "se_resnext_tiny.yaml"
        )
    code = body.replace("/tmp/", f"{tmp_path}/")
    exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "readme"})
