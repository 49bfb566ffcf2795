"""One-shot search end to end: the supernet trains with the one trainer, trials are scored by
it, the outputs are plain, a killed supernet resumes, bad input is one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nasblocks.cli.main import main
from nasblocks.search import search
from nasblocks.search.candidate import DataInfo
from nasblocks.search.outputs.results import load_study
from nasblocks.space import load_space
from nasblocks.supernet.training import fixed_training, train_supernet
from nasblocks.train.handle import DataHandle

SPACE = """
name: tiny_oneshot
input: [1, 8, 8]
layers:
  - {name: stem, conv_bn_act: {out_channels: {choice: [8, 16]}, kernel_size: {choice: [3, 5]}}}
  - name: b1
    block:
      choice: [{basic: 16}, {separable: {out_channels: 16}}, identity]
      names: [basic, sep, skip]
  - {name: b2, basic: 16, repeat: {int: [1, 2]}}
  - {name: pool, global_avgpool: {flatten: true}}
  - {name: fc, linear: $num_classes}
search:
  data: {dataset: digits}
  train: {batch_size: 64, lr: {float: [0.01, 0.2], log: true}, device: cpu}
  supernet: {epochs: EPOCHS, discovery: 8, STRATEGY CAP}
  budget: {trials: 6}
  sampler: random
  pruner: none
  threads: 1
"""


def write(tmp_path: Path, epochs: int = 2, strategy: str = "spos", cap: int | None = 8) -> Path:
    """The tiny space; ``cap``: training batches an epoch (None: all 21)."""
    path = tmp_path / "space.yaml"
    text = SPACE.replace("EPOCHS", str(epochs)).replace("STRATEGY", f"strategy: {strategy}")
    text = text.replace(" CAP", f", train: {{max_train_batches: {cap}}}" if cap else "")
    path.write_text(text)
    return path


def test_search_scores_trials_with_inherited_weights_and_train_reproduces(tmp_path, capsys):
    space = write(tmp_path)
    out = tmp_path / "out"
    outcome = search(space, out=out, progress=False)
    assert outcome.finished == 6
    for name in ("supernet.pt", "supernet.json", "best.yaml", "best.pt", "trials.csv"):
        assert (out / name).is_file(), name
    best = (out / "best.yaml").read_text()
    assert "supernet" not in best and "choice" not in best  # a plain spec
    record = json.loads((out / "supernet.json").read_text())
    assert record["strategy"] == "spos" and len(record["history"]) == 2
    lr = record["fixed_training"]["train.lr"]
    assert lr == pytest.approx((0.01 * 0.2) ** 0.5)  # the log range's geometric midpoint
    study = load_study(out)
    assert "train.lr" not in study.best_trial.params  # not searched: fixed for the supernet
    assert all(t.user_attrs.get("inherited") for t in study.trials if "val_acc" in t.user_attrs)
    # the recorded score again, from best.yaml and best.pt alone
    capsys.readouterr()
    assert main(["train", str(out), "--inherit", "--epochs", "0"]) == 0
    line = capsys.readouterr().out
    recorded = study.best_value
    assert f"val_acc {recorded:.4f} (the search recorded {recorded:.4f})" in line
    # a second run with more trials reuses the supernet: no epoch is trained again
    mtime = (out / "supernet.pt").stat().st_mtime_ns
    again = search(space, out=out, progress=False, overrides={"search.budget.trials": 9})
    assert again.finished == 9
    assert (out / "supernet.pt").stat().st_mtime_ns == mtime


def test_sandwich_runs_several_paths_a_step(tmp_path):
    space, _ = fixed_training(load_space(write(tmp_path, epochs=1, strategy="sandwich")))
    data = DataHandle.from_settings(space.settings.data, 0)
    net, record = train_supernet(
        space, data, DataInfo((1, 8, 8), 10), tmp_path, log=lambda _: None
    )
    assert net.paths_per_step == 4 and record["paths_per_step"] == 4
    steps = 8  # the cap
    # four draws per step (validation draws from its own path), plus the draws skipped for
    # shapes the small survey did not see
    assert 4 * steps <= net.paths.step <= 4 * steps + net.skipped
    assert 0 < record["history"][0]["train_loss"] < 3.0  # finite: four paths, one step


def trained_whole_and_interrupted(space, data, info, tmp_path: Path):
    """The supernet trained in one go (in ``a``) and stopped after epoch 2 then resumed (in
    ``b``); returns both, the resumed run's record and its log lines."""
    whole, _ = train_supernet(space, data, info, tmp_path / "a", log=lambda _: None)

    class Stop(Exception):
        pass

    def stop_after_two(line: str) -> None:
        if line.startswith("supernet epoch 2/"):
            raise Stop

    with pytest.raises(Stop):
        train_supernet(space, data, info, tmp_path / "b", log=stop_after_two)
    lines: list[str] = []
    resumed, record = train_supernet(space, data, info, tmp_path / "b", log=lines.append)
    return whole, resumed, record, lines


def test_an_interrupted_supernet_resumes_to_the_same_weights(tmp_path):
    space, _ = fixed_training(load_space(write(tmp_path, epochs=3)))
    data = DataHandle.from_settings(space.settings.data, 0)
    info = DataInfo((1, 8, 8), 10)
    whole, resumed, record, lines = trained_whole_and_interrupted(space, data, info, tmp_path)
    assert lines[0].startswith("supernet: resuming after epoch 2 of 3")
    assert len(record["history"]) == 3
    for a, b in zip(whole.weights, resumed.weights, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def _state(path: Path) -> int:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=False)["epoch"])
    except Exception:
        return 0


def test_kill_9_during_supernet_training_resumes_from_the_last_epoch(tmp_path):
    space = write(tmp_path, epochs=30)  # 8 batches an epoch: the kill lands mid-run
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "nasblocks", "search", str(space), "--out", str(out)]
    cmd += ["--trials", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while _state(out / "supernet.pt") < 1 and proc.poll() is None:  # waits on the file
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = _state(out / "supernet.pt")
    assert 1 <= done < 30
    cmd += ["--set", "search.supernet.train.max_train_batches=2"]  # another supernet
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    # another batch cap is another supernet: refused in one line, nothing overwritten
    assert run.returncode == 2, run.stdout + run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert "Traceback" not in run.stderr and "the training settings" in last, last
    assert _state(out / "supernet.pt") == done
    run = subprocess.run(cmd[:-2], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr
    assert f"supernet: resuming after epoch {done} of 30" in run.stdout + run.stderr
    assert _state(out / "supernet.pt") == 30


def test_a_nan_loss_stops_with_one_line(tmp_path, capsys):
    space = write(tmp_path, epochs=3)
    args = ["search", str(space), "--out", str(tmp_path / "out"), "--set"]
    assert main([*args, "search.supernet.train.lr=1.0e+30"]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err
    assert last.startswith("supernet training diverged in epoch 1: mean training loss is nan")
    assert last.endswith("no epoch finished; lower search.supernet.train.lr")


def test_table_and_supernet_together_is_one_located_line(tmp_path, capsys):
    space = write(tmp_path)
    text = space.read_text().replace(
        "  budget:", "  evaluate: {table: t.csv, metric: acc, key: k}\n  budget:"
    )
    space.write_text(text)
    assert main(["validate", str(space)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.rstrip().endswith("or by a supernet, not both")
    assert err.startswith(f"{space}:16:3: search.supernet: ")


def test_out_of_memory_names_the_subnet(tmp_path, monkeypatch, capsys):
    from nasblocks.supernet.network import Supernet

    def forward(self, x):
        self.last = self.draw()
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Supernet, "forward", forward)
    space = write(tmp_path)
    assert main(["search", str(space), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err
    assert last.startswith("supernet out of memory training on cpu with batch_size=64")
    assert "(subnet " in last and "'layers[1].block': " in last


def test_a_plugin_block_shares_its_weights_by_the_same_rule(tmp_path):
    """A block nasblocks does not know is sliced like any other: its tensors take the first
    channels of the widest option, and what the supernet scores is what builds."""
    import nasblocks
    from nasblocks.testing import check_block  # noqa: F401 (the plugin API)

    sys.path.insert(0, str(tmp_path))
    (tmp_path / "denseplug.py").write_text(
        "import torch\nfrom pydantic import Field\nfrom torch import nn\n"
        "from nasblocks import BlockSpec, register_block\n\n"
        "class Dense(nn.Module):\n"
        "    def __init__(self, in_channels, growth=8):\n"
        "        super().__init__()\n"
        "        self.conv = nn.Conv2d(in_channels, growth, 3, padding=1)\n"
        "    def forward(self, x):\n"
        "        return torch.cat([x, self.conv(x)], 1)\n\n"
        "@register_block('dense_plug')\n"
        "class DenseSpec(BlockSpec):\n"
        "    module = Dense\n"
        "    shorthand = 'growth'\n"
        "    growth: int = Field(8, ge=1)\n"
        "    def output_shape(self, in_shape):\n"
        "        c, h, w = in_shape\n"
        "        return (c + self.growth, h, w)\n"
    )
    try:
        import denseplug  # noqa: F401
    finally:
        sys.path.remove(str(tmp_path))
    text = (
        "name: plug\ninput: [1, 8, 8]\nnum_classes: 10\nlayers:\n"
        "  - {conv: {out_channels: {choice: [4, 8]}}}\n"
        "  - {dense_plug: {choice: [4, 8, 12]}}\n"
        "  - {global_avgpool: {flatten: true}}\n  - {linear: $num_classes}\n"
        "search: {supernet: {epochs: 1}}\n"
    )
    from nasblocks.supernet import Supernet

    space = load_space({**__import__("yaml").safe_load(text)})
    net = Supernet(space, DataInfo((1, 8, 8), 10), discovery=8)
    for seed in range(6):
        sub = net.draw(net.random_path(seed))
        stats = net.recalibrate(sub, [(torch.randn(4, 1, 8, 8), None)])
        net.eval()
        net.activate(sub, stats)
        x = torch.randn(2, 1, 8, 8)
        model = nasblocks.build(sub.spec)
        model.load_state_dict(net.extract(sub, stats), strict=True)
        with torch.no_grad():
            torch.testing.assert_close(net(x), model.eval()(x), rtol=1e-5, atol=1e-6)
    shapes = {key[0]: net.shapes[i] for key, i in net.slot_of.items()}
    assert shapes["1.conv.weight"] == (12, 8, 3, 3)  # the widest growth, the widest input


def test_bad_supernet_training_settings_are_one_located_line(tmp_path, capsys):
    space = write(tmp_path, cap=None)
    text = space.read_text()
    space.write_text(text.replace("discovery: 8", "discovery: 8, train: {lrr: 0.1}"))
    assert main(["validate", str(space)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"{space}:16:")
    assert "search.supernet.train.lrr: unknown training setting 'lrr'" in err
    space.write_text(text.replace("discovery: 8", "discovery: 8, train: {lr: -1.0}"))
    assert main(["search", str(space), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"{space}:16:") and "search.supernet.train.lr: " in last
    assert not (tmp_path / "out" / "run.json").exists()  # refused before anything is written


def test_worker_processes_share_the_trained_supernet(tmp_path):
    """--workers N: each process loads the one checkpoint and scores its trials with it."""
    space = write(tmp_path, epochs=1)
    out = tmp_path / "out"
    first = search(space, out=out, progress=False, overrides={"search.budget.trials": 2})
    assert first.finished == 2
    mtime = (out / "supernet.pt").stat().st_mtime_ns
    outcome = search(space, out=out, progress=False, workers=2)
    assert outcome.finished == 6
    assert (out / "supernet.pt").stat().st_mtime_ns == mtime  # trained once
    study = load_study(out)
    scored = [t for t in study.trials if "val_acc" in t.user_attrs]
    assert len(scored) >= 6 and all(t.user_attrs["inherited"] for t in scored)
