"""The Ray Tune backend on a local Ray (2 CPUs): outputs, ASHA, conditional nodes, resume.

One Ray instance serves the whole module (starting Ray takes seconds); it declares one GPU
so that fractional-GPU trials are scheduled here too (the trials themselves train on the CPU).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import torch
from optuna.trial import TrialState

import nasblocks
from nasblocks.errors import SearchError
from nasblocks.search.candidate import DataInfo
from nasblocks.search.outputs.results import load_study
from nasblocks.space import load_space
from nasblocks.testing import HashTrainer

ray = pytest.importorskip("ray")
ray_backend = pytest.importorskip("nasblocks.search.backends.ray_backend")
from ray.tune import Callback  # noqa: E402

from nasblocks.search.backends import ray_results  # noqa: E402  (after the skip without Ray)
from nasblocks.search.backends.ray_backend import RayOptions  # noqa: E402
from nasblocks.search.backends.ray_results import TrialRecord  # noqa: E402
from nasblocks.search.backends.ray_trial import flat  # noqa: E402

# Digits, a basic / bottleneck conditional block (groups exist for bottlenecks only), a
# learning rate that does not learn, and a params limit that makes width 16 infeasible.
# Seed 21 draws, in order: trained, infeasible, trained, then two trials ASHA can stop.
ASHA_SPACE = """
name: asha
stem: {out_channels: 4, kernel_size: 3, stride: 1, pool: none}
stages:
  choice:
    - {block: basic, layers: [1], widths: [{choice: [4, 16], label: width}]}
    - {block: bottleneck, layers: [1], widths: [{choice: [4, 16], label: width}],
       groups: {choice: [1, 2]}, width_per_group: 16, expansion: 2}
  names: [basic, bottleneck]
search:
  data: {dataset: digits}
  train: {batch_size: 32, lr: {choice: [1.0e-6, 0.3]}, max_train_batches: 10, device: cpu}
  budget: {trials: 5, epochs: 3}
  constraints: {max_params: 1000}
  sampler: random
  pruner: {name: successive_halving, min_resource: 1, reduction_factor: 2}
  seed: 21
"""


def write(folder: Path, text: str, name: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray for the module: 2 CPUs and one declared GPU; shut down at the end."""
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def asha_run(ray_address, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ray")
    path = write(folder, ASHA_SPACE, "asha")
    out = folder / "out"
    outcome = ray_backend.search_ray(
        path, out=out, gpus_per_trial=0.5, max_concurrent=1, progress=False
    )
    return SimpleNamespace(path=path, out=out, outcome=outcome, study=load_study(out))


# -- one search, checked from several sides ---------------------------------------------------


def test_the_outputs_are_those_of_the_optuna_backend(asha_run):
    out, study = asha_run.out, asha_run.study
    assert asha_run.outcome.finished == 5  # evaluated; infeasible samples are recorded too
    rows = (out / "trials.csv").read_text().splitlines()
    assert len(rows) == 1 + len(study.trials)
    assert sum("infeasible:" in r for r in rows) == len(study.trials) - 5
    assert rows[0].startswith("number,state,status,val_acc,n_params,flops")
    model = nasblocks.build(nasblocks.load_spec(out / "best.yaml"))
    weights = torch.load(out / "best.pt", weights_only=True)
    model.load_state_dict(weights, strict=True)
    best = study.trials[asha_run.outcome.best_trial]
    assert best.state == TrialState.COMPLETE and best.user_attrs["weights"] in {
        f"trials/{p.name}" for p in (out / "trials").glob("*.pt")
    }
    assert "## " in (out / "report.md").read_text()
    assert study.user_attrs["backend"] == "ray"
    assert json.loads((out / "run.json").read_text())["study_name"] == "asha"
    assert (out / "ray" / "round-1").is_dir()


def test_parameters_are_the_spaces_nodes_conditionals_included(asha_run):
    space = load_space(asha_run.path)
    names = {n.name for n in space.nodes}
    kinds = set()
    for t in asha_run.study.trials:
        assert set(t.params) <= names
        kinds.add(t.params["stages"])
        groups = "stages.bottleneck.groups" in t.params
        assert groups == (t.params["stages"] == "bottleneck"), t.params
        spec = t.user_attrs["spec"]
        assert spec["stages"]["block"] == t.params["stages"]
        assert spec["stages"]["widths"] == [t.params["width"]]
        for name, dist in t.distributions.items():
            assert dist == ray_results.distribution(space.node(name))
    assert kinds == {"basic", "bottleneck"}


def test_epochs_are_reported_and_asha_stops_trials(asha_run):
    trials = asha_run.study.trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    infeasible = [t for t in trials if "infeasible" in t.user_attrs]
    stopped = [t for t in trials if "pruned_at" in t.user_attrs]
    assert complete and infeasible and stopped, [t.user_attrs.keys() for t in trials]
    for t in complete:
        assert sorted(t.intermediate_values) == [1, 2, 3]
        assert t.value == t.user_attrs["val_acc"] == t.intermediate_values[3]
        assert t.user_attrs["n_params"] <= 1000 and t.user_attrs["trial_key"]
    for t in stopped:
        assert t.state == TrialState.PRUNED and t.user_attrs["pruned_at"] < 3
        assert max(t.intermediate_values) == t.user_attrs["pruned_at"]
    for t in infeasible:  # never trained, and the Optuna samplers see a broken constraint
        assert t.state == TrialState.PRUNED and not t.intermediate_values
        assert "max_params" in t.user_attrs["infeasible"]
        assert t.constraints["max_params"] > 0 and "val_acc" not in t.user_attrs


def test_trials_get_their_share_of_a_gpu(asha_run):
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(str(asha_run.out / "ray" / "round-1"))
    bundles = {json.dumps(t.placement_group_factory.bundles) for t in analysis.trials}
    assert bundles == {json.dumps([{"CPU": 1.0, "GPU": 0.5}])}


class KillWorkerOnce(Callback):
    """Kills the worker process of the first trial that reports an epoch, once."""

    def __init__(self):
        self.killed = None

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if self.killed is None and result.get("epoch", 0) >= 1:
            self.killed = trial.trial_id
            os.kill(result["pid"], signal.SIGKILL)


def test_running_again_with_a_larger_budget_adds_a_round(asha_run, tmp_path, monkeypatch):
    out = tmp_path / "out"
    shutil.copytree(asha_run.out, out)
    before = [(t.params, t.state, t.user_attrs.get("ray_trial")) for t in asha_run.study.trials]
    space = load_space(asha_run.path, {"search.budget.trials": 7})
    killer = KillWorkerOnce()
    outcome = ray_backend.search_ray(space, out=out, progress=False, callbacks=[killer])
    trials = load_study(out).trials
    n = len(before)
    assert [(t.params, t.state, t.user_attrs.get("ray_trial")) for t in trials[:n]] == before
    assert outcome.finished == 7  # evaluated trials; infeasible ones come on top
    assert sum("infeasible" not in t.user_attrs for t in trials) == 7
    assert all("/round-0/" not in t.user_attrs["ray_trial"] for t in trials[n:])
    # Tune's trial names are nasblocks' numbers, over both rounds
    for t in trials:
        assert t.user_attrs["ray_trial"].split("/")[-1].startswith(f"trial_{t.number}_")
    assert (out / "trials.csv").read_text().count("\n") == 1 + len(trials)
    # the trial whose worker was killed ran again (Ray's FailureConfig) and finished
    assert killer.killed is not None
    (retried,) = [t for t in trials if t.user_attrs["ray_trial"].endswith(killer.killed)]
    assert retried.state in (TrialState.COMPLETE, TrialState.PRUNED), retried.user_attrs

    # with the budget met, running again rewrites the outputs without starting Ray
    monkeypatch.setattr(ray_backend, "connect", lambda opts: pytest.fail("connected to Ray"))
    (out / "trials.csv").unlink()
    again = ray_backend.search_ray(space, out=out, progress=False)
    assert again.finished == 7
    assert (out / "trials.csv").read_text().count("\n") == 1 + len(trials)


# -- a driver killed mid-search ---------------------------------------------------------------

KILLED_DRIVER = """
import os, signal, sys, time
from ray import tune
from nasblocks.search.backends.ray_backend import search_ray


class KillAfterFirstTrained(tune.Callback):
    # pickled with the Tuner: kill only the process that made it, not the one restoring
    def __init__(self):
        self.pid, self.trained = os.getpid(), 0

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.trained += trial.checkpoint is not None

    def on_step_end(self, iteration, trials, **info):
        if self.trained and os.getpid() == self.pid:
            time.sleep(1.0)  # Tune copies its saved state to OUT in a thread: let it finish
            os.kill(self.pid, signal.SIGKILL)


search_ray(sys.argv[1], out=sys.argv[2], address=sys.argv[3], max_concurrent=1, progress=False,
           callbacks=[KillAfterFirstTrained()])
"""


def test_a_killed_search_is_restored_and_finished(ray_address, tmp_path, write_space):
    path = write_space()  # conftest's TINY: 3 trials, always feasible, no pruner
    out = tmp_path / "out"
    driver = tmp_path / "driver.py"
    driver.write_text(KILLED_DRIVER)
    cmd = [sys.executable, str(driver), str(path), str(out), ray_address]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not (out / "trials.csv").exists()
    round1 = out / "ray" / "round-1"
    saved = ray_results.load_round(round1, 0)
    # trained trials whose weights Tune's saved state knows (the kill waited for the save)
    trained = {r.folder: r.last["started_at"] for r in saved if r.checkpoint is not None}
    assert trained and sum(r.finished for r in saved) < 3

    outcome = ray_backend.search_ray(path, out=out, progress=False)
    assert outcome.finished == 3 and not (out / "ray" / "round-2").exists()
    trials = load_study(out).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    kept = {t.user_attrs["ray_trial"]: t for t in trials}
    for folder, started in trained.items():  # trained before the kill: kept, not trained again
        t = kept[f"ray/round-1/{folder}"]
        assert t.datetime_start.timestamp() == pytest.approx(started, abs=1e-3)


# -- conversion of Ray results, without Ray ---------------------------------------------------


def record(status="TERMINATED", rows=(), **kwargs) -> TrialRecord:
    params = {"stages.widths[0]": 4, "train.lr": 0.1}
    return TrialRecord(0, 1, "abc", status, params, [dict(r) for r in rows], **kwargs)


@pytest.fixture
def tiny_space(write_space):
    return load_space(write_space())


INFO = DataInfo((1, 8, 8), 4)
EPOCH = {"epoch": 1, "val_acc": 0.4, "started_at": 100.0, "reported_at": 101.0}


@pytest.mark.parametrize(
    ("status", "last", "state", "attr"),
    [
        ("TERMINATED", {}, TrialState.PRUNED, "pruned_at"),
        (
            "TERMINATED",
            {"epoch": 0, "outcome": "diverged", "reason": "nan"},
            TrialState.PRUNED,
            "diverged",
        ),
        (
            "TERMINATED",
            {"epoch": 0, "outcome": "failed", "reason": "boom"},
            TrialState.FAIL,
            "error",
        ),
        ("ERROR", {}, TrialState.FAIL, "error"),
        ("RUNNING", {}, TrialState.FAIL, "interrupted"),
    ],
)
def test_how_each_ray_outcome_is_recorded(tiny_space, status, last, state, attr):
    rows = [EPOCH] + ([{**EPOCH, **last}] if last else [])
    trial = ray_results.to_frozen(
        record(status, rows, error="worker died" if status == "ERROR" else None), tiny_space, INFO
    )
    assert trial.state == state and attr in trial.user_attrs
    assert trial.intermediate_values == {1: 0.4}
    assert trial.params == {"stages.widths[0]": 4, "train.lr": 0.1}
    assert trial.user_attrs["spec"]["input"] == [1, 8, 8]
    assert trial.datetime_start.timestamp() == 100.0


def test_a_trial_that_reported_nothing_failed(tiny_space):
    trial = ray_results.to_frozen(record(rows=[]), tiny_space, INFO)
    assert trial.state == TrialState.FAIL and trial.user_attrs["error"]


def test_labels_with_a_slash_survive_tunes_nesting():
    assert flat({"a": {"b": 1}, "c.d[0]": 2}) == {"a/b": 1, "c.d[0]": 2}


# -- errors and the CLI entry point -----------------------------------------------------------


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        (RayOptions(cpus_per_trial=0), "--cpus-per-trial"),
        (RayOptions(gpus_per_trial=1.5), "--gpus-per-trial"),
        (RayOptions(max_concurrent=0), "--max-concurrent"),
        (RayOptions(address="nonsense"), "--address"),
        (RayOptions(address="127.0.0.1:1"), "cannot reach Ray"),
    ],
)
def test_bad_options_are_one_line_errors(opts, message, tmp_path, monkeypatch):
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with pytest.raises(SearchError, match=message) as err:
        opts.check()
        ray_backend.connect(opts)
    assert "\n" not in str(err.value)


def test_missing_ray_is_a_search_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(SearchError, match=r"pip install 'nasblocks\[ray\]'"):
        ray_backend.connect(RayOptions())


def test_a_study_of_the_optuna_backend_is_not_overwritten(tmp_path, write_space):
    path = write_space()
    out = tmp_path / "out"
    out.mkdir()
    study = optuna.create_study(study_name="space", storage=f"sqlite:///{out / 'study.db'}")
    study.add_trial(optuna.trial.create_trial(value=0.5))
    with pytest.raises(SearchError, match="Optuna backend"):
        ray_backend.search_ray(path, out=out, progress=False)


def test_the_cli_call_passes_the_flags(monkeypatch):
    from nasblocks.cli import search as search_cli

    seen = {}
    monkeypatch.setattr(ray_backend, "search_ray", lambda space, **kw: seen.update(kw))
    args = SimpleNamespace(
        out="o",
        storage=None,
        address="auto",
        cpus_per_trial=2.0,
        gpus_per_trial=0.25,
        max_concurrent=3,
        quiet=True,
        workers=None,
        fresh=False,
        backend="ray",
        ray_verbose=2,
    )
    search_cli._search("space", args)
    assert seen["ray_verbose"] == 2
    assert seen["address"] == "auto" and seen["max_concurrent"] == 3 and seen["out"] == "o"
    assert (seen["cpus_per_trial"], seen["gpus_per_trial"], seen["progress"]) == (2.0, 0.25, False)
    with pytest.raises(SearchError, match="--workers"):
        search_cli._search("space", SimpleNamespace(**{**vars(args), "workers": 2}))


def test_ray_records_what_the_pipeline_says_duplicates_trained_once(
    ray_address, dedup_space, tmp_path
):
    from conftest import check_pipeline_study

    from nasblocks.search.engine import search
    from nasblocks.testing import HashTrainer

    log = tmp_path / "calls"
    out = tmp_path / "ray-out"
    outcome = ray_backend.search_ray(
        dedup_space, out=out, max_concurrent=1, progress=False, trainer=HashTrainer(log=log)
    )
    assert outcome.finished == 6
    scores = check_pipeline_study(load_study(out), log.read_text().split())
    # the Optuna backend gives the same numbers for the same architectures
    here = tmp_path / "calls-here"
    search(dedup_space, out=tmp_path / "optuna-out", progress=False, trainer=HashTrainer(here))
    optuna_scores = check_pipeline_study(
        load_study(tmp_path / "optuna-out"), here.read_text().split()
    )
    common = scores.keys() & optuna_scores.keys()
    assert common and all(scores[k] == optuna_scores[k] for k in common)


def test_ray_is_quiet_by_default_and_logs_tune_to_a_file(
    ray_address, write_space, tiny_space_text, tmp_path, capfd
):
    """nasblocks' own line per trial on stderr; Tune's tables and header in OUT/ray/tune.log."""
    path = write_space(tiny_space_text(trials=2, epochs=1))
    out = tmp_path / "out"
    capfd.readouterr()
    outcome = ray_backend.search_ray(
        path, out=out, max_concurrent=1, progress=True, trainer=HashTrainer()
    )
    assert outcome.finished == 2
    captured = capfd.readouterr()
    shown = captured.out + captured.err
    assert "[ray 1/2] trial_" in shown and "[ray 2/2] trial_" in shown
    named = {int(m) for m in re.findall(r"\[ray \d/2\] trial_(\d+):", shown)}
    assert named == {t.number for t in load_study(out).trials}  # Tune's names = our numbers
    assert "Trial status" not in shown and "Tune" not in shown.replace("tune.log", "")
    assert (out / "ray" / "tune.log").is_file()


def test_a_local_ray_started_by_the_cli_prints_only_nasblocks_lines(write_space, tmp_path):
    """No Tune tables and no token notice: the local cluster keeps Ray's token authentication
    on (the secure default) and says nothing about it."""
    path = write_space()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["HOME"] = str(tmp_path)  # no saved token: Ray makes one and turns authentication on
    cmd = [sys.executable, "-m", "nasblocks", "search", str(path), "--backend", "ray"]
    cmd += ["--trials", "1", "--out", str(tmp_path / "out"), "--seed", "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert lines[0].startswith("[ray 1/1] trial_0: val_acc"), lines
    assert not any("Token" in line or "WARNING" in line for line in lines), lines
    assert (tmp_path / ".ray" / "auth_token").is_file()  # authentication stayed on


def test_trial_names_count_on_from_earlier_rounds_and_old_rounds_still_unpickle():
    trial = SimpleNamespace(experiment_tag="3_width=8", trial_id="a1b2")
    names = ray_backend.TrialNames(first=5)  # five trials in the earlier rounds: 0 ... 4
    assert (names(trial), names.folder(trial)) == ("trial_7", "trial_7_a1b2")
    # the name function rounds saved before TrialNames pickled with their TuneConfig
    assert ray_backend._trial_name(trial) == "trial_3_a1b2"
