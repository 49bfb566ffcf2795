"""One study per output folder: refused when another space's, resumed and said so, --fresh
moves it aside, corrupt databases kept, folders portable, files written atomically, weights
named by study."""

from __future__ import annotations

import errno
import itertools
import json
import shutil
import sqlite3

import pytest
import torch

from nasblocks.cli.main import main
from nasblocks.errors import SearchError
from nasblocks.files import OutputError, write_atomic
from nasblocks.search.engine import search
from nasblocks.search.outputs.folder import fingerprint
from nasblocks.search.outputs.results import load_study
from nasblocks.space import load_space

OTHER_WIDTHS = {"stages.widths": [{"choice": [6, 12]}]}  # another architecture space


@pytest.fixture
def trainer(fake_trainer, monkeypatch):
    """The fake trainer, with each trial's real (untrained) weights, so they are kept."""
    from nasblocks.spec import load_spec
    from nasblocks.train import build_model

    inner = fake_trainer()

    def with_weights(spec, config, data, report=None, *, keep_weights=True):
        outcome = inner(spec, config, data, report, keep_weights=keep_weights)
        outcome.state_dict = build_model(load_spec(spec), config.seed).state_dict()
        return outcome

    monkeypatch.setattr("nasblocks.search.engine.run_trial", with_weights)
    return inner


def run(path, out, trials=2, progress=False, **kwargs):
    overrides = {"search.budget.trials": trials, **kwargs.pop("overrides", {})}
    return search(load_space(path, overrides), out=out, progress=progress, **kwargs)


def snapshot(folder):
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# -- another space, the same folder -----------------------------------------------------------


def test_a_second_space_is_refused_and_the_first_study_kept(write_space, tmp_path, trainer):
    out = tmp_path / "out"
    first = write_space()
    run(first, out)
    before = snapshot(out)
    other = first.with_name("other.yaml")  # another study (named by the file)
    shutil.copy(first, other)
    with pytest.raises(SearchError, match=r"holds the study 'space' of another space \(.*space"):
        run(other, out)
    with pytest.raises(SearchError, match="use another --out, or --fresh to move it aside"):
        run(other, out, overrides=OTHER_WIDTHS)
    with pytest.raises(SearchError, match=r"'space' of another space \(the architecture space c"):
        run(first, out, overrides=OTHER_WIDTHS)  # the same study, another architecture
    assert snapshot(out) == before  # nothing written, nothing deleted


@pytest.mark.parametrize(
    "overrides",
    [
        {"search.budget.trials": 50},
        {"search.budget.epochs": 5},
        {"search.budget.timeout": 60.0},
        {"search.sampler": "tpe"},
        {"search.pruner": "median"},
        {"search.train.device": "auto"},
        {"search.train.compile": True},
        {"search.threads": 2},
        {"search.storage": "sqlite:///elsewhere.db"},
    ],
)
def test_the_budget_and_where_trials_run_are_not_the_space(write_space, overrides):
    path = write_space()
    assert fingerprint(load_space(path, overrides)) == fingerprint(load_space(path))


@pytest.mark.parametrize(
    ("overrides", "part"),
    [
        ({"stages.block": "bottleneck"}, "architecture"),
        ({"stages.widths": [{"choice": [4, 16]}]}, "architecture"),
        ({"search.train.lr": 0.1}, "training"),
        ({"search.train.batch_size": 16}, "training"),
        ({"search.data.synthetic_size": 300}, "data"),
        ({"search.objectives": ["val_acc", "params"]}, "objectives"),
        ({"search.constraints.max_params": 1000}, "constraints"),
        ({"search.seed": 1}, "seed"),
    ],
)
def test_what_makes_trials_comparable_is(write_space, overrides, part):
    path = write_space()
    base, changed = fingerprint(load_space(path)), fingerprint(load_space(path, overrides))
    assert base["hash"] != changed["hash"]
    assert [k for k in base["parts"] if base["parts"][k] != changed["parts"][k]] == [part]


def test_the_fingerprint_does_not_depend_on_where_the_file_is(write_space, tmp_path):
    path = write_space()
    moved = tmp_path / "elsewhere" / "space.yaml"
    moved.parent.mkdir()
    shutil.copy(path, moved)
    assert fingerprint(load_space(moved)) == fingerprint(load_space(path))


# -- resuming and starting over ---------------------------------------------------------------


def test_resuming_says_so(write_space, tmp_path, trainer, capsys):
    out, path = tmp_path / "out", write_space()
    run(path, out)
    capsys.readouterr()
    run(path, out, progress=True)
    err = capsys.readouterr().err
    assert (
        f"resuming: 2 of 2 trials already finished in {out}; --trials N to extend, "
        "--fresh to start over"
    ) in err
    assert "finished 2 trials" not in err  # nothing ran
    run(path, out, trials=3, progress=True)
    err = capsys.readouterr().err
    assert f"resuming: 2 of 3 trials finished in {out}\n" in err
    assert "finished 1 trial in" in err and "(3 in the study)" in err


def test_fresh_moves_the_old_study_aside_and_starts_a_new_one(write_space, tmp_path, trainer):
    out, path = tmp_path / "out", write_space()
    run(path, out)
    before = snapshot(out)
    outcome = run(path, out, trials=1, fresh=True)
    (previous,) = out.glob("previous-*")
    assert snapshot(previous) == before  # all of it, untouched
    assert len(load_study(previous).trials) == 2  # and still a search folder
    assert outcome.finished == 1 and len(load_study(out).trials) == 1
    run(path, out, trials=1, fresh=True, overrides=OTHER_WIDTHS)
    assert len(list(out.glob("previous-*"))) == 2  # earlier ones stay where they are
    assert len(load_study(out).trials) == 1


def test_fresh_cannot_move_a_study_that_lives_elsewhere(write_space, tmp_path, trainer):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    with pytest.raises(SearchError, match="--fresh moves the study .* but this one lives in"):
        run(write_space(), tmp_path / "out", storage=url, fresh=True)
    assert not (tmp_path / "out").exists() and not (tmp_path / "shared.db").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"study.db is empty \(0 bytes\), not a study database"),
        (b"not a database at all" * 50, "study.db is not a readable SQLite database"),
        (b"SQLite format 3\x00" + bytes(range(256)) * 40, "is not a readable SQLite database"),
    ],
)
def test_a_broken_study_db_is_never_replaced(write_space, tmp_path, trainer, content, message):
    out, path = tmp_path / "out", write_space()
    out.mkdir()
    (out / "study.db").write_bytes(content)
    with pytest.raises(SearchError, match=message + ".*--fresh moves it aside"):
        run(path, out)
    assert [p.name for p in out.iterdir()] == ["study.db"]
    assert (out / "study.db").read_bytes() == content
    run(path, out, fresh=True)
    (previous,) = out.glob("previous-*")
    assert (previous / "study.db").read_bytes() == content


# -- weights ----------------------------------------------------------------------------------


def test_weights_are_named_by_study_and_no_study_deletes_others(write_space, tmp_path, trainer):
    out, path = tmp_path / "out", write_space()
    run(path, out, trials=3)
    best = load_study(out).best_trial
    assert best.user_attrs["weights"] == f"trials/space-{best.number}.pt"
    assert [p.name for p in (out / "trials").iterdir()] == [f"space-{best.number}.pt"]
    foreign = {"other-0.pt": b"another study's", "0.pt": b"an older layout's"}
    for name, data in foreign.items():
        (out / "trials" / name).write_bytes(data)
    run(path, out, trials=8)
    for name, data in foreign.items():
        assert (out / "trials" / name).read_bytes() == data
    best = load_study(out).best_trial
    mine = sorted(p.name for p in (out / "trials").glob("space-*.pt"))
    assert mine == [f"space-{best.number}.pt"]


# -- portable folders ------------------------------------------------------------------------


def test_a_moved_folder_reports_and_resumes_its_own_study(write_space, tmp_path, trainer):
    path = write_space()
    old = tmp_path / "a" / "out"
    run(path, old)
    run_file = json.loads((old / "run.json").read_text())
    assert run_file["storage"] == "sqlite:///study.db" and run_file["layout"] == 2
    assert str(tmp_path) not in json.dumps(run_file["files"])
    moved = tmp_path / "b" / "moved"
    moved.parent.mkdir()
    shutil.move(old, moved)
    assert main(["report", str(moved)]) == 0
    outcome = run(path, moved, trials=3)
    assert outcome.finished == 3 and len(load_study(moved).trials) == 3
    assert not old.exists()  # neither touched nor made again
    best = load_study(moved).best_trial
    assert (moved / best.user_attrs["weights"]).is_file()
    assert torch.load(moved / "best.pt", weights_only=True).keys()


def test_a_folder_of_the_old_layout_reports_and_resumes(write_space, tmp_path, trainer):
    """Before: absolute storage paths in run.json, weights in trials/<n>.pt, no fingerprint."""
    path = write_space()
    old = tmp_path / "old"
    run(path, old)
    best = load_study(old).best_trial.number
    (old / "trials" / f"space-{best}.pt").rename(old / "trials" / f"{best}.pt")
    with sqlite3.connect(old / "study.db") as db:
        db.execute(
            "UPDATE trial_user_attributes SET value_json = ? WHERE key = 'weights'",
            (json.dumps(f"trials/{best}.pt"),),
        )
        db.execute("DELETE FROM study_user_attributes WHERE key = 'fingerprint'")
    info = json.loads((old / "run.json").read_text())
    info["storage"] = f"sqlite:///{(old / 'study.db').resolve()}"
    for key in ("layout", "fingerprint", "files"):
        del info[key]
    (old / "run.json").write_text(json.dumps(info))
    moved = tmp_path / "moved"
    shutil.move(old, moved)
    assert main(["report", str(moved)]) == 0 and not old.exists()
    outcome = run(path, moved, trials=4)
    assert outcome.finished == 4 and not old.exists()
    assert (moved / "trials" / f"{best}.pt").is_file()  # its own old file: kept
    assert (moved / "best.pt").is_file()
    run(path, moved, trials=4)  # and it is this space's study from now on
    with pytest.raises(SearchError, match="of another space"):
        run(path, moved, overrides=OTHER_WIDTHS)


# -- atomic files -----------------------------------------------------------------------------


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "trials.csv"
    target.write_text("old\n")

    def half(tmp):
        tmp.write_text("half a row")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputError, match=r"cannot write .*trials.csv: no space left on device"):
        write_atomic(target, half)

    def interrupted(tmp):
        tmp.write_text("x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, interrupted)
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["trials.csv"]
    write_atomic(target, "new\n")
    assert target.read_text() == "new\n" and len(list(tmp_path.iterdir())) == 1


def test_a_search_leaves_no_temporary_files(write_space, tmp_path, trainer):
    out = tmp_path / "out"
    run(write_space(), out)
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_disk_full_mid_search_is_one_line_and_the_study_resumes(
    write_space, tmp_path, fake_trainer, monkeypatch, capsys
):
    from nasblocks.spec import load_spec
    from nasblocks.train import build_model

    better = itertools.count(1)
    inner = fake_trainer(accuracy=lambda spec, config: next(better) / 100)  # each one the best

    def with_weights(spec, config, data, report=None, *, keep_weights=True):
        outcome = inner(spec, config, data, report)
        outcome.state_dict = build_model(load_spec(spec), config.seed).state_dict()
        return outcome

    monkeypatch.setattr("nasblocks.search.engine.run_trial", with_weights)
    save, calls = torch.save, itertools.count()

    def full_disk(obj, f, *args, **kwargs):
        if next(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device", str(f))
        return save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    path, out = write_space(), tmp_path / "out"
    argv = ["search", str(path), "--out", str(out), "--trials", "3", "-q"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert f"cannot write {out}/trials/space-1.pt: no space left on device" in err
    assert err.endswith("free some space and run the same command again to resume")
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    monkeypatch.setattr(torch, "save", save)  # space is free again
    assert main(argv) == 0
    trials = load_study(out).trials
    assert sum(t.state.is_finished() and t.state.name != "FAIL" for t in trials) == 3
    assert [t.user_attrs.get("retry_of") for t in trials if "retry_of" in t.user_attrs] == [1]


# -- a real full disk and a read-only one (a small tmpfs: needs root; skipped elsewhere) -------

FAKE_RUNNER = """
import sys
import nasblocks.search.engine as engine
from nasblocks.search.evaluators.trained import TrialOutcome
from nasblocks.train import build_model
from nasblocks.spec import load_spec

def fake(spec, config, data, report=None, *, keep_weights=True):
    spec = load_spec(spec)
    acc = int(spec.hash(), 16) % 997 / 1000 + config.lr / 10
    report(1, {"val_acc": acc, "train_loss": 1.0})
    metrics = {"val_acc": acc, "train_loss": 1.0, "epochs": 1.0, "duration_s": 0.0}
    return TrialOutcome(metrics, False, None, build_model(spec, config.seed).state_dict())

engine.run_trial = fake
from nasblocks.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def states(out) -> dict[str, int]:
    """Trials per state, read without keeping the database open (the disk is remounted)."""
    db = sqlite3.connect(f"{(out / 'study.db').as_uri()}?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT state, COUNT(*) FROM trials GROUP BY state").fetchall())
    finally:
        db.close()


@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB tmpfs at tmp_path/disk; ``remount(options)`` changes it."""
    import os
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    mount = ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(disk)]
    if subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")

    def remount(options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(disk)], check=True)

    try:
        yield disk, remount
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_full_then_read_only_disk_is_one_line_and_the_study_resumes(
    small_disk, write_space, tmp_path
):
    import os
    import subprocess
    import sys

    disk, remount = small_disk
    runner = tmp_path / "runner.py"
    runner.write_text(FAKE_RUNNER)
    out = disk / "out"
    argv = [sys.executable, str(runner), "search", str(write_space()), "--out", str(out), "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def nasblocks(*args):
        proc = subprocess.run([*argv, *args], capture_output=True, text=True, env=env)
        return proc.returncode, proc.stderr.strip()

    code, err = nasblocks("--trials", "60")
    assert code == 2 and "\n" not in err and "Traceback" not in err, err
    assert "no space left on device" in err and err.endswith("again to resume"), err
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    finished = states(out).get("COMPLETE", 0)
    remount("size=64m")  # space freed
    assert nasblocks("--trials", "60") == (0, "")
    assert states(out)["COMPLETE"] == 60 > finished
    remount("ro")
    code, err = nasblocks("--trials", "61")
    assert code == 2 and err == f"--out {out}: cannot write here: read-only file system"
