"""Every failure of `nasblocks search / train / report` is one line and exit code 2.

A corpus of bad flags, settings, spaces and folders. Each case: exit code 2, exactly one line
on stderr naming the flag (``--trials: ...``) or locating the mistake in its file
(``FILE:LINE:COL: yaml.path: ...``), no traceback, a few seconds; and what is refused before
a study starts leaves nothing on disk (no OUT, no study.db), and an existing folder untouched.
"""

from __future__ import annotations

import shutil
import time

import pytest

from nasblocks.cli.main import main

SECONDS = 10  # per case, generous for a busy 2-core machine (they take well under one)


def fails_in_one_line(argv: list[str], capsys) -> str:
    """Run the CLI; assert exit code 2, one line on stderr, no traceback; return the line."""
    start = time.perf_counter()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse
        code = e.code
    took = time.perf_counter() - start
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, (code, err)
    assert err and "\n" not in err, err
    assert "Traceback" not in err, err
    assert took < SECONDS, f"{took:.1f}s"
    return err


@pytest.fixture
def tiny(tmp_path, tiny_space_text):
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny_space_text(trials=1, epochs=1))
    return path


def nothing_made(tmp_path, out) -> None:
    assert not out.exists(), sorted(p.name for p in out.iterdir())
    assert not list(tmp_path.rglob("study.db*"))


# -- flags ------------------------------------------------------------------------------------

FLAG_CASES = [
    (["--trials", "0"], "--trials: Input should be greater than or equal to 1 (got 0)"),
    (["--trials", "-3"], "--trials: Input should be greater than or equal to 1 (got -3)"),
    (["--trials", "two"], "argument --trials: invalid int value: 'two'"),
    (["--timeout", "-1"], "--timeout: Input should be greater than 0 (got -1.0)"),
    (["--timeout", "0"], "--timeout: Input should be greater than 0"),
    (["--timeout", "nan"], "--timeout: Input should be a finite number"),
    (["--timeout", "inf"], "--timeout: Input should be a finite number"),
    (["--seed", "-1"], "--seed: Input should be greater than or equal to 0 (got -1)"),
    (["--seed", "4294967296"], "--seed: Input should be less than or equal to 4294967295"),
    (["--threads", "0"], "--threads: Input should be greater than or equal to 1 (got 0)"),
    (["--workers", "0"], "argument --workers: must be at least 1, got 0"),
    (["--heartbeat", "0"], "argument --heartbeat: must be at least 1, got 0"),
    (["--sampler", "bayes"], "argument --sampler: invalid choice: 'bayes'"),
    (["--pruner", "asha"], "argument --pruner: invalid choice: 'asha'"),
    (["--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--dataset", "cifar11"], "--dataset: unknown dataset 'cifar11' (did you mean 'cifar10'?)"),
    (["--dataset", "imagefolder:/no/such/folder"], "--dataset: imagefolder: /no/such/folder"),
    (["--storage", "nosuchdb://x"], "cannot open storage 'nosuchdb://x': NoSuchModuleError"),
    (
        ["--sampler", "evolution", "--set", "search.objectives=[val_acc, params]"],
        "--sampler: the evolution sampler is single-objective",
    ),
    (["--backend", "ray", "--workers", "2"], "--workers is for the Optuna backend"),
    (["--backend", "ray", "--cpus-per-trial", "0"], "--cpus-per-trial must be > 0, got 0.0"),
    (["--backend", "ray", "--gpus-per-trial", "1.5"], "--gpus-per-trial is a fraction"),
    (["--backend", "ray", "--max-concurrent", "0"], "--max-concurrent must be >= 1, got 0"),
]

SET_CASES = [
    ("stages.widths", "--set expects PATH=VALUE, got 'stages.widths'"),
    ("search.budget.epochs=many", "Input should be a valid integer (got 'many')"),
    ("search.budget.epochs=0", "Input should be greater than or equal to 1 (got 0)"),
    ("search.budget.trials=true", "Input should be a valid integer (got True)"),
    ("search.budget.trials=2.5", "Input should be a valid integer (got 2.5)"),
    ("search.budget.trials='3'", "Input should be a valid integer (got '3')"),
    ("search.budget.timeout=.nan", "Input should be a finite number (got nan)"),
    ("search.budget.timeout=.inf", "Input should be a finite number (got inf)"),
    ("search.budget=7", "Input should be a valid dictionary or instance of Budget"),
    ("search.budget.trails=3", "unknown field 'trails' (did you mean 'trials'?)"),
    ("search=5", "`search` is a mapping"),
    ("search.seed=true", "Input should be a valid integer (got True)"),
    ("search.seed=-5", "Input should be greater than or equal to 0"),
    ("search.threads=false", "Input should be a valid integer (got False)"),
    (
        "search.sampler=bayes",
        "Input should be 'tpe', 'random', 'nsga2', 'grid', 'evolution' or 'local_search'",
    ),
    (
        "search.sampler={name: nsga2, population_size: 1}",
        "search.sampler.population_size: Input should be greater than or equal to 2 (got 1)",
    ),
    ("search.pruner=asha", "Input should be 'none', 'median', 'successive_halving'"),
    (
        "search.pruner={name: hyperband, reduction_factor: 1}",
        "search.pruner.reduction_factor: Input should be greater than or equal to 2 (got 1)",
    ),
    ("search.objectives=[params]", "val_acc must be one of the objectives"),
    ("search.objectives=[val_acc, val_acc]", "an objective is listed twice"),
    ("search.objectives=[val_acc, speed]", "Input should be 'val_acc', 'params', 'flops'"),
    ("search.objectives=[]", "give at least one objective"),
    ("search.constraints.max_params=-5", "Input should be greater than 0 (got -5)"),
    ("search.constraints.max_flops=.inf", "Input should be a finite number (got inf)"),
    ("search.constraints.max_params=true", "Input should be a valid number (got True)"),
    ("search.latency.repeats=0", "Input should be greater than or equal to 1 (got 0)"),
    ("search.data.val_fraction=1.5", "Input should be less than 1 (got 1.5)"),
    ("search.data.download=1", "Input should be a valid boolean (got 1)"),
    (
        "search.data.synthetic_size=300000000",
        "300000000 synthetic images of [1, 8, 8] need about 307.2 GB of memory",
    ),
    ("search.data.synthetic_shape=[1, 0, 8]", "Input should be greater than or equal to 1"),
    ("search.data.synthetic_classes=1", "Input should be greater than or equal to 2 (got 1)"),
    ('search.study_name=""', "String should have at least 1 character"),
    ("search.train.lr=-1", "Input should be greater than 0"),
    ("search.train.lr=.nan", "Input should be a finite number"),
    ("search.train.batch_size=true", "Input should be a valid integer (got True)"),
    ("search.train.optimizer=adam", "Input should be 'sgd' or 'adamw'"),
    ("search.train.lrr=0.1", "unknown training setting 'lrr' (did you mean 'lr'?)"),
    ("search.train.lr={float: [0.2, 0.1]}", "float needs low < high, got [0.2, 0.1]"),
    ("search.budget.trials={int: [1, 5]}", "search nodes are allowed in the spec and in search"),
    ("stages.nope.x=1", "unknown field 'nope'"),
    ("stages.widths.5=1", "override 'stages.widths.5': nothing at this path"),
    ("stages.block=bottleneckk", "unknown block 'bottleneckk'"),
]


@pytest.mark.parametrize(
    ("flags", "message"), FLAG_CASES, ids=[" ".join(c[0]) for c in FLAG_CASES]
)
def test_bad_flags(tiny, tmp_path, capsys, flags, message):
    out = tmp_path / "out"
    err = fails_in_one_line(["search", str(tiny), "--out", str(out), *flags], capsys)
    assert message in err
    nothing_made(tmp_path, out)


@pytest.mark.parametrize(("assignment", "message"), SET_CASES, ids=[c[0] for c in SET_CASES])
def test_bad_set_overrides_name_the_override(tiny, tmp_path, capsys, assignment, message):
    out = tmp_path / "out"
    err = fails_in_one_line(["search", str(tiny), "--out", str(out), "--set", assignment], capsys)
    assert message in err
    if "=" in assignment:
        assert err.startswith(f"--set {assignment}: "), err
    nothing_made(tmp_path, out)


@pytest.mark.parametrize(
    ("search_part", "where", "message"),
    [
        ("search:\n  - a\n", ":6:1: search: this is a list", "cannot reach 'budget' in it"),
        ("search:\n  budget: 5\n", ":7:3: search.budget: this is an int", "reach 'epochs'"),
    ],
)
def test_an_override_into_a_value_the_file_wrote_names_the_file(
    tmp_path, capsys, search_part, where, message
):
    space = tmp_path / "space.yaml"
    space.write_text(
        "name: x\nlayers:\n  - {conv2d: 8}\n  - {global_avgpool: {flatten: true}}\n"
        "  - {linear: 10}\n" + search_part
    )
    err = fails_in_one_line(
        ["search", str(space), "--out", str(tmp_path / "out"), "--set", "search.budget.epochs=1"],
        capsys,
    )
    assert err.startswith(f"{space}{where}") and message in err, err


# -- spaces -----------------------------------------------------------------------------------

SPACE_CASES = [
    (
        "dataset: synthetic,",
        "dataset: synthtic,",
        ":8:10: search.data.dataset: unknown dataset 'synthtic' (did you mean 'synthetic'?)",
    ),
    ("trials: 1,", "trials: 0,", ":12:12: search.budget.trials: Input should be greater"),
    ("sampler: random", "sampler: bayes", ":13:3: search.sampler.name: Input should be 'tpe'"),
    ("pruner: none", "pruner: none\n  seed: -1", ":15:3: search.seed: Input should be greater"),
    ("pruner: none", "pruner: none\n  seed: 1.5", ":15:3: search.seed: Input should be a valid"),
    ("epochs: 1}", "epochs: .nan}", ":12:23: search.budget.epochs: Input should be a valid int"),
    ("synthetic_size: 240", "synthetic_size: 10", ":8:30: search.data.synthetic_size: Input"),
    (
        "synthetic_size: 240",
        "synthetic_size: 30000000",
        ":8:30: search.data.synthetic_size: 30000000 synthetic images of [1, 8, 8] need about",
    ),
    ("[{choice: [4, 8]}]", "[{int: [8, 4]}]", ":6:13: stages.widths[0].int: low 8 is above"),
    ("[{choice: [4, 8]}]", "[{choice: []}]", ":6:13: stages.widths[0].choice: choice takes"),
    ("block: basic", "block: basik", ":4:3: stages.block: unknown block 'basik' (did you mean"),
    ("pruner: none", "pruner: none\nwat: 1", ":15:1: wat: unknown field 'wat'"),
    ("  sampler: random", "  sampler: [random", ":14:9: (root): YAML syntax error"),
]


@pytest.mark.parametrize(("old", "new", "where"), SPACE_CASES, ids=[c[1] for c in SPACE_CASES])
def test_bad_spaces_are_located_in_their_file(tiny, tmp_path, capsys, old, new, where):
    text = tiny.read_text()
    assert old in text
    tiny.write_text(text.replace(old, new, 1))
    out = tmp_path / "out"
    err = fails_in_one_line(["search", str(tiny), "--out", str(out)], capsys)
    assert err.startswith(f"{tiny}:") and where in err, err
    nothing_made(tmp_path, out)


def test_an_empty_and_a_missing_space(tmp_path, capsys):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert "empty.yaml:" in fails_in_one_line(["search", str(empty)], capsys)
    err = fails_in_one_line(["search", str(tmp_path / "nope.yaml")], capsys)
    assert err == f"{tmp_path / 'nope.yaml'}:1:1: (root): no such file"
    assert not list(tmp_path.rglob("study.db"))


# -- output folders ---------------------------------------------------------------------------


def test_an_out_that_is_a_file(tiny, tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("mine")
    for out, message in ((taken, "is a file, expected a folder"), (taken / "sub", "is a file")):
        err = fails_in_one_line(["search", str(tiny), "--out", str(out)], capsys)
        assert err.startswith(f"--out {out}: ") and message in err
        err = fails_in_one_line(["train", "resnet18", "--out", str(out)], capsys)
        assert err.startswith(f"--out {out}: ") and message in err
    assert taken.read_text() == "mine" and not list(tmp_path.rglob("study.db"))


@pytest.fixture(scope="module")
def finished_folder(tmp_path_factory, tiny_space_text):
    """One finished 1-trial search (real, tiny), copied by each test that spoils it."""
    base = tmp_path_factory.mktemp("finished")
    space = base / "tiny.yaml"
    space.write_text(tiny_space_text(trials=1, epochs=1))
    assert main(["search", str(space), "--out", str(base / "out"), "-q"]) == 0
    return space, base / "out"


def _spoil_db(content: bytes):
    def spoil(out):
        for extra in out.glob("study.db-*"):  # the write-ahead log of the real one
            extra.unlink()
        (out / "study.db").write_bytes(content)

    return spoil


def _files(folder):
    """Every file's bytes; SQLite's shared-memory index (rewritten by any reader) aside."""
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.suffix != ".db-shm"}


FOLDER_CASES = [
    ("another space", [], "other", "holds the study 'tiny' of another space"),
    (
        "architecture",
        ["--set", "stages.block=bottleneck"],
        None,
        "(the architecture space changed)",
    ),
    (
        "objectives",
        ["--set", "search.objectives=[val_acc, params]"],
        None,
        "(the objectives changed)",
    ),
    ("seed", ["--seed", "1"], None, "(the seed changed); use another --out, or --fresh"),
    ("data", ["--set", "search.data.synthetic_size=300"], None, "(the data changed)"),
    ("empty db", [], _spoil_db(b""), "study.db is empty (0 bytes), not a study database"),
    ("foreign db", [], _spoil_db(b"x" * 5000), "study.db is not a readable SQLite database"),
    (
        "corrupt db",
        [],
        _spoil_db(b"SQLite format 3\x00" + bytes(range(256)) * 20),
        "study.db is not a readable SQLite database",
    ),
    ("bad run.json", [], lambda out: (out / "run.json").write_text("{"), "unreadable run.json"),
    ("fresh elsewhere", ["--fresh", "--storage", "sqlite:///{tmp}/x.db"], None, "but this one"),
]


@pytest.mark.parametrize(
    ("flags", "change", "message"), [c[1:] for c in FOLDER_CASES], ids=[c[0] for c in FOLDER_CASES]
)
def test_a_folder_that_holds_another_study_is_left_alone(
    finished_folder, tmp_path, capsys, flags, change, message
):
    space, finished = finished_folder
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    if change == "other":
        space = shutil.copy(space, tmp_path / "other.yaml")
    elif change is not None:
        change(out)
    before = _files(out)
    flags = [f.replace("{tmp}", str(tmp_path)) for f in flags]
    err = fails_in_one_line(["search", str(space), "--out", str(out), *flags], capsys)
    assert message in err
    assert _files(out) == before
    assert not (tmp_path / "x.db").exists()


def test_report_of_a_folder_without_its_study(finished_folder, tmp_path, capsys):
    _, finished = finished_folder
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    (out / "study.db").unlink()
    err = fails_in_one_line(["report", str(out)], capsys)
    assert "the study database" in err and err.endswith("is missing")
    assert not (out / "study.db").exists()  # not made empty
    err = fails_in_one_line(["report", str(tmp_path)], capsys)
    assert "no run.json here" in err


# -- train ------------------------------------------------------------------------------------

NO_PARAMETERS = """
name: flat
input: [1, 8, 8]
num_classes: 4
layers:
  - relu
  - {maxpool: {kernel_size: 2}}
"""

TRAIN_CASES = [
    (["--epochs", "0"], "--epochs: 0 only scores inherited weights; add --inherit"),
    (["--epochs", "-1"], "--epochs: Input should be greater than or equal to 1 (got -1)"),
    (["--batch-size", "0"], "--batch-size: Input should be greater than or equal to 1"),
    (["--lr", "nan"], "--lr: Input should be a finite number (got nan)"),
    (["--lr", "-0.1"], "--lr: Input should be greater than 0 (got -0.1)"),
    (["--seed", "-1"], "--seed: Input should be greater than or equal to 0 (got -1)"),
    (["--seed", "99999999999"], "--seed: Input should be less than or equal to 4294967295"),
    (["--dataset", "cifar11"], "--dataset: unknown dataset 'cifar11' (did you mean 'cifar10'?)"),
    (["--set", "stages.nope=1"], "--set stages.nope=1: unknown field 'nope'"),
    (["--input-size", "0"], "--input-size: input[1]: Input should be greater than or equal to 1"),
]


@pytest.mark.parametrize(
    ("flags", "message"), TRAIN_CASES, ids=[" ".join(c[0]) for c in TRAIN_CASES]
)
def test_bad_train_flags(tmp_path, capsys, flags, message):
    out = tmp_path / "out"
    argv = ["train", "resnet18", "--dataset", "digits", "--out", str(out), *flags]
    assert message in fails_in_one_line(argv, capsys)
    assert not out.exists()


def test_train_a_spec_without_parameters(tmp_path, capsys):
    spec = tmp_path / "flat.yaml"
    spec.write_text(NO_PARAMETERS.lstrip())
    out = tmp_path / "out"
    argv = ["train", str(spec), "--dataset", "synthetic", "--epochs", "1", "--out", str(out)]
    err = fails_in_one_line(argv, capsys)
    assert (
        err == f"{spec}: the network has no trainable parameters (no conv, linear or norm "
        "layer): nothing to train"
    )
    assert not out.exists()
