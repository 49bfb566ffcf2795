"""What ``nasblocks validate SPACE`` says of a search space before anything trains.

:func:`survey` builds (shape-checks, without torch) every architecture of a small space, or a
seeded sample of a large one, and reports the space's size, the fraction that builds, why the
others do not, and the options of a choice that never build at all: an option every network
with it fails is a mistake in the space (an error at that option's line), a space of which
some networks fail is legitimate but wasteful (a warning with the reason and an example).
"""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from nasblocks.errors import SpecError
from nasblocks.search.candidate import DataInfo, complete_spec
from nasblocks.space import FixedSource, RandomSource, SearchSpace
from nasblocks.space.nodes import Choice, FloatRange

ENUMERATE_UP_TO = 4096
"""Spaces with at most this many combinations are enumerated, larger ones sampled."""
SAMPLES = 256


@dataclass
class DeadOption:
    """A choice's option none of whose networks builds."""

    node: Choice
    index: int
    reason: str
    tried: int


@dataclass
class Survey:
    size: int | None  # distinct architectures + settings; None: continuous or too many
    combinations: int | None  # product of the node grids (None: a continuous node)
    tried: int
    built: int
    exhaustive: bool
    failures: Counter = field(default_factory=Counter)  # reason -> count
    examples: dict[str, dict[str, Any]] = field(default_factory=dict)  # reason -> params
    dead: list[DeadOption] = field(default_factory=list)
    params: tuple[int, int] | None = None  # fewest, most parameters of those that build

    @property
    def fraction(self) -> float:
        return self.built / self.tried if self.tried else 0.0


def _combinations(space: SearchSpace) -> int | None:
    if any(isinstance(n, FloatRange) and n.step is None for n in space.nodes):
        return None
    try:
        return math.prod(len(n.grid()) for n in space.nodes)
    except SpecError:  # a grid too large to list
        return None


def _samples(space: SearchSpace, combos: int | None) -> tuple[list[dict[str, Any]], bool]:
    """Parameter sets to try: every combination of a small space, else seeded draws."""
    if combos is not None and combos <= ENUMERATE_UP_TO:
        names = [n.name for n in space.nodes]
        grids = [n.grid() for n in space.nodes]
        return [
            dict(zip(names, values, strict=True)) for values in itertools.product(*grids)
        ], True
    out = []
    for seed in range(SAMPLES):
        out.append(space.sample(RandomSource(space.settings.seed + seed)).params)
    return out, False


def survey(space: SearchSpace, info: DataInfo) -> Survey:
    """Shape-check the space's networks for data of ``info``'s shape and classes."""
    from nasblocks.analysis import count
    from nasblocks.spec import load_spec

    combos = _combinations(space)
    tried_params, exhaustive = _samples(space, combos)
    seen: dict[str, str | None] = {}  # network -> failure reason (None: builds)
    choices = [n for n in space.nodes if isinstance(n, Choice)]
    per_option: dict[tuple[str, int], list[str | None]] = {}
    result = Survey(None, combos, 0, 0, exhaustive)
    sizes: list[int] = []
    counted: set[str] = set()  # an enumeration meets a network in many combinations (nodes
    # off its path take every value): each is counted once
    for params in tried_params:
        sample = space.sample(FixedSource(params))
        spec = complete_spec(sample.spec, info, space.settings)
        key = json.dumps([spec, sample.train], sort_keys=True, default=str)
        if key not in seen:
            try:
                loaded = load_spec(spec)
                seen[key] = None
                sizes.append(count(loaded)[0])
            except SpecError as e:
                # one reason whatever the layer's input: drop the "(layer ..., input ...)" tail
                seen[key] = f"{_path(e)}{e.message.split(' (layer ')[0]}"
        reason = seen[key]
        used = sample.params  # only the nodes on this sample's path
        for node in choices:
            if node.name in used:
                index = _index(node, used[node.name])
                per_option.setdefault((node.name, index), []).append(reason)
        if not exhaustive or key not in counted:
            result.tried += 1
            if reason is None:
                result.built += 1
            else:
                result.failures[reason] += 1
                result.examples.setdefault(reason, dict(used))
            counted.add(key)
    result.size = len(seen) if exhaustive else None
    if sizes:
        result.params = (min(sizes), max(sizes))
    for node in choices:
        for index in range(len(node.labels)):
            reasons = per_option.get((node.name, index), [])
            if (
                reasons
                and all(r is not None for r in reasons)
                and (exhaustive or len(reasons) >= 8)
            ):
                common = Counter(reasons).most_common(1)[0][0]
                result.dead.append(DeadOption(node, index, str(common), len(reasons)))
    return result


def _index(node: Choice, label: Any) -> int:
    for i, lab in enumerate(node.labels):
        if lab == label and type(lab) is type(label):
            return i
    return -1


def _path(e: SpecError) -> str:
    from nasblocks.errors import format_path

    return f"{format_path(e.path)}: " if e.path else ""


def shown(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())
