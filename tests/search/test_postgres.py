"""Several ``nasblocks search`` commands on one PostgreSQL study (as on several machines), and
heartbeats: the trial of a worker killed mid-trial is failed and retried.

A real server is started on loopback (tests/pg_server.py); where none can be, the tests skip
with the reason.
"""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nasblocks.cli.main import main
from nasblocks.search.backends.storage import GRACE_BEATS
from nasblocks.search.engine import search
from nasblocks.space import load_space

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]
import pg_server  # noqa: E402
from test_workers import RUNNER, kill_when, running_with_epochs, start  # noqa: E402

SPACE = """
name: {name}
stem: {{out_channels: 4, kernel_size: 3, stride: 1, pool: none}}
stages:
  block: basic
  layers: [1]
  widths: [{{choice: [8, 16]}}]
search:
  data: {{dataset: synthetic, synthetic_size: 600, synthetic_shape: [1, 16, 16],
         synthetic_classes: 4}}
  train: {{batch_size: 16, lr: {{float: [0.01, 0.2], log: true}}, max_train_batches: 25,
          device: cpu}}
  budget: {{trials: {trials}, epochs: 1}}
  sampler: random
  pruner: none
"""


@pytest.fixture(scope="module")
def server():
    try:
        pg = pg_server.start()
    except pg_server.Unavailable as e:
        pytest.skip(f"PostgreSQL cannot be started here: {e}")
    yield pg
    pg.stop()


def space_file(tmp_path: Path, name: str, trials: int) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(SPACE.format(name=name, trials=trials)).lstrip())
    return path


def test_commands_on_two_machines_share_one_study(server, tmp_path):
    path = space_file(tmp_path, "shared", trials=12)
    url = server.url
    a = start(None, path, tmp_path / "a", "--storage", url, "--workers", "2")
    b = start(None, path, tmp_path / "b", "--storage", url)
    for proc in (a, b):
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err.decode()
        assert b"database" not in err and b"Traceback" not in err, err.decode()

    trials = optuna.load_study(study_name="shared", storage=url).trials
    assert [t.number for t in trials] == list(range(len(trials)))
    finished = [t for t in trials if t.state == TrialState.COMPLETE]
    # Admission is exact among a machine's workers; across machines the budget may be
    # overshot by at most (processes - 1) = 2.
    assert 12 <= len(finished) <= 14 and len(finished) == len(trials)
    assert all(t.user_attrs["val_acc"] is not None for t in finished)
    assert len({t.user_attrs["worker"] for t in trials}) == 3  # both workers of a, and b
    for out in ("a", "b"):
        assert (tmp_path / out / "best.yaml").is_file()
        assert (tmp_path / out / "trials.csv").read_text().count("\n") == 1 + len(trials)


def test_a_killed_workers_trial_is_failed_by_heartbeat_and_retried(server, tmp_path):
    path = space_file(tmp_path, "beats", trials=3)
    url = server.url
    runner = tmp_path / "runner.py"
    runner.write_text(textwrap.dedent(RUNNER))
    flags = ("--storage", url, "--heartbeat", "1")
    proc = start(runner, path, tmp_path / "killed", *flags, EPOCHS="100000", EPOCH_S="0.2")
    victim = kill_when(proc, lambda: running_with_epochs(url, "beats"), "a running trial")[0]
    killed_at = time.monotonic()

    study = optuna.load_study(study_name="beats", storage=url)
    assert study.trials[victim.number].state == TrialState.RUNNING  # nobody knows yet
    space = load_space(path)
    outcome = search(space, out=tmp_path / "rerun", storage=url, heartbeat=1, progress=False)
    # it waited for the grace period, counted from the last heartbeat: at most one interval
    # (1 s) before the kill
    assert time.monotonic() - killed_at >= GRACE_BEATS - 1
    assert outcome.finished == 3
    trials = optuna.load_study(study_name="beats", storage=url).trials
    dead = trials[victim.number]
    assert dead.state == TrialState.FAIL
    retry = [t for t in trials if t.user_attrs.get("retry_of") == victim.number]
    assert retry[0].user_attrs["retry_reason"] == (
        f"no heartbeat for {GRACE_BEATS} s: its worker stopped"
    )
    assert len(retry) == 1 and retry[0].params == victim.params
    assert retry[0].state == TrialState.COMPLETE
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == 3


def test_an_unreachable_server_is_one_line_without_the_password(tmp_path, capsys):
    path = space_file(tmp_path, "nowhere", trials=1)
    url = "postgresql://nasblocks:s3cret@127.0.0.1:1/nasblocks"
    assert main(["search", str(path), "--storage", url, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "s3cret" not in err, err
    assert err.startswith("cannot open storage 'postgresql://nasblocks@127.0.0.1:1/nasblocks'")
