"""`nasblocks search / report / train`: exit codes, one-line errors, outputs, progress."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from nasblocks.cli.main import main


@pytest.fixture
def tiny(tmp_path, tiny_space_text):
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny_space_text(trials=2, epochs=1))
    return path


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("name: x\nstages: {layers: [{int: [3, 1]}]}\n", ":2:20: stages.layers[0].int: low 3"),
        (
            "name: x\nstages: {layers: [1], blok: {choice: [a]}}\n",
            ":2:23: stages.blok: unknown field 'blok'",
        ),
        ("name: x\nstages: {layers: [1]\n", ":3:1: (root): YAML syntax error"),
        (
            "name: x\nstages: {layers: [1]}\nsearch: {sampler: {name: tpe, seeds: 1}}\n",
            ":3:31: search.sampler.seeds: unknown field 'seeds'",
        ),
    ],
)
def test_bad_spaces_are_one_located_line_and_exit_2(tmp_path, capsys, text, where):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["search", str(path), "--out", str(tmp_path / "out")]) == 2
    err = one_line_error(capsys)
    assert err.startswith(str(path)) and where in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--trials", "0"], "--trials: Input should be greater than or equal to 1 (got 0)"),
        (["--set", "stages.widths"], "--set expects PATH=VALUE"),
        (
            ["--set", "search.budget.epochs=many"],
            "--set search.budget.epochs=many: Input should be a valid integer",
        ),
        (["--dataset", "cifar11"], "--dataset: unknown dataset 'cifar11' (did you mean 'cifar1"),
        (["--storage", "nosuchdb://x"], "cannot open storage 'nosuchdb://x'"),
        (["--set", "search.train.lr=-1"], "Input should be greater than 0"),
    ],
)
def test_impossible_settings_exit_2(tiny, tmp_path, capsys, flags, message):
    assert main(["search", str(tiny), "--out", str(tmp_path / "out"), *flags]) == 2
    assert message in one_line_error(capsys)


@pytest.mark.parametrize(
    "flags",
    [
        ["--trials", "two"],
        ["--sampler", "bayes"],
        ["--pruner", "asha"],
        ["--device", "tpu"],
        ["--bogus"],
    ],
)
def test_bad_flags_exit_2(tiny, capsys, flags):
    with pytest.raises(SystemExit) as e:
        main(["search", str(tiny), *flags])
    assert e.value.code == 2
    assert "error:" in one_line_error(capsys)


def test_search_then_report_then_train(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        main(
            [
                "search",
                str(tiny),
                "--out",
                str(out),
                "--seed",
                "3",
                "--sampler",
                "evolution",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "search tiny: 2 trials on synthetic, sampler evolution" in err
    assert "[1/2] trial 0 ok val_acc" in err and "[2/2] trial 1" in err  # not a TTY: log lines
    assert "test accuracy of the best:" in err
    for name in ("trials.csv", "best.yaml", "best.pt", "report.md", "study.db"):
        assert (out / name).is_file()
    import json

    run = json.loads((out / "run.json").read_text())
    assert run["settings"]["seed"] == 3 and run["settings"]["sampler"]["name"] == "evolution"
    assert run["settings"]["train"]["device"] == "cpu"

    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report.md").is_file()
    assert capsys.readouterr().out.strip() == str(out / "report.md")

    trained = tmp_path / "trained"
    assert (
        main(
            [
                "train",
                str(out / "best.yaml"),
                "--dataset",
                "synthetic",
                "--epochs",
                "1",
                "--max-train-batches",
                "2",
                "--out",
                str(trained),
                "-q",
            ]
        )
        == 0
    )
    assert (trained / "metrics.json").is_file() and (trained / "weights.pt").is_file()
    assert "test_acc" in capsys.readouterr().out

    # the budget is met: running the same command again trains nothing more
    assert main(["search", str(tiny), "--out", str(out), "--seed", "3", "-q"]) == 0
    assert len((out / "trials.csv").read_text().strip().splitlines()) == 3


def test_report_of_a_folder_without_a_search_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no run.json here" in one_line_error(capsys)


def test_train_a_missing_spec_exits_2(tmp_path, capsys):
    assert main(["train", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file" in one_line_error(capsys)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_live_line_on_a_terminal_shows_progress_best_and_eta():
    import optuna

    from nasblocks.search.outputs.progress import Progress
    from nasblocks.space import SearchSettings
    from nasblocks.train import DataHandle

    stream = _Terminal()
    progress = Progress(4, "demo", SearchSettings(), stream=stream)
    study = optuna.create_study(direction="maximize")
    progress.start(study, DataHandle("digits"))
    progress.trial_started(0)
    progress.epoch(0, 1, 3, {"val_acc": 0.5})
    trial = study.ask()
    study.tell(trial, 0.75)
    progress(study, study.trials[0])
    progress.close()
    text = stream.getvalue()
    assert "\r\x1b[K" in text
    assert "trial 0 epoch 1/3 val_acc 0.500" in text
    assert "[1/4] | best 0.7500 (#0)" in text and "ETA" in text and "elapsed" in text


def test_commands_register_without_importing_torch_or_optuna():
    code = (
        "import sys; from nasblocks.cli.main import make_parser; make_parser(); "
        "print(sorted(m for m in ('torch', 'optuna') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_the_set_examples_of_search_help_apply_to_the_shipped_space(capsys):
    import re
    from pathlib import Path

    from nasblocks.cli.main import main
    from nasblocks.space import load_space
    from nasblocks.spec.overrides import parse_assignment

    with pytest.raises(SystemExit):
        main(["search", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    examples = re.search(r"override any value of the space, e\.g\. (\S+) or (\S+)", text)
    assert examples, text
    space_file = Path(__file__).parents[2] / "search_spaces" / "resnet_like.yaml"
    overrides = dict(parse_assignment(e) for e in examples.groups())
    space = load_space(space_file, overrides)  # applies as written
    assert "stem.kernel_size" not in {n.name for n in space.nodes}
    assert space.settings.budget.epochs == 5


def test_parameter_names_inside_named_alternatives_are_yaml_like():
    from pathlib import Path

    from nasblocks.space import load_space

    space = load_space(Path(__file__).parents[2] / "search_spaces" / "resnet_like.yaml")
    names = {n.name for n in space.nodes}
    assert {"stages.bottleneck.groups", "stages.bottleneck.width_per_group"} <= names
    assert not any("choice[" in n for n in names)


def test_a_space_whose_input_channels_do_not_match_the_data_is_refused(tmp_path, capsys):
    from nasblocks.cli.main import main

    space = tmp_path / "s.yaml"
    space.write_text(
        "name: s\ninput: [3, 32, 32]\n"
        "stem: {out_channels: {choice: [4, 8]}, kernel_size: 3, stride: 1, pool: none}\n"
        "stages: {block: basic, layers: [1], widths: [8]}\n"
        "search:\n  data: {dataset: digits}\n"
    )
    assert main(["search", str(space), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{space}:2:1: input: the space's input has 3 channels")
    assert "1x8x8 (digits)" in err and not (tmp_path / "out").exists()
