"""Real (tiny) searches: the files a search leaves, determinism, the report."""

from __future__ import annotations

import csv

import pytest
import torch

import nasblocks
from nasblocks.search.engine import search
from nasblocks.search.outputs import results
from nasblocks.search.outputs.report import write_report
from nasblocks.search.outputs.results import load_study
from nasblocks.space import load_space


@pytest.fixture(scope="module")
def finished(tiny_search_file):
    """One real 3-trial search on tiny synthetic data, shared by the output tests."""
    outcome = search(
        load_space(tiny_search_file), out=tiny_search_file.parent / "out", progress=False
    )
    return outcome, tiny_search_file.parent / "out"


def test_outputs_are_written(finished):
    outcome, out = finished
    for name in (
        "trials.csv",
        "best.yaml",
        "best.pt",
        "report.md",
        "history.png",
        "acc_vs_params.png",
        "run.json",
        "space.yaml",
        "study.db",
    ):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [r["number"] for r in rows] == ["0", "1", "2"]
    for row in rows:
        assert row["state"] == "COMPLETE" and row["status"] in (
            "ok",
            "duplicate of 0",
            "duplicate of 1",
        )
        assert float(row["val_acc"]) >= 0 and int(row["n_params"]) > 0 and int(row["flops"]) > 0
        assert row["spec_hash"] and row["stages.widths[0]"] in ("4", "8")
        assert float(row["train.lr"]) > 0 and float(row["duration_s"]) > 0
    assert outcome.finished == 3 and outcome.test_acc is not None


def test_best_yaml_builds_and_best_pt_loads_into_it(finished):
    outcome, out = finished
    model = nasblocks.build(out / "best.yaml")
    state = torch.load(out / "best.pt", weights_only=True)
    model.load_state_dict(state, strict=True)
    model.eval()
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 4)
    study = load_study(out)
    best = results.best_trial(study)  # Optuna's best, fewer parameters breaking ties
    assert outcome.best_trial == best.number
    assert nasblocks.load_spec(out / "best.yaml").hash() == best.user_attrs["spec_hash"]
    # only the best trial's weights are kept
    kept = sorted(p.name for p in (out / "trials").glob("*.pt"))
    assert kept == [best.user_attrs["weights"].split("/")[-1]]
    stored = study.user_attrs["best_test"]
    assert stored["trial"] == best.number and 0 <= stored["test_acc"] <= 1


def test_report_has_best_plots_and_top_table(finished):
    outcome, out = finished
    text = (out / "report.md").read_text()
    assert "## Best architecture" in text and "Test accuracy: **" in text
    assert "![Optimization history](history.png)" in text
    assert "![Parameter importances" in text or "Parameter importances: not computed" in text
    assert "| # | trial | val_acc | params | FLOPs |" in text
    assert "stages.widths[0]=" in text


def test_report_is_rebuilt_from_the_study(finished, tmp_path):
    _, out = finished
    (out / "report.md").unlink()
    (out / "history.png").unlink()
    write_report(load_study(out), out)
    assert (out / "report.md").is_file() and (out / "history.png").is_file()


def test_same_seed_same_trials_and_metrics(write_space, tmp_path):
    path = write_space()
    runs = []
    for name in ("a", "b"):
        search(load_space(path, {"search.budget.trials": 2}), out=tmp_path / name, progress=False)
        study = load_study(tmp_path / name)
        runs.append(
            [(t.params, t.user_attrs["val_acc"], t.user_attrs["train_loss"]) for t in study.trials]
        )
    assert runs[0] == runs[1]
    other = tmp_path / "c"
    search(
        load_space(path, {"search.budget.trials": 2, "search.seed": 1}), out=other, progress=False
    )
    assert [t.params for t in load_study(other).trials] != [r[0] for r in runs[0]]


def test_too_few_completed_trials_still_give_a_report(write_space, tmp_path):
    path = write_space()
    search(load_space(path, {"search.budget.trials": 1}), out=tmp_path / "one", progress=False)
    text = (tmp_path / "one" / "report.md").read_text()
    assert (
        "Parameter importances: not computed — 1 completed trial; a ranking needs at least 10."
        in text
    )


def test_importances_say_how_many_trials_they_rest_on(tmp_path):
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    from nasblocks.search.outputs.report import param_importances

    study = optuna.create_study(direction="maximize")
    dist = {"lr": FloatDistribution(0.01, 0.1), "wd": FloatDistribution(0.0, 1.0)}
    for i in range(12):
        lr, wd = 0.01 + 0.0075 * i, (i * 7 % 12) / 12
        params = {"lr": lr, "wd": wd}
        study.add_trial(create_trial(value=lr, params=params, distributions=dist))
        imp, why = param_importances(study)
        if i + 1 < 10:
            assert imp == {} and why.endswith("a ranking needs at least 10")
    assert max(imp, key=imp.get) == "lr"  # the value is lr: fANOVA ranks it first


def test_best_of_equally_accurate_trials_has_fewer_parameters_then_the_lower_number():
    import optuna
    from optuna.trial import create_trial

    study = optuna.create_study(direction="maximize")
    for value, params in [(0.9, 181_000), (0.8, 10), (0.9, 122_000), (0.9, 122_000)]:
        study.add_trial(create_trial(value=value, user_attrs={"n_params": params}))
    assert results.best_trial(study).number == 2  # 122K beats 181K; of the two 122K, the first
    assert not results.worth_keeping(study, [0.9], 4, params=150_000)
    assert results.worth_keeping(study, [0.9], 4, params=100_000)
    assert not results.worth_keeping(study, [0.9], 4, params=122_000)  # a later equal


def test_history_plot_shows_the_spread_of_completed_trials():
    from nasblocks.search.outputs.report import history_limits

    lo, hi = history_limits([0.91, 0.93, 0.95])
    assert lo == pytest.approx(0.906) and hi == pytest.approx(0.954)  # not 0..1: 4 points show
    assert history_limits([]) is None
    lo, hi = history_limits([0.5])
    assert lo < 0.5 < hi and hi - lo < 0.01


@pytest.mark.parametrize("xs", [[31_000, 38_000, 45_000], [3_000, 3e6]])
def test_log_axes_label_a_few_plain_numbers(xs):
    """The accuracy-against-parameters plot: no 3x10^4 4x10^4 minor labels on top of each
    other, whatever the range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nasblocks.search.outputs.report import _log_axis

    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    ax.scatter(xs, [0.5] * len(xs))
    _log_axis(ax)
    fig.canvas.draw()
    major = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    minor = [t.get_text() for t in ax.get_xticklabels(minor=True) if t.get_text()]
    plt.close(fig)
    assert minor == [] and 3 <= len(major) <= 12 and len(set(major)) == len(major)
    assert not any("times" in m or "^" in m for m in major), major
    assert all(m[-1] in "KM" for m in major)
