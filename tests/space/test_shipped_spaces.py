"""The spaces in search_spaces/: they load, reach every option, and mostly sample valid nets."""

from __future__ import annotations

from pathlib import Path

import pytest

from nasblocks.errors import SpecError
from nasblocks.space import FirstSource, RandomSource, load_space
from nasblocks.space.nodes import Choice
from nasblocks.spec import load_spec

SPACES = sorted((Path(__file__).parents[2] / "search_spaces").glob("*.yaml"))


def _one_shot(path: Path) -> bool:
    return load_space(path).settings.supernet is not None


TRAINED = [  # not table or one-shot spaces
    p for p in SPACES if load_space(p).settings.evaluate is None and not _one_shot(p)
]
ONE_SHOT = [p for p in SPACES if _one_shot(p)]


def test_the_four_promised_spaces_ship():
    assert {p.stem for p in SPACES} >= {"resnet_like", "vgg_like", "inception_like", "mobile_like"}


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_every_option_of_every_choice_is_drawn(path):
    """No dead knob: random draws reach every label of every choice, nested ones included."""
    space = load_space(path)
    seen: dict[str, set] = {}
    for seed in range(200):
        for name, value in space.sample(RandomSource(seed)).params.items():
            seen.setdefault(name, set()).add(value)
    for node in space.nodes:
        if isinstance(node, Choice):
            assert seen.get(node.name) == set(node.labels), node.name


@pytest.mark.parametrize("path", TRAINED, ids=lambda p: p.stem)
def test_trained_space_samples_valid_networks(path):
    space = load_space(path)
    assert space.settings.data.dataset == "digits"
    # a minute or so on two cores: at most 3 epochs of the 1375 training digits, or as many
    # images seen in a low-data task (train_per_class)
    data = space.settings.data
    images = 10 * data.train_per_class if data.train_per_class else 1375
    assert 10 <= space.settings.budget.trials <= 20
    assert space.settings.budget.epochs * images <= 3 * 1375
    valid = 0
    sources = [FirstSource(), *(RandomSource(seed) for seed in range(40))]
    for source in sources:
        spec = dict(space.sample(source).spec, num_classes=10, input=[1, 8, 8])
        try:
            load_spec(spec)
            valid += 1
        except SpecError:
            pass
    assert valid >= 0.8 * len(sources)


@pytest.mark.parametrize("path", ONE_SHOT, ids=lambda p: p.stem)
def test_one_shot_spaces_take_cifar_sized_images_and_score_on_held_out_ones(path):
    space = load_space(path)
    assert space.template["input"] == [3, 32, 32] and space.template["num_classes"] == 10
    settings = space.settings
    assert settings.supernet is not None and settings.supernet.val_images is not None
    assert settings.data.dataset == "cifar10" and settings.data.val_fraction >= 0.1
    for seed in range(40):
        load_spec(space.sample(RandomSource(seed)).spec)  # every sample builds


def test_the_one_shot_nas_bench_201_cell_is_the_table_spaces_cell():
    root = Path(__file__).parents[2] / "search_spaces"
    table, oneshot = (
        load_space(root / f) for f in ("nas_bench_201.yaml", "nas_bench_201_oneshot.yaml")
    )
    assert table.template["layers"] == oneshot.template["layers"]
    assert [n.definition() for n in table.nodes] == [n.definition() for n in oneshot.nodes]
    assert [n.name for n in oneshot.nodes] == [
        f"edge_{e}" for e in ("1_0", "2_0", "2_1", "3_0", "3_1", "3_2")
    ]


def test_resnet_like_searches_what_the_issue_lists():
    space = load_space(Path(__file__).parents[2] / "search_spaces" / "resnet_like.yaml")
    names = {n.name for n in space.nodes}
    assert {
        "stages",
        "blocks1",
        "blocks3",
        "width1",
        "attention",
        "stages.bottleneck.groups",
        "stages.bottleneck.width_per_group",
        "stem.out_channels",
        "train.lr",
    } <= names
    assert space.node("stages").labels == ("basic", "bottleneck")
    assert set(space.node("attention").labels) == {"none", "se", "sk", "cbam"}
    assert space.node("blocks3").low == 0  # the third stage may vanish
