"""Search spaces: spec files whose values may be search nodes (torch- and optuna-free).

>>> from nasblocks.space import load_space, RandomSource
>>> space = load_space("search_spaces/resnet_like.yaml")
>>> sample = space.sample(RandomSource(seed=0))
>>> sample.spec["stages"]["block"], sample.params["stages.block"]
"""

from __future__ import annotations

from nasblocks.space.nodes import Choice, FloatRange, IntRange, Node, ParamSource
from nasblocks.space.settings import SearchSettings
from nasblocks.space.space import (
    FirstSource,
    FixedSource,
    RandomSource,
    Sample,
    SearchSpace,
    load_space,
)

__all__ = [
    "Choice",
    "FirstSource",
    "FixedSource",
    "FloatRange",
    "IntRange",
    "Node",
    "ParamSource",
    "RandomSource",
    "Sample",
    "SearchSettings",
    "SearchSpace",
    "load_space",
]
