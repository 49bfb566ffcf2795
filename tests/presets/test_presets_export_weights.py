"""Exported presets rebuild the same model; weights load from files and from torchvision."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
import torch
import torchvision
import yaml

import nasblocks
from nasblocks import NasBlocksError, SpecError, preset_names


def export(name: str, tmp_path: Path, **overrides) -> Path:
    """What ``nasblocks export NAME`` writes: the spec's raw mapping as plain YAML."""
    path = tmp_path / f"{name}_exported.yaml"
    raw = nasblocks.load_spec(name, overrides or None).raw
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def test_every_exported_preset_is_the_same_architecture(tmp_path: Path) -> None:
    for name in preset_names():
        assert nasblocks.load_spec(export(name, tmp_path)).hash() == (
            nasblocks.load_spec(name).hash()
        ), name


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("googlenet", {"input_size": 64, "num_classes": 5}),
        ("shufflenet_v2_x0_5", {"input_size": 64}),
        ("unet", {"input_size": [32, 32], "vars.deconv": True}),
        ("resnet50", {"input_size": 64, "stages.groups": 32, "stages.width_per_group": 4}),
    ],
)
def test_exported_preset_builds_the_identical_model(
    name: str, overrides: dict, tmp_path: Path
) -> None:
    path = export(name, tmp_path, **overrides)
    torch.manual_seed(0)
    original = nasblocks.build(name, **overrides).eval()
    torch.manual_seed(0)
    rebuilt = nasblocks.build(path).eval()
    a, b = original.state_dict(), rebuilt.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert original.code == rebuilt.code  # the same generated forward
    x = torch.randn(2, *rebuilt.spec.input_shape)
    with torch.no_grad():
        assert torch.equal(original(x), rebuilt(x))


# -- weights=PATH ---------------------------------------------------------------------------


def test_weights_from_a_saved_state_dict(tmp_path: Path) -> None:
    trained = nasblocks.build("resnet18", num_classes=10, input_size=32)
    for p in trained.parameters():
        p.data.normal_()
    path = tmp_path / "resnet18.pt"
    torch.save(trained.state_dict(), path)
    loaded = nasblocks.build("resnet18", num_classes=10, input_size=32, weights=path)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in trained.state_dict().items())

    # a checkpoint wrapping the state dict, with DataParallel's "module." prefix
    wrapped = {
        "epoch": 3,
        "state_dict": {f"module.{k}": v for k, v in trained.state_dict().items()},
    }
    torch.save(wrapped, tmp_path / "ckpt.pt")
    again = nasblocks.build(
        "resnet18", num_classes=10, input_size=32, weights=tmp_path / "ckpt.pt"
    )
    assert torch.equal(again.fc.weight, trained.fc.weight)


def test_weights_from_torchvision_state_dict_file(tmp_path: Path) -> None:
    theirs = torchvision.models.mobilenet_v2(num_classes=4).eval()
    path = tmp_path / "mnv2.pth"
    torch.save(theirs.state_dict(), path)
    ours = nasblocks.build("mobilenet_v2", num_classes=4, input_size=64, weights=str(path)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))


def test_weights_that_do_not_fit_name_the_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "r18.pt"
    torch.save(nasblocks.build("resnet18", num_classes=10, input_size=32).state_dict(), path)
    with pytest.raises(SpecError) as info:
        nasblocks.build("resnet18", num_classes=7, input_size=32, weights=path)
    message = str(info.value)
    assert "fc.weight (10, 512) vs (7, 512)" in message and str(path) in message
    with pytest.raises(SpecError, match=r"missing keys: layer1\.2\.conv1\.weight") as info:
        nasblocks.build("resnet34", num_classes=10, input_size=32, weights=path)
    assert "unexpected" not in str(info.value)
    with pytest.raises(SpecError, match=r"unexpected keys: layer1\.1\.conv1\.weight"):
        shallow = {"stages.layers": [1, 2, 2, 2]}
        nasblocks.build("resnet18", num_classes=10, input_size=32, weights=path, **shallow)


def test_unreadable_weights_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such weights file"):
        nasblocks.build("cifar_net", weights=tmp_path / "missing.pt")
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    with pytest.raises(SpecError, match="torch.load"):
        nasblocks.build("cifar_net", weights=text)
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(SpecError, match="expected a state dict"):
        nasblocks.build("cifar_net", weights=tmp_path / "list.pt")


# -- weights="torchvision" ------------------------------------------------------------------


def _offline(monkeypatch: pytest.MonkeyPatch, hub: Path) -> None:
    """An empty torch.hub cache and no route out: every proxy points at a closed local port,
    so torchvision's real downloader fails at once instead of hanging or downloading."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(hub))
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                "all_proxy"):  # fmt: skip
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(urllib.request, "_opener", None)  # re-read the proxies


def test_torchvision_weights_fail_clearly_offline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _offline(monkeypatch, tmp_path / "hub")
    with pytest.raises(NasBlocksError) as info:
        nasblocks.build("shufflenet_v2_x0_5", weights="torchvision")
    message = str(info.value)
    assert "ShuffleNet_V2_X0_5_Weights" in message and "weights=PATH" in message
    assert str(tmp_path / "hub") in message  # says where the cache is
    assert not list((tmp_path / "hub").rglob("*.pth"))  # nothing was downloaded


def test_torchvision_weights_use_torchvision_s_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A file already in torch.hub's cache (as torchvision names it) loads without network."""
    _offline(monkeypatch, tmp_path / "hub")
    weights = torchvision.models.ShuffleNet_V2_X0_5_Weights.DEFAULT
    cached = tmp_path / "hub" / "checkpoints" / Path(weights.url).name
    cached.parent.mkdir(parents=True)
    theirs = torchvision.models.shufflenet_v2_x0_5()
    for p in theirs.parameters():
        p.data.normal_()
    torch.save(theirs.state_dict(), cached)  # a stand-in for the downloaded file
    ours = nasblocks.build("shufflenet_v2_x0_5", weights="torchvision")
    assert all(torch.equal(v, ours.state_dict()[k]) for k, v in theirs.state_dict().items())


def test_torchvision_weights_need_a_torchvision_preset_and_its_classes() -> None:
    with pytest.raises(SpecError, match="no pretrained weights named 'unet'"):
        nasblocks.build("unet", weights="torchvision")
    with pytest.raises(SpecError, match="have 1000 classes, the network 10"):
        nasblocks.build("resnet18", num_classes=10, input_size=32, weights="torchvision")


def test_the_network_is_really_unreachable_in_offline_tests(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Guards the two tests above: with the proxies set, urllib cannot reach anything."""
    _offline(monkeypatch, tmp_path)
    with pytest.raises(OSError):
        urllib.request.urlopen("https://download.pytorch.org/models/", timeout=2)
