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
    if history and _plot(history, Path(out) / "supernet.png", save, figure):
        lines += ["![Supernet training](supernet.png)", ""]
    return lines


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
