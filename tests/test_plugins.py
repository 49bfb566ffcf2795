"""User blocks without editing nasblocks: a file or module plugin, or an entry point."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PLUGIN = textwrap.dedent('''
    """A user's block: a conv whose output is concatenated with its input (DenseNet-style)."""
    import torch
    from pydantic import Field
    from torch import nn

    from nasblocks import BlockSpec, register_block


    class DenseLayer(nn.Module):
        def __init__(self, in_channels, growth=4):
            super().__init__()
            self.conv = nn.Conv2d(in_channels, growth, 3, padding=1)

        def forward(self, x):
            return torch.cat([x, self.conv(x)], 1)


    @register_block("{name}")
    class DenseLayerSpec(BlockSpec):
        """Dense layer (Huang et al., 2017): input and a 3x3 conv, concatenated."""

        module = DenseLayer
        shorthand = "growth"
        examples = (({{"growth": 4}}, (3, 8, 8)),)
        growth: int = Field(4, ge=1, description="Channels added.")

        def output_shape(self, in_shape):
            return (in_shape[0] + self.growth, *in_shape[1:])
''')

SPEC = "name: p\ninput: [3, 8, 8]\n{plugins}layers:\n  - {name}: 5\n  - {name}: 5\n"


def run_cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "nasblocks.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_file_plugin_on_the_command_line(tmp_path):
    (tmp_path / "myblocks.py").write_text(PLUGIN.format(name="dense_cli"))
    (tmp_path / "net.yaml").write_text(SPEC.format(plugins="", name="dense_cli"))
    ok = run_cli("--plugin", "myblocks.py", "validate", "net.yaml", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "3x8x8 -> 13x8x8" in ok.stdout
    summ = run_cli("--plugin", "myblocks.py", "summary", "net.yaml", cwd=tmp_path)
    assert summ.returncode == 0 and "dense_cli" in summ.stdout
    missing = run_cli("validate", "net.yaml", cwd=tmp_path)
    assert missing.returncode == 2 and "unknown block 'dense_cli'" in missing.stderr


def test_plugins_listed_in_the_spec_work_everywhere(tmp_path):
    import torch

    import nasblocks
    from nasblocks.testing import check_block

    (tmp_path / "blocks_in_spec.py").write_text(PLUGIN.format(name="dense_spec"))
    spec = tmp_path / "net.yaml"
    spec.write_text(SPEC.format(plugins="plugins: [blocks_in_spec.py]\n", name="dense_spec"))
    with pytest.raises(nasblocks.SpecError, match="--allow-plugins"):
        nasblocks.build(spec)  # a spec is data: its plugins run only when the user says so
    model = nasblocks.build(spec, allow_plugins=True)
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 13, 8, 8)
    assert nasblocks.summary(spec).output_shape == (13, 8, 8)
    assert check_block("dense_spec") == 1  # the shipped conformance suite passes on it


def test_plugin_errors_are_one_line(tmp_path):
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    (tmp_path / "net.yaml").write_text(SPEC.format(plugins="plugins: [broken.py]\n", name="relu"))
    proc = run_cli("--allow-plugins", "validate", "net.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    assert "plugins[0]: plugin 'broken.py' failed to load: RuntimeError: boom" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_cli("--plugin", "no_such_module_xyz", "validate", "net.yaml", cwd=tmp_path)
    assert proc.returncode == 2 and "not found" in proc.stderr


def test_entry_point_plugin(tmp_path):
    """A package declaring a ``nasblocks.blocks`` entry point is found with no flag at all."""
    site = tmp_path / "site"
    (site / "dense_pkg").mkdir(parents=True)
    (site / "dense_pkg" / "__init__.py").write_text(PLUGIN.format(name="dense_ep"))
    dist = site / "dense_pkg-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: dense-pkg\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[nasblocks.blocks]\ndense = dense_pkg\n")
    (tmp_path / "net.yaml").write_text(SPEC.format(plugins="", name="dense_ep"))
    env_code = (
        f"import sys; sys.path.insert(0, {str(site)!r});"
        "from nasblocks.cli.main import main; sys.exit(main(['validate', 'net.yaml']))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", env_code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "13x8x8" in proc.stdout


def test_duplicate_registration_raises():
    from nasblocks import RegistryError, register_block
    from nasblocks.blocks.core import Conv

    with pytest.raises(RegistryError, match="'conv' is a built-in block"):
        register_block("conv")(type("Other", (Conv,), {}))
    from nasblocks.registry import _REGISTRY

    try:
        with pytest.raises(RegistryError, match="already registered"):
            register_block("_twice")(type("One", (Conv,), {}))
            register_block("_twice")(type("Two", (Conv,), {}))
    finally:
        _REGISTRY.pop("_twice", None)


# -- the README's "Your own blocks" section, run as written in a fresh folder ----------------

README = Path(__file__).resolve().parents[1] / "README.md"
README_NET = "name: net\ninput: [3, 8, 8]\nlayers:\n  - {dense_layer: 8}\n"


def section() -> str:
    text = README.read_text()
    return text[text.index("## Your own blocks") :].split("\n## ", 1)[0]


def test_the_plugin_examples_run_as_written(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", section(), re.S)
    assert blocks[0].startswith("# myblocks.py")
    (tmp_path / "myblocks.py").write_text(blocks[0])
    (tmp_path / "net.yaml").write_text(README_NET)
    commands = re.findall(r"`(nasblocks [^`]*validate net\.yaml)`", section())
    assert len(commands) == 3, commands  # --plugin FILE, --plugin MODULE, --allow-plugins
    for command in commands[:2]:
        proc = run_cli(*command.split()[1:], cwd=tmp_path)
        assert proc.returncode == 0 and "-> 11x8x8" in proc.stdout, (command, proc.stderr)

    (tmp_path / "net.yaml").write_text("plugins: [myblocks.py]\n" + README_NET)
    refused = run_cli("validate", "net.yaml", cwd=tmp_path)
    assert refused.returncode == 2 and "--allow-plugins" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    allowed = run_cli(*commands[2].split()[1:], cwd=tmp_path)
    assert allowed.returncode == 0 and "-> 11x8x8" in allowed.stdout, allowed.stderr

    check = subprocess.run(
        [sys.executable, "-c", blocks[1]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stderr
