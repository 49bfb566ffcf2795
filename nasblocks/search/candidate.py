"""Sample -> candidate: everything decided about a trial before any training.

The concrete spec is validated by :func:`nasblocks.load_spec` (shapes included), the training
settings by ``TrainConfig``, then params / FLOPs (and latency when asked for) are measured and
the constraints checked. A sample that fails any of these raises :class:`Infeasible` and is
never trained. Pure and backend-agnostic, like
:func:`~nasblocks.search.evaluators.trained.run_trial`.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from nasblocks.errors import SpecError
from nasblocks.space import Sample, SearchSettings
from nasblocks.spec import Spec, load_spec

if TYPE_CHECKING:
    from nasblocks.train import TrainConfig


class Infeasible(Exception):
    """A sample that will not be trained. ``violations`` maps a constraint to how far it is
    broken (relative, > 0), as Optuna's ``Trial.set_constraint`` wants."""

    def __init__(self, reason: str, violations: dict[str, float] | None = None) -> None:
        self.reason = reason
        self.violations = violations or {"valid": 1.0}
        super().__init__(reason)


@dataclass(frozen=True)
class DataInfo:
    """What a concrete spec takes from the dataset: image shape and class count."""

    input_shape: tuple[int, int, int]
    num_classes: int


@dataclass(frozen=True)
class Candidate:
    """A feasible sample, ready to train."""

    sample: Sample
    spec: Spec
    config: TrainConfig
    spec_hash: str
    key: str  # spec hash + training config: identical keys give identical results
    params: int
    flops: int
    latency_ms: float | None = None

    @property
    def costs(self) -> dict[str, float]:
        out: dict[str, float] = {"params": float(self.params), "flops": float(self.flops)}
        if self.latency_ms is not None:
            out["latency_ms"] = self.latency_ms
        return out


def complete_spec(spec: dict[str, Any], data: DataInfo, settings: SearchSettings) -> dict:
    """The sampled spec with what the data decides: ``num_classes`` always, ``input`` unless
    the space sets it (channels from the data, size from ``data.input_size`` or the data)."""
    out = copy.deepcopy(spec)
    out["num_classes"] = data.num_classes
    if "input" not in out:
        size = settings.data.input_size
        if size is None:
            hw = list(data.input_shape[1:])
        else:
            hw = [size, size] if isinstance(size, int) else list(size)
        out["input"] = [data.input_shape[0], *hw]
    return out


def train_settings(sample_train: dict[str, Any], settings: SearchSettings) -> dict[str, Any]:
    """Sampled training settings with the search's defaults (epochs, seed) filled in."""
    out = {"epochs": settings.budget.epochs, "seed": settings.seed}
    out.update(copy.deepcopy(sample_train))
    return out


def make_candidate(
    sample: Sample,
    settings: SearchSettings,
    data: DataInfo,
    *,
    measure_latency: bool | None = None,
) -> Candidate:
    """Validate and measure a sample; raise :class:`Infeasible` if it must not be trained."""
    from nasblocks.train import TrainConfig

    concrete = complete_spec(sample.spec, data, settings)
    try:
        spec = load_spec(concrete)
    except SpecError as e:
        raise Infeasible(f"invalid architecture: {e.message} at {_where(e)}") from None
    try:
        config = TrainConfig.model_validate(train_settings(sample.train, settings))
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise Infeasible(f"invalid training settings: train.{loc}: {first['msg']}") from None
    spec_hash = spec.hash()
    key = trial_key(spec_hash, config)
    params, flops = count(spec)
    if params == 0:
        raise Infeasible("invalid architecture: no trainable parameters, nothing to train")
    violations: dict[str, float] = {}
    limits = settings.constraints
    reasons = []
    for name, value, limit in (
        ("params", params, limits.max_params),
        ("flops", flops, limits.max_flops),
    ):
        if limit is not None and value > limit:
            violations[f"max_{name}"] = value / limit - 1.0
            reasons.append(f"{name} {value:,} > max_{name} {limit:,.0f}")
    latency = None
    wanted = measure_latency or (measure_latency is None and settings.needs_latency)
    if wanted and not violations:  # no need to time what is already out
        latency = measure(spec, config, settings)
        limit = limits.max_latency_ms
        if limit is not None and latency > limit:
            violations["max_latency_ms"] = latency / limit - 1.0
            reasons.append(f"latency {latency:.2f} ms > max_latency_ms {limit} ms")
    if violations:
        raise Infeasible("constraint: " + "; ".join(reasons), violations)
    return Candidate(sample, spec, config, spec_hash, key, params, flops, latency)


def trial_key(spec_hash: str, config: TrainConfig) -> str:
    """Same architecture and same training settings -> same key.

    Where and how fast it runs (device, loader workers, torch.compile) does not change what a
    trial learns, so it is not part of the key.
    """
    train = config.model_dump(mode="json", exclude={"device", "loader_workers", "compile"})
    text = json.dumps({"spec": spec_hash, "train": train}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def count(spec: Spec) -> tuple[int, int]:
    """``(parameters, FLOPs)`` — FLOPs as multiply-accumulates, nasblocks.analysis' convention."""
    from nasblocks.analysis import count as analysis_count

    return analysis_count(spec)


def measure(spec: Spec, config: TrainConfig, settings: SearchSettings) -> float:
    """Median forward latency (ms) on the training device."""
    from nasblocks.analysis.latency import measure_latency
    from nasblocks.train import build_model
    from nasblocks.train.trainer import resolve_device

    lat = settings.latency
    model = build_model(spec, config.seed)
    return measure_latency(
        model,
        spec.input_shape,
        batch_size=lat.batch_size,
        device=resolve_device(config.device),
        warmup=lat.warmup,
        repeats=lat.repeats,
    )


def _where(e: SpecError) -> str:
    from nasblocks.errors import format_path

    return format_path(e.path)
