"""The ``search:`` section of a space file: data, training, budget, objectives and engine.

It is not part of the network spec. Every field has a default, so a space file may omit the
section; every field can be overridden on the command line (``--set search.budget.trials=5``).
Only ``train`` may hold search nodes (training settings are searched like the architecture).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SamplerName = Literal["tpe", "random", "nsga2", "grid", "evolution", "local_search"]
PrunerName = Literal["none", "median", "successive_halving", "hyperband"]
Metric = Literal["val_acc", "params", "flops", "latency_ms"]
Direction = Literal["maximize", "minimize"]
_VAL_ACC: Any = ["val_acc"]  # the default objectives (pydantic copies it per model)

MAX_SEED = 2**32 - 1  # Optuna's samplers are seeded through numpy: 0 .. 2**32 - 1

DIRECTIONS: dict[str, Direction] = {
    "val_acc": "maximize",
    "params": "minimize",
    "flops": "minimize",
    "latency_ms": "minimize",
}


def _name(objective: Any) -> str:
    return objective.metric if isinstance(objective, TableObjective) else str(objective)


class _Model(BaseModel):
    # strict: `true` is not 1, 3.0 is not a whole number, "5" is not a number; NaN and
    # infinities are never meant (`timeout: .inf` would be no limit at all)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class DataSettings(_Model):
    """Which data trials train on; images are resized to the spec's input."""

    dataset: str = Field(
        "digits",
        description="digits (offline default), synthetic, cifar10, "
        "cifar100, mnist, fashion_mnist, svhn or imagefolder:PATH.",
    )
    root: str | None = Field(
        None,
        description="Where dataset files live (default "
        "$NASBLOCKS_DATA or ~/.cache/nasblocks/datasets).",
    )
    download: bool = Field(True, description="Let torchvision download missing files.")
    val_fraction: float = Field(
        0.1,
        gt=0,
        lt=1,
        description="Share of the training images held out for validation (fixed by the seed).",
    )
    train_per_class: int | None = Field(
        None,
        ge=1,
        description="Keep only this many training images per class (a low-data task that "
        "separates architectures better); validation and test splits are unchanged.",
    )
    input_size: int | list[int] | None = Field(
        None,
        description="Image size [H, W] (or one number) for spaces that do not set "
        "`input`; channels come from the dataset. Default: the dataset's own size.",
    )
    synthetic_size: int = Field(2000, ge=20, description="Images of the synthetic dataset.")
    synthetic_shape: list[Annotated[int, Field(ge=1)]] = Field(
        [3, 32, 32], min_length=3, max_length=3, description="[C, H, W] of the synthetic dataset."
    )
    synthetic_classes: int = Field(10, ge=2, description="Classes of the synthetic dataset.")

    @field_validator("input_size")
    @classmethod
    def _size(cls, v: int | list[int] | None) -> int | list[int] | None:
        if v is None:
            return v
        size = [v, v] if isinstance(v, int) else v
        if len(size) != 2 or min(size) < 1:
            raise ValueError("input_size is a positive number or [H, W]")
        return v


class Budget(_Model):
    """How much search: finished trials, wall-clock limit, epochs per trial."""

    trials: int = Field(
        20,
        ge=1,
        description="Stop when this many architectures have been evaluated (trials "
        "complete or pruned; infeasible samples are recorded but not counted), counting "
        "earlier runs of the study.",
    )
    timeout: float | None = Field(
        None, gt=0, description="Stop starting trials after this many seconds of this run."
    )
    epochs: int = Field(3, ge=1, description="Epochs per trial (train.epochs overrides).")


class TableObjective(_Model):
    """An objective read from a table column, joined on ``search.evaluate``'s key: latency on
    a device, energy, size (a table search only). Its name is the column's."""

    metric: str = Field(min_length=1, description="The column (e.g. pixel3_ms).")
    table: str | None = Field(
        None,
        description="CSV file (relative to the space file, else to the working directory); "
        "default: the searched table.",
    )
    direction: Direction = Field("minimize", description="minimize (a cost) or maximize.")


class Constraints(_Model):
    """Limits checked before training: a sample that breaks one is infeasible, never trained."""

    max_params: float | None = Field(None, gt=0, description="Most trainable parameters.")
    max_flops: float | None = Field(
        None, gt=0, description="Most FLOPs of one forward pass of one image."
    )
    max_latency_ms: float | None = Field(
        None,
        gt=0,
        description="Most milliseconds of one forward pass, measured on the training device.",
    )


class LatencySettings(_Model):
    """How latency is measured (only when an objective or constraint needs it)."""

    batch_size: int = Field(1, ge=1, description="Images per measured forward pass.")
    warmup: int = Field(3, ge=0, description="Untimed passes first.")
    repeats: int = Field(10, ge=1, description="Timed passes; the median is reported.")


class SamplerSettings(_Model):
    """Optuna sampler. ``tpe`` (default), ``random``, ``nsga2``, ``grid``, ``evolution``
    (regularized evolution, Real et al. 2019) or ``local_search`` (White et al. 2021).

    The start-up phase is a choice: tpe and local_search begin with ``n_startup_trials``
    uniform random samples (seeded); evolution fills its first population with them."""

    name: SamplerName = Field("tpe", description="Sampler name.")
    n_startup_trials: int | None = Field(
        None,
        ge=0,
        description="tpe, local_search, evolution: uniform random trials before the "
        "sampler's own rule is used (default 10 for tpe and local_search, the population "
        "size for evolution).",
    )
    population_size: int | None = Field(
        None, ge=2, description="nsga2 / evolution: population size (default 50 / 10)."
    )
    tournament_size: int | None = Field(
        None, ge=1, description="evolution: population members drawn per tournament (default 3)."
    )
    restart: Literal["random", "perturb"] = Field(
        "random",
        description="local_search, at a local optimum: climb again from a random "
        "architecture (White et al. 2021), or from the best one found with two random moves "
        "(iterated local search, Lourenco et al. 2003).",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v


class PrunerSettings(_Model):
    """Optuna pruner, fed the validation accuracy after every epoch (single objective only)."""

    name: PrunerName = Field("median", description="Pruner name.")
    n_startup_trials: int = Field(
        3, ge=0, description="median: trials finished before any is pruned."
    )
    n_warmup_steps: int = Field(
        1, ge=0, description="median: epochs before a trial can be pruned."
    )
    min_resource: int = Field(
        1, ge=1, description="successive_halving / hyperband: epochs every trial gets."
    )
    reduction_factor: int = Field(
        3,
        ge=2,
        description="successive_halving / hyperband: "
        "1 / share of trials promoted to the next rung.",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, v: Any) -> Any:
        if v is None or v is False:
            return {"name": "none"}
        return {"name": v} if isinstance(v, str) else v


class ReportedMetric(_Model):
    """The column reported for the best architecture, joined on the same key."""

    table: str | None = Field(
        None,
        description="CSV file (relative to the space file, else to the working "
        "directory); default: the searched table.",
    )
    metric: str = Field(min_length=1, description="The column reported (e.g. test_acc).")


class Evaluation(_Model):
    """Look trials up in a table of trained architectures instead of training them
    (a tabular benchmark such as NAS-Bench-201); see :mod:`nasblocks.search.evaluators.table`."""

    table: str = Field(
        min_length=1,
        description="CSV file, one row per architecture (relative to the space file, "
        "else to the working directory).",
    )
    metric: str = Field(min_length=1, description="The column searched (maximised).")
    key: str = Field(
        min_length=1,
        description="The key of a sample: text in which {name} is the value of the node "
        "named name (its label, for a choice).",
    )
    key_column: str = Field("arch", min_length=1, description="The column holding the keys.")
    seed_column: str = Field(
        "seed",
        min_length=1,
        description="Where the table has this column, an architecture may have one row per "
        "training run; a query reads one run, chosen from the search seed and the "
        "architecture (the same every time; another --seed, another run).",
    )
    report: ReportedMetric | None = Field(
        None,
        description="What is reported for the best, apart from what the sampler sees: the "
        "benchmark's protocol searches validation accuracy and reports test accuracy. "
        "Default: the searched table and metric.",
    )


class SupernetSettings(_Model):
    """Score trials with a weight-sharing supernet instead of training each one: the space is
    compiled into one network holding every subnet's weights (:mod:`nasblocks.supernet`),
    trained once, and every trial is its subnet's validation accuracy with inherited weights
    after batch norm recalibration."""

    strategy: Literal["spos", "sandwich", "gdas"] = Field(
        "spos",
        description="spos: one uniformly drawn subnet per step (single path, Guo et al. "
        "2020); sandwich: the largest, the smallest and two random subnets per step, their "
        "gradients summed (BigNAS, Yu et al. 2020; OFA), for spaces with widths and depths; "
        "gdas: differentiable, a subnet drawn per step by hard Gumbel-softmax on learned "
        "architecture logits that follow the validation loss (Dong & Yang 2019), for spaces "
        "whose every node is a choice between blocks; the first trial is its argmax.",
    )
    epochs: int = Field(30, ge=1, description="Epochs of supernet training.")
    arch_lr: float = Field(
        3e-4,
        gt=0,
        description="gdas only: Adam's learning rate for the architecture logits (GDAS's "
        "3e-4, betas (0.5, 0.999), weight decay 1e-3).",
    )
    train: dict[str, Any] = Field(
        default_factory=dict,
        description="Training settings of the supernet (TrainConfig fields). A search.train "
        "node not given here is fixed at its first option, or a range's (geometric, for log) "
        "midpoint; the run's first line says which.",
    )
    recalibration_batches: int = Field(
        10,
        ge=1,
        description="Training batches a subnet's batch norm statistics are estimated on "
        "before it is scored.",
    )
    val_images: int | None = Field(
        None,
        ge=1,
        description="Score subnets on the first this-many validation images (None: all).",
    )
    discovery: int = Field(
        30,
        ge=0,
        description="Random subnets surveyed when the supernet is compiled, beside every "
        "option of every structural choice at both ends of every numeric node: the shared "
        "tensors take the largest shape seen.",
    )


class Warmup(_Model):
    """Proxy warm-up: score ``candidates`` random samples with a zero-cost proxy and evaluate
    the ``keep`` best first (Abdelfattah et al. 2021); see
    :mod:`nasblocks.search.samplers.warmup`."""

    proxy: str = Field(
        "synflow", min_length=1, description="A proxy of nasblocks.proxies (synflow, params ...)."
    )
    candidates: int = Field(200, ge=1, le=100_000, description="Random samples scored.")
    keep: int = Field(10, ge=1, description="Best-scored samples evaluated first.")


class SearchSettings(_Model):
    """Everything about a search that is not the network."""

    data: DataSettings = Field(default_factory=DataSettings, description=DataSettings.__doc__)
    train: dict[str, Any] = Field(
        default_factory=dict,
        description="Training settings (fields of TrainConfig: lr, "
        "batch_size, optimizer, weight_decay, augment ...); values may be search nodes.",
    )
    budget: Budget = Field(default_factory=Budget, description=Budget.__doc__)
    evaluate: Evaluation | None = Field(
        None, description="Table evaluation instead of training (see Evaluation)."
    )
    warmup: Warmup | None = Field(
        None, description="Proxy warm-up before the first trial (see Warmup)."
    )
    supernet: SupernetSettings | None = Field(
        None,
        description="One-shot search: trials scored by a weight-sharing supernet "
        "(see SupernetSettings).",
    )
    objectives: list[Metric | TableObjective] | dict[Metric, Direction] = Field(
        _VAL_ACC,
        description="What to optimise: val_acc alone, or with params / flops / "
        "latency_ms for a multi-objective search (a list uses natural directions; a mapping "
        "gives them). In a table search, {metric: COLUMN, table: FILE, direction: minimize} "
        "reads an objective from a table joined on the key (latency on a device, say).",
    )
    reference_point: dict[str, float] | None = Field(
        None,
        description="Multi-objective: the point the Pareto front's hypervolume is measured "
        "from, by objective name (default: the median of each objective over the trials).",
    )
    constraints: Constraints = Field(default_factory=Constraints, description=Constraints.__doc__)
    latency: LatencySettings = Field(
        default_factory=LatencySettings, description=LatencySettings.__doc__
    )
    sampler: SamplerSettings = Field(
        default_factory=SamplerSettings, description=SamplerSettings.__doc__
    )
    pruner: PrunerSettings = Field(
        default_factory=PrunerSettings, description=PrunerSettings.__doc__
    )
    seed: int = Field(
        0,
        ge=0,
        le=MAX_SEED,
        description="Seeds the sampler, the data split, weight init and "
        "training: same seed, same trials (0 .. 2**32 - 1).",
    )
    threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads torch may use in this process (torch.set_num_threads); "
        "default: torch's choice. Small nets on small images gain little from more threads, "
        "and one thread does not stall when other processes share the cores.",
    )
    study_name: str | None = Field(
        None, min_length=1, description="Optuna study name (default: the space file's name)."
    )
    storage: str | None = Field(
        None, description="Optuna storage URL (default sqlite:///OUT/study.db)."
    )

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, v: list | dict) -> list | dict:
        names = list(v) if isinstance(v, dict) else [_name(o) for o in v]
        if not names:
            raise ValueError("give at least one objective")
        if len(set(names)) != len(names):
            raise ValueError("an objective is listed twice")
        if "val_acc" not in names:
            raise ValueError("val_acc must be one of the objectives (the others are costs)")
        return v

    @model_validator(mode="after")
    def _reference(self) -> SearchSettings:
        given = self.reference_point
        if given is not None:
            names = [m for m, _ in self.directions()]
            if sorted(given) != sorted(names):
                raise ValueError(
                    f"reference_point gives {sorted(given)}; it needs one value for each "
                    f"objective: {names}"
                )
        return self

    def directions(self) -> list[tuple[str, Direction]]:
        """``[(metric, direction), ...]`` in objective order."""
        if isinstance(self.objectives, dict):
            return list(self.objectives.items())
        return [
            (o.metric, o.direction) if isinstance(o, TableObjective) else (o, DIRECTIONS[o])
            for o in self.objectives
        ]

    @property
    def table_objectives(self) -> list[TableObjective]:
        """The objectives read from table columns (a table search's)."""
        if isinstance(self.objectives, dict):
            return []
        return [o for o in self.objectives if isinstance(o, TableObjective)]

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def needs_latency(self) -> bool:
        names = [m for m, _ in self.directions()]
        return (
            "latency_ms" in names
            and not any(o.metric == "latency_ms" for o in self.table_objectives)
        ) or self.constraints.max_latency_ms is not None
