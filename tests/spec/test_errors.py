"""Bad input: one located line ``FILE:LINE:COL: yaml.path: message`` and exit code 2."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from nasblocks.cli.main import main

LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<path>\S+): (?P<msg>.+)$")

GOOD_HEAD = "name: t\ninput: [3, 16, 16]\nlayers:\n"


def validate(tmp_path, text: str | bytes, capsys, name="spec.yaml"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    code = main(["validate", str(path)])
    err = capsys.readouterr().err.strip()
    return code, err, path


def parse(err: str) -> dict:
    assert "\n" not in err, f"expected one line, got:\n{err}"
    m = LINE.match(err)
    assert m, f"not FILE:LINE:COL: path: message -> {err!r}"
    return m.groupdict()


CASES = [
    # (id, document, expected line, expected yaml path, message fragment)
    ("syntax", "name: t\nlayers: [conv: 8\n", 3, "(root)", "YAML syntax error"),
    ("empty", "", 1, "(root)", "empty document"),
    ("comment-only", "# nothing\n", 1, "(root)", "empty document"),
    ("not-a-mapping", "- conv: 8\n", 1, "(root)", "a spec is a mapping"),
    ("scalar-doc", "hello\n", 1, "(root)", "a spec is a mapping"),
    ("unknown-top-key", "name: t\nlayer:\n  - conv: 8\n", 2, "layer", "did you mean 'layers'"),
    ("duplicate-key", "name: t\nname: u\nlayers: [relu]\n", 2, "name", "duplicate key 'name'"),
    (
        "wrong-type",
        GOOD_HEAD + "  - conv: {out_channels: eight}\n",
        4,
        "layers[0].conv.out_channels",
        "valid integer",
    ),
    (
        "absurd-value",
        GOOD_HEAD + "  - conv: {out_channels: 100000000}\n",
        4,
        "layers[0].conv.out_channels",
        "less than or equal",
    ),
    (
        "negative-input",
        "name: t\ninput: [3, -16, 16]\nlayers: [relu]\n",
        2,
        "input[1]",
        "greater than or equal to 1",
    ),
    (
        "unknown-block",
        GOOD_HEAD + "  - conv: 8\n  - bottlenek: 4\n",
        5,
        "layers[1].bottlenek",
        "did you mean 'bottleneck'",
    ),
    (
        "unknown-block-field",
        GOOD_HEAD + "  - conv: {out_channels: 8, strid: 2}\n",
        4,
        "layers[0].conv.strid",
        "did you mean 'stride'",
    ),
    (
        "unknown-ref",
        GOOD_HEAD + "  - {name: a, conv: 8}\n  - {concat: [-1, b]}\n",
        5,
        "layers[1].from",
        "unknown layer 'b'",
    ),
    (
        "groups",
        GOOD_HEAD + "  - conv: 48\n  - conv: {out_channels: 64, groups: 32}\n",
        5,
        "layers[1].conv.groups",
        "48 input channels are not divisible by 32 groups",
    ),
    (
        "collapse",
        GOOD_HEAD + "  - conv: {out_channels: 8, kernel_size: 7, padding: 0}\n"
        "  - conv: {out_channels: 8, kernel_size: 7, padding: 0}\n"
        "  - conv: {out_channels: 8, kernel_size: 7, padding: 0}\n",
        6,
        "layers[2].conv.kernel_size",
        "spatial size collapses",
    ),
    (
        "concat-hw",
        GOOD_HEAD + "  - {name: a, conv: 8}\n  - {conv: {out_channels: 8, stride: 2}}\n"
        "  - {concat: [-1, a]}\n",
        6,
        "layers[2]",
        "must share H x W",
    ),
    (
        "add-shapes",
        GOOD_HEAD + "  - {name: a, conv: 8}\n  - conv: 16\n  - {add: [-1, a]}\n",
        6,
        "layers[2]",
        "inputs must have one shape",
    ),
    (
        "linear-on-map",
        GOOD_HEAD + "  - conv: 8\n  - linear: 10\n",
        5,
        "layers[1]",
        "flat feature vector",
    ),
    (
        "two-blocks",
        GOOD_HEAD + "  - {conv: 8, relu: null}\n",
        4,
        "layers[0].relu",
        "a layer has one block",
    ),
    (
        "bad-var",
        GOOD_HEAD + "  - flatten\n  - linear: $nclasses\n",
        5,
        "layers[1].linear.out_features",
        "unknown variable '$nclasses' (did you mean 'num_classes'",
    ),
    (
        "stages-length",
        "name: r\nstages: {block: basic, layers: [1, 1], widths: [8]}\n",
        2,
        "stages.widths",
        "1 entries for 2 stages",
    ),
    (
        "python-tag",
        "name: !!python/object/apply:os.system [echo hi]\nlayers: [relu]\n",
        1,
        "name",
        "unsupported tag",
    ),
    (
        "python-scalar-tag",
        "name: !!python/name:os.system ''\nlayers: [relu]\n",
        1,
        "name",
        "cannot read value",
    ),
    (
        "merge-key",
        "base: &b {conv: 8}\nname: t\nlayers:\n  - <<: *b\n",
        4,
        "layers[0]",
        "merge keys",
    ),
]


@pytest.mark.parametrize(
    ("doc", "line", "path", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_spec_is_one_located_line(tmp_path, capsys, doc, line, path, fragment):
    code, err, file = validate(tmp_path, doc, capsys)
    assert code == 2
    parts = parse(err)
    assert parts["file"] == str(file)
    assert int(parts["line"]) == line, err
    assert parts["path"] == path, err
    assert fragment in parts["msg"], err


def test_deep_nesting(tmp_path, capsys):
    code, err, _ = validate(tmp_path, "name: t\nlayers: " + "[" * 3000 + "]" * 3000 + "\n", capsys)
    assert code == 2 and "nesting is too deep" in parse(err)["msg"]


def test_moderately_deep_nesting(tmp_path, capsys):
    code, err, _ = validate(tmp_path, "name: t\nlayers: " + "[" * 80 + "]" * 80 + "\n", capsys)
    assert code == 2 and "nesting is too deep" in parse(err)["msg"]


def test_alias_bomb(tmp_path, capsys):
    doc = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
    prev = "a"
    for name in "bcdefgh":
        doc += f"{name}: &{name} [{', '.join(['*' + prev] * 10)}]\n"
        prev = name
    doc += "layers: [relu]\n"
    start = time.perf_counter()
    code, err, _ = validate(tmp_path, doc, capsys)
    assert time.perf_counter() - start < 5
    assert code == 2 and "alias bomb" in parse(err)["msg"]


def test_binary_file(tmp_path, capsys):
    code, err, _ = validate(tmp_path, b"\x89PNG\r\n\x1a\n\x00\x00\x00", capsys, "x.yaml")
    assert code == 2 and "binary file" in parse(err)["msg"]


def test_not_utf8(tmp_path, capsys):
    code, err, _ = validate(tmp_path, b"name: \xff\xfe\n", capsys)
    assert code == 2 and "not UTF-8" in parse(err)["msg"]


def test_missing_file_and_directory(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "no such file" in parse(capsys.readouterr().err.strip())["msg"]
    assert main(["validate", str(tmp_path)]) == 2
    assert "is a directory" in parse(capsys.readouterr().err.strip())["msg"]


def test_several_files_report_each(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text(GOOD_HEAD + "  - conv: 8\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("")
    assert main(["validate", str(good), str(bad)]) == 2
    out, err = capsys.readouterr()
    assert "good.yaml: ok" in out and "bad.yaml:1:1" in err


@pytest.mark.parametrize(
    "argv", [["validate"], ["summary"], ["nosuchcommand"], ["summary", "x.yaml", "--depth", "two"]]
)
def test_bad_flags_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_real_process_exit_code_no_traceback_and_fast(tmp_path):
    """The installed command: exit 2, one line on stderr, no traceback, within a second or so."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD_HEAD + "  - conv: 48\n  - conv: {out_channels: 64, groups: 32}\n")
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "nasblocks.cli.main", "validate", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.perf_counter() - start
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    parse(proc.stderr.strip())
    assert elapsed < 5, f"validate took {elapsed:.1f}s"


def test_validate_and_schema_do_not_import_torch(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(GOOD_HEAD + "  - conv: 8\n  - {name: skip, se: 4}\n")
    code = (
        "import sys\nfrom nasblocks.cli.main import main\n"
        f"assert main(['validate', {str(good)!r}]) == 0\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n    assert main(['schema']) == 0\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_validate_reports_parameters_and_macs_without_torch(tmp_path):
    net = tmp_path / "net.yaml"
    net.write_text(GOOD_HEAD + "  - conv: 8\n")
    sk = tmp_path / "sk.yaml"
    sk.write_text(GOOD_HEAD + "  - conv: 8\n  - sk: {}\n")
    code = (
        "import sys\nfrom nasblocks.cli.main import main\n"
        f"assert main(['validate', {str(net)!r}, {str(sk)!r}]) == 0\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.splitlines()
    # conv 3 -> 8, 3x3, no bias (a BN follows): 216 weights + 16 BN; 216 x 16 x 16 MACs
    assert first.endswith("3x16x16 -> 8x16x16, 232 params, 55.30K MACs)"), first
    assert "at least" in second and "sk counted by `nasblocks summary`" in second


@pytest.mark.parametrize("shape", ["3x64", "64", "3x64x0", "3x64x64x2", "3x6a4x64", "3,64,64"])
def test_summary_input_is_strictly_c_h_w(shape, capsys):
    assert main(["summary", "resnet18", "--input", shape]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--input expects CxHxW" in err and repr(shape) in err


def test_summary_input_sets_the_shape(capsys):
    assert main(["summary", "resnet18", "--input", "3x64x64", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["input_shape"] == [3, 64, 64] and result["layers"][0]["out_shape"] == [
        64,
        32,
        32,
    ]
