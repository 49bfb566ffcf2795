"""``--workers N`` on one SQLite study: no lock errors, unique numbers, the exact budget, and
the study survives a killed worker and a killed supervisor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nasblocks.cli.main import main
from nasblocks.search.backends.storage import LEFT_RUNNING, worker_id
from nasblocks.search.backends.workers import LOCK_FILE, share_machine
from nasblocks.search.engine import search
from nasblocks.search.outputs.results import load_study
from nasblocks.space import load_space

ONE_EPOCH = {"search.budget.epochs": 1}  # on conftest's TINY space

# Worker processes start from this file (spawn runs it as __mp_main__), so they train with the
# fake too: EPOCHS epochs of EPOCH_S seconds, recording the process's torch threads (or, with
# FAIL set, an error). With HOLD set, every trial waits after its first epoch for as long as
# the file HOLD names exists: a test kills a worker while its trial is certainly running,
# however slow the machine.
RUNNER = """
import os, sys, time
import nasblocks.search.engine as engine
from nasblocks.search.evaluators.trained import TrialOutcome

def slow(spec, config, data, report=None, *, keep_weights=True):
    import torch
    if os.environ.get("FAIL"):
        raise RuntimeError("boom")
    epochs = int(os.environ["EPOCHS"])
    for epoch in range(1, epochs + 1):
        time.sleep(float(os.environ["EPOCH_S"]))
        report(epoch, {"val_acc": config.lr, "train_loss": 1.0})
        while os.environ.get("HOLD") and os.path.exists(os.environ["HOLD"]):
            time.sleep(0.05)
    metrics = {"val_acc": config.lr, "epochs": float(epochs), "duration_s": 0.0,
               "threads": float(torch.get_num_threads())}
    return TrialOutcome(metrics, False, None, None)

engine.run_trial = slow
if __name__ == "__main__":
    from nasblocks.cli.main import main
    sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture
def space_file(write_space):
    return write_space()  # TINY: synthetic 1x8x8 images, a 1-block net, lr searched


def check_study(out: Path, target: int, workers: int) -> list[optuna.trial.FrozenTrial]:
    """The invariants of a finished multi-worker search; returns its trials."""
    trials = load_study(out).trials
    assert [t.number for t in trials] == list(range(len(trials)))  # unique, no gaps
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == target  # exactly the budget: admission counts the running ones
    for t in finished:
        assert t.user_attrs["val_acc"] is not None and t.values
    assert worker_id() not in {t.user_attrs["worker"] for t in trials}  # all in workers
    rows = (out / "trials.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + len(trials)
    assert (out / "best.yaml").is_file() and (out / "report.md").is_file()
    assert not (out / LOCK_FILE).exists()
    return trials


@pytest.mark.parametrize(("workers", "target"), [(2, 4), (4, 8)])
def test_workers_share_one_sqlite_study(space_file, tmp_path, capfd, workers, target):
    out = tmp_path / "out"
    space = load_space(space_file, {**ONE_EPOCH, "search.budget.trials": target})
    outcome = search(space, out=out, workers=workers, progress=False)
    assert outcome.finished == target
    trials = check_study(out, target, workers)
    assert len({t.user_attrs["worker"] for t in trials}) >= 2  # they did run side by side
    err = capfd.readouterr().err
    assert "database is locked" not in err and "Traceback" not in err, err


def test_machine_shares():
    assert (
        share_machine(4, None, cores=2)
        == [(1, {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})] * 4
    )
    assert [t for t, _ in share_machine(2, None, cores=8)] == [4, 4]
    assert [t for t, _ in share_machine(3, None, cores=8)] == [2, 2, 2]
    assert [t for t, _ in share_machine(2, 1, cores=8)] == [1, 1]  # the space's threads cap it
    gpus = [env["CUDA_VISIBLE_DEVICES"] for _, env in share_machine(3, None, ["4", "6"], 6)]
    assert gpus == ["4", "6", "4"]


def start(runner: Path | None, space_file: Path, out: Path, *flags: str, **env: str):
    """``nasblocks search``, quiet, in a subprocess (through ``runner`` if given)."""
    program = [str(runner)] if runner else ["-m", "nasblocks.cli.main"]
    return subprocess.Popen(
        [sys.executable, *program, "search", str(space_file), "--out", str(out), "-q", *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
    )


def wait_for(proc, condition, what: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def kill_when(proc, condition, what: str):
    """Wait for ``condition()`` to be true (and return it), then SIGKILL ``proc``."""
    try:
        found = wait_for(proc, condition, what)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        return found
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()


def running_with_epochs(url: str, study_name: str = "space") -> list[optuna.trial.FrozenTrial]:
    """The trials running in some worker that has reported an epoch."""
    folder = Path(url.removeprefix("sqlite:///")).parent
    if url.startswith("sqlite:///") and not (folder / "run.json").exists():
        return []  # the search is still creating its study: opening it now would race
    try:
        study = optuna.load_study(study_name=study_name, storage=url)
    except Exception:  # not created yet
        return []
    return [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if t.intermediate_values and "worker" in t.user_attrs
    ]


@pytest.fixture
def runner(tmp_path):
    path = tmp_path / "runner.py"
    path.write_text(textwrap.dedent(RUNNER))
    return path


def test_a_killed_worker_is_replaced_and_its_trial_retried(runner, space_file, tmp_path):
    out = tmp_path / "out"
    hold = tmp_path / "hold"
    hold.touch()
    proc = start(
        runner,
        space_file,
        out,
        "--workers",
        "2",
        "--trials",
        "4",
        EPOCHS="2",
        EPOCH_S="0.1",
        HOLD=str(hold),
    )
    try:
        victim = wait_for(proc, lambda: running_with_epochs(sqlite(out)), "a running trial")[0]
        pid = int(victim.user_attrs["worker"].rpartition(":")[2])
        os.kill(pid, signal.SIGKILL)  # its trial waits on `hold`: it is still running
        wait_for(proc, lambda: not alive(pid), "the killed worker to be gone")
        hold.unlink()
        assert proc.wait(240) == 0, proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    trials = check_study(out, target=4, workers=2)
    killed = trials[victim.number]
    assert killed.state == TrialState.FAIL
    retry = [t for t in trials if t.user_attrs.get("retry_of") == victim.number]
    assert "was killed by SIGKILL" in retry[0].user_attrs["retry_reason"]
    assert len(retry) == 1 and retry[0].params == victim.params
    assert retry[0].state == TrialState.COMPLETE
    assert retry[0].user_attrs["worker"] != victim.user_attrs["worker"]  # a new process
    # every worker ran with its share of this machine's cores
    share = share_machine(2, None)[0][0]
    assert {t.user_attrs["threads"] for t in trials if "threads" in t.user_attrs} == {share}


def describe(out: Path) -> str:
    """The study's trials, one line each: what a failed assertion shows."""
    return "\n".join(
        f"{t.number} {t.state.name} {t.datetime_start} {t.datetime_complete} {t.user_attrs}"
        for t in load_study(out).trials
    )


def test_resume_after_the_supervisor_is_killed(runner, space_file, tmp_path):
    out = tmp_path / "out"
    flags = ("--workers", "2", "--trials", "4")
    proc = start(runner, space_file, out, *flags, EPOCHS="500", EPOCH_S="0.2")
    running = kill_when(
        proc, lambda: (r := running_with_epochs(sqlite(out))) and len(r) == 2 and r, "two"
    )
    pids = [int(t.user_attrs["worker"].rpartition(":")[2]) for t in running]
    deadline = time.monotonic() + 20
    while any(alive(pid) for pid in pids):  # the workers notice and exit
        assert time.monotonic() < deadline, "worker processes outlived their supervisor"
        time.sleep(0.2)

    space = load_space(space_file, {**ONE_EPOCH, "search.budget.trials": 4})
    outcome = search(space, out=out, workers=2, progress=False)  # real training
    assert outcome.finished == 4, describe(out)
    trials = check_study(out, target=4, workers=2)
    for dead in running:
        assert trials[dead.number].state == TrialState.FAIL
        retry = [t for t in trials if t.user_attrs.get("retry_of") == dead.number]
        assert retry[0].user_attrs["retry_reason"] == LEFT_RUNNING
        assert len(retry) == 1 and retry[0].params == dead.params


def test_failing_trials_stop_every_worker_with_one_line(runner, space_file, tmp_path):
    out = tmp_path / "out"
    flags = ("--workers", "2", "--trials", "20")
    proc = start(runner, space_file, out, *flags, EPOCHS="1", EPOCH_S="0", FAIL="1")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert err.decode().strip().splitlines()[-1] == (
        "5 trials in a row failed; the last one: RuntimeError: boom"
    )
    trials = load_study(out).trials
    assert all(t.state == TrialState.FAIL for t in trials)
    assert 5 <= len(trials) <= 6  # the other worker may have been in one more
    assert (out / "trials.csv").is_file() and not (out / LOCK_FILE).exists()


def test_progress_shows_the_workers_and_their_running_trials(space_file):
    import io

    from nasblocks.search.outputs.progress import Progress
    from nasblocks.train import DataHandle

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    trial.set_user_attr("train", {"epochs": 3})
    trial.report(0.75, 2)
    study.ask()
    stream = Terminal()
    settings = load_space(space_file).settings
    show = Progress(8, "space", settings, stream=stream, workers=4)
    show.start(study, DataHandle(dataset="synthetic"))
    show.running(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
    text = stream.getvalue()
    assert "search space: 8 trials on synthetic" in text and ", 4 workers" in text
    assert text.endswith("trial 0 epoch 2/3 val_acc 0.750, trial 1 running | 0s elapsed, ETA ?")


def sqlite(out: Path) -> str:
    return f"sqlite:///{out / 'study.db'}"


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--workers", "0"], "argument --workers: must be at least 1, got 0"),
        (["--workers", "two"], "argument --workers: expected a whole number, got 'two'"),
        (["--heartbeat", "0"], "argument --heartbeat: must be at least 1, got 0"),
    ],
)
def test_bad_worker_flags_are_one_line_and_exit_2(space_file, tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["search", str(space_file), "--out", str(tmp_path / "out"), *flags])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err, err


def test_a_bad_storage_url_is_one_line_and_exit_2(space_file, tmp_path, capsys):
    flags = ["--storage", "not a url", "--workers", "2"]
    assert main(["search", str(space_file), "--out", str(tmp_path / "out"), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("cannot open storage 'not a url'"), err


def test_ctrl_c_says_how_to_resume(runner, space_file, tmp_path):
    out = tmp_path / "out"
    url = f"sqlite:///{out / 'study.db'}"
    proc = start(runner, space_file, out, EPOCHS="100000", EPOCH_S="0.05")
    try:
        wait_for(proc, lambda: running_with_epochs(url), "a running trial")
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
        err = proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    assert proc.returncode == 130, err
    assert f"the finished trials are kept in {out}; run the same command again" in err
    assert "Traceback" not in err


def test_search_refuses_a_spec_without_search_nodes(tmp_path, capsys):
    from nasblocks.cli.main import main

    spec = tmp_path / "net.yaml"
    spec.write_text("name: net\ninput: [1, 8, 8]\nlayers:\n  - conv: 4\n")
    assert main(["search", str(spec), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no search node" in err
    assert f"nasblocks train {spec}" in err
    assert not (tmp_path / "out").exists()  # nothing was created


def test_eta_waits_for_a_trained_trial(space_file):
    """Duplicates and infeasible samples end at once: an ETA from them alone would promise
    seconds for a search of minutes."""
    import io

    from optuna.trial import create_trial

    from nasblocks.search.outputs.progress import Progress

    show = Progress(8, "space", load_space(space_file).settings, stream=io.StringIO())
    instant = create_trial(value=0.5, user_attrs={"duration_s": 0.0, "val_acc": 0.5})
    show(None, instant)  # type: ignore[arg-type]
    assert show.done == 1 and show._time_text().endswith("ETA ?")
    show.start_time -= 60  # a minute has passed
    show.trials_start -= 60
    show(None, create_trial(value=0.6, user_attrs={"duration_s": 59.0, "val_acc": 0.6}))
    assert show._time_text() == "1m00s elapsed, ETA 3m00s"  # 6 left at 30 s per trial so far
    # a supernet trained for 10 minutes before the trials: the ETA counts from the trials
    show.start_time -= 600
    assert show._time_text() == "11m00s elapsed, ETA 3m00s"
