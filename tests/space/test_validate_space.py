"""``nasblocks validate SPACE``: a space's size, the share of its networks that build, and
located errors for options that never build."""

from __future__ import annotations

from pathlib import Path

import pytest

from nasblocks.cli.main import main

SPACES = sorted((Path(__file__).parents[2] / "search_spaces").glob("*.yaml"))

HEAD = "name: s\nlayers:\n"
TAIL = (
    "  - {global_avgpool: {flatten: true}}\n"
    "  - {linear: $num_classes}\n"
    "search:\n"
    "  data: {dataset: digits}\n"
    "  train: {lr: 0.05}\n"
)


def write(tmp_path, layers: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(HEAD + layers + TAIL)
    return path


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_every_shipped_space_validates_clean(path, capsys):
    assert main(["validate", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == ""  # no warning: every sampled network builds
    assert out.startswith(f"{path}: ok (space ") and " of a sample of 256 build" in out


def test_an_option_that_never_builds_is_an_error_at_its_line(tmp_path, capsys):
    path = write(
        tmp_path,
        "  - conv: {out_channels: {choice: [16, 24, 17]}}\n"
        "  - conv: {out_channels: 16, groups: 4}\n",
    )
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"{path}:3:44: layers[0].conv.out_channels.choice[2]: ")  # the 17
    assert "=17 never builds (1 of 1 networks with it fail)" in err  # enumerated: exact
    assert "17 input channels are not divisible by 4 groups" in err


def test_partly_infeasible_space_is_a_warning_with_reason_and_example(tmp_path, capsys):
    path = write(
        tmp_path,
        "  - conv: {out_channels: {choice: [16, 17]}}\n"
        "  - conv: {out_channels: 16, groups: {choice: [1, 4]}}\n",
    )
    assert main(["validate", str(path)]) == 0
    out, err = capsys.readouterr()
    assert f"{path}: warning: 1 of 4 networks do not build: layers[1].conv.groups: " in err
    assert "(e.g. layers[0].conv.out_channels=17, layers[1].conv.groups=4)" in err
    assert "(space space: 4 networks, 2 nodes; 3 of all 4 build" in out  # named by its file


def test_a_space_nothing_of_which_builds_is_refused(tmp_path, capsys):
    path = write(
        tmp_path,
        "  - conv: {out_channels: {choice: [17, 19]}}\n  - conv: {out_channels: 16, groups: 4}\n",
    )
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not divisible by 4 groups" in err
