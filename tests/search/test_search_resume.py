"""Resuming: finished trials kept, trials of a dead process failed and retried."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import optuna
import pytest
from optuna.trial import TrialState

from nasblocks.search.engine import search
from nasblocks.search.outputs import results
from nasblocks.search.outputs.results import load_study
from nasblocks.space import load_space

FLOAT_LR = {"search.train.lr": {"float": [0.01, 0.1]}}


def test_a_running_trial_left_in_storage_is_failed_and_retried(
    write_space, tmp_path, fake_trainer
):
    trainer = fake_trainer()
    path = write_space()
    out = tmp_path / "out"
    search(load_space(path, {"search.budget.trials": 2, **FLOAT_LR}), out=out, progress=False)
    first = [(t.number, t.params, t.value) for t in load_study(out).trials]

    # A process that died mid-trial: the trial stays RUNNING with an intermediate value.
    study = load_study(out)
    crashed = study.ask()
    crashed.suggest_categorical("stages.widths[0]", [4, 8])
    crashed.suggest_float("train.lr", 0.01, 0.1)
    crashed.report(0.3, 1)
    params = dict(study.trials[crashed.number].params)
    assert study.trials[crashed.number].state == TrialState.RUNNING

    calls_before = len(trainer.calls)
    outcome = search(
        load_space(path, {"search.budget.trials": 4, **FLOAT_LR}), out=out, progress=False
    )
    trials = load_study(out).trials
    assert [(t.number, t.params, t.value) for t in trials[:2]] == first  # kept, not re-run
    dead = trials[crashed.number]
    assert dead.state == TrialState.FAIL
    retry = [t for t in trials if t.user_attrs.get("retry_of") == crashed.number]
    assert retry[0].user_attrs["retry_reason"] == "left RUNNING by a process that stopped"
    assert results.status(dead, results.retry_reasons(trials)[dead.number]) == (
        "failed: left RUNNING by a process that stopped"
    )
    assert len(retry) == 1 and retry[0].params == params
    assert retry[0].state == TrialState.COMPLETE
    assert outcome.finished == 4
    assert len(trainer.calls) - calls_before == 2  # the retry and one new trial

    # Running again with the budget met does nothing.
    search(load_space(path, {"search.budget.trials": 4, **FLOAT_LR}), out=out, progress=False)
    assert len(load_study(out).trials) == len(trials)


def test_an_interrupted_search_writes_what_it_has_and_retries_the_trial(
    write_space, tmp_path, fake_trainer
):
    fake_trainer(fail={1: KeyboardInterrupt()})
    path = write_space()
    out = tmp_path / "out"
    space = load_space(path, {"search.budget.trials": 3, **FLOAT_LR})
    with pytest.raises(KeyboardInterrupt):
        search(space, out=out, progress=False)
    assert (out / "trials.csv").read_text().count("\n") == 3  # header + 2 trials
    interrupted = load_study(out).trials[1]
    assert interrupted.state == TrialState.FAIL and interrupted.user_attrs["interrupted"]
    outcome = search(space, out=out, progress=False)
    retry = [t for t in load_study(out).trials if t.user_attrs.get("retry_of") == 1]
    assert len(retry) == 1 and retry[0].params == interrupted.params
    assert outcome.finished == 3


SLOW_RUNNER = """
import sys, time
import nasblocks.search.engine as engine
from nasblocks.search.evaluators.trained import TrialOutcome

def slow(spec, config, data, report=None, *, keep_weights=True):
    for epoch in range(1, 1000):
        report(epoch, {"val_acc": 0.5, "train_loss": 1.0})
        time.sleep(0.2)

engine.run_trial = slow
from nasblocks.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_resume_after_sigkill_mid_trial(write_space, tmp_path, fake_trainer):
    path = write_space()
    out = tmp_path / "out"
    runner = tmp_path / "runner.py"
    runner.write_text(textwrap.dedent(SLOW_RUNNER))
    proc = subprocess.Popen(
        [
            sys.executable,
            str(runner),
            "search",
            str(path),
            "--out",
            str(out),
            "-q",
            "--set",
            "search.budget.trials=3",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    url = f"sqlite:///{out / 'study.db'}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the search never started a trial"
            running = _running_with_epochs(url)
            if running is not None:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    fake_trainer()
    outcome = search(load_space(path), out=out, progress=False)
    trials = load_study(out).trials
    killed = trials[running.number]
    assert killed.state == TrialState.FAIL and killed.intermediate_values
    retry = [t for t in trials if t.user_attrs.get("retry_of") == running.number]
    assert len(retry) == 1 and retry[0].params == running.params
    assert outcome.finished == 3
    assert (out / "best.yaml").is_file() and (out / "report.md").is_file()


def _running_with_epochs(url: str):
    try:
        study = optuna.load_study(study_name="space", storage=url)
    except Exception:  # not created yet
        return None
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.intermediate_values:
            return t
    return None
