"""The one-shot part of ``report.md``: how the supernet was trained, and its curve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RECORD = "supernet.json"


def supernet_section(out: Path, save, figure) -> list[str]:
    """Lines for the report when ``out`` holds a supernet's record (``[]`` otherwise);
    ``supernet.png`` is drawn with the report's own ``save`` / ``figure``."""
    path = Path(out) / RECORD
    if not path.is_file():
        return []
    record: dict[str, Any] = json.loads(path.read_text())
    history = record.get("history") or []
    train = record.get("train") or {}
    fixed = record.get("fixed_training") or {}
    lines = [
        "## Supernet",
        "",
        f"Trials were scored by a weight-sharing supernet ({record['slots']} shared tensors, "
        f"{record['parameters']:,} parameters) trained for {record['epochs']} epochs with the "
        f"**{record['strategy']}** strategy ({record['paths_per_step']} path(s) a step), "
        f"lr {train.get('lr', 0):.4g}, batch {train.get('batch_size')}, {train.get('optimizer')}, "
        f"{train.get('schedule')} schedule. Each subnet was scored on the validation images "
        f"after its batch norm statistics were estimated on "
        f"{record['recalibration_batches']} fixed training batches.",
        "",
    ]
    if fixed:
        values = ", ".join(
            f"`{k}` = {v:.4g}" if isinstance(v, float) else f"`{k}` = {v}"
            for k, v in fixed.items()
        )
        lines += [f"Training settings fixed for the supernet (not searched): {values}.", ""]
    if record.get("skipped_draws"):
        lines += [
            f"{record['skipped_draws']} training draws had shapes the compile-time survey did "
            "not see and were drawn again (raise `search.supernet.discovery`).",
            "",
        ]
    lines += _architecture(record)
    if history and _plot(history, Path(out) / "supernet.png", save, figure):
        lines += ["![Supernet training](supernet.png)", ""]
    return lines


def _architecture(record: dict[str, Any]) -> list[str]:
    """GDAS's result: softmax(alpha) of every node, its argmax in bold (trial 0)."""
    alpha: dict[str, dict[str, float]] = record.get("alpha") or {}
    if not alpha:
        return []
    options = list(dict.fromkeys(o for probs in alpha.values() for o in probs))
    lines = [
        f"Architecture weights at the end (softmax of alpha, learning rate "
        f"{record.get('arch_lr', 0):.3g}); the argmax of every node, in bold, was the "
        "study's first trial:",
        "",
        "| node | " + " | ".join(options) + " |",
        "|---|" + "---:|" * len(options),
    ]
    for node, probs in alpha.items():
        best = max(probs, key=lambda o: probs[o])
        cells = [
            ("" if o not in probs else f"**{probs[o]:.3f}**" if o == best else f"{probs[o]:.3f}")
            for o in options
        ]
        lines.append(f"| `{node}` | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _plot(history: list[dict[str, float]], path: Path, save, figure) -> bool:
    fig = figure()
    ax = fig.add_subplot(1, 1, 1)
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="training loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (drawn subnets)")
    twin = ax.twinx()
    twin.plot(
        epochs,
        [h["val_acc"] for h in history],
        "s--",
        color="tab:orange",
        label="val acc, random subnets (batch statistics)",
    )
    twin.set_ylabel("validation accuracy")
    fig.legend(loc="upper center", fontsize="small")
    save(fig, path)
    return True
