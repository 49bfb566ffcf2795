"""The presets of the seeds' networks match the seeds' definitions.

Parameter counts are derived here from the seeds' layer definitions (written out as
formulas, one term per layer), output shapes from their forward passes; the two smallest
nets are also recomputed functionally from their own weights. Counting happens on the meta
device: no weight is allocated, so even the 118M-parameter SKNet-50 costs nothing.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision

import nasblocks
from nasblocks.spec import plan


def n_params(name: str, **overrides) -> int:
    with torch.device("meta"):
        model = nasblocks.build(name, **overrides)
    return sum(p.numel() for p in model.parameters())


def out_shape(name: str, **overrides) -> tuple[int, ...]:
    return tuple(plan(nasblocks.load_spec(name, overrides)).out_shape)


def conv(cin: int, cout: int, k: int, bias: bool = True, groups: int = 1) -> int:
    return cout * (cin // groups) * k * k + (cout if bias else 0)


def bn(c: int) -> int:
    return 2 * c  # scale and shift (running statistics are buffers)


def linear(fin: int, fout: int, bias: bool = True) -> int:
    return fin * fout + (fout if bias else 0)


# -- seed 001: the small nets, ZFNet, the simplified VGG -------------------------------------


def test_mnist_cnn_counts_and_computes_like_seed_001() -> None:
    # CNN(input_size=784, n_feature=6, output_size=10): conv1 1->6 5x5, conv2 6->6 5x5,
    # fc1 6*4*4 -> 50, fc2 50 -> 10 = 156 + 906 + 4850 + 510 = 6422 (the course's printout).
    n = 6
    expected = conv(1, n, 5) + conv(n, n, 5) + linear(n * 4 * 4, 50) + linear(50, 10)
    assert expected == 6422
    assert n_params("mnist_cnn") == expected
    assert n_params("mnist_cnn", **{"vars.n_feature": 8}) == (
        conv(1, 8, 5) + conv(8, 8, 5) + linear(8 * 16, 50) + linear(50, 10)
    )
    model = nasblocks.build("mnist_cnn").eval()
    w = model.state_dict()
    x = torch.randn(3, 1, 28, 28)
    y = F.max_pool2d(F.relu(F.conv2d(x, w["conv1.weight"], w["conv1.bias"])), 2)
    y = F.max_pool2d(F.relu(F.conv2d(y, w["conv2.weight"], w["conv2.bias"])), 2)
    y = F.relu(F.linear(y.view(-1, n * 4 * 4), w["fc1.weight"], w["fc1.bias"]))
    y = F.log_softmax(F.linear(y, w["fc2.weight"], w["fc2.bias"]), dim=1)
    torch.testing.assert_close(model(x), y)


def test_mnist_fc_counts_and_computes_like_seed_001() -> None:
    # FC2Layer(input_size=784, n_hidden=8, output_size=10): Linear 784 -> 8, ReLU, 8 -> 8,
    # ReLU, 8 -> 10, LogSoftmax = 6280 + 72 + 90 = 6442, about mnist_cnn's 6422.
    expected = linear(784, 8) + linear(8, 8) + linear(8, 10)
    assert n_params("mnist_fc") == expected == 6442
    assert n_params("mnist_fc", **{"vars.n_hidden": 100}) == (
        linear(784, 100) + linear(100, 100) + linear(100, 10)
    )
    model = nasblocks.build("mnist_fc").eval()
    w = model.state_dict()  # the seed's nn.Sequential keys: network.0, .2, .4
    assert list(w) == [f"network.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")]
    x = torch.randn(3, 1, 28, 28)
    y = F.relu(F.linear(x.view(-1, 784), w["network.0.weight"], w["network.0.bias"]))
    y = F.relu(F.linear(y, w["network.2.weight"], w["network.2.bias"]))
    y = F.log_softmax(F.linear(y, w["network.4.weight"], w["network.4.bias"]), dim=1)
    torch.testing.assert_close(model(x), y)


def test_cifar_net_counts_and_computes_like_seed_001() -> None:
    # Net(): conv1 3->6 5x5, conv2 6->16 5x5, fc1 16*5*5 -> 120, fc2 -> 84, fc3 -> 10:
    # 456 + 2416 + 48120 + 10164 + 850 = 62006.
    expected = conv(3, 6, 5) + conv(6, 16, 5) + linear(400, 120) + linear(120, 84) + linear(84, 10)
    assert expected == 62006
    assert n_params("cifar_net") == expected
    model = nasblocks.build("cifar_net").eval()
    w = model.state_dict()
    x = torch.randn(3, 3, 32, 32)
    y = F.max_pool2d(F.relu(F.conv2d(x, w["conv1.weight"], w["conv1.bias"])), 2, 2)
    y = F.max_pool2d(F.relu(F.conv2d(y, w["conv2.weight"], w["conv2.bias"])), 2, 2)
    y = F.relu(F.linear(y.view(-1, 16 * 5 * 5), w["fc1.weight"], w["fc1.bias"]))
    y = F.relu(F.linear(y, w["fc2.weight"], w["fc2.bias"]))
    torch.testing.assert_close(model(x), F.linear(y, w["fc3.weight"], w["fc3.bias"]))


def test_vgg_cifar_counts_like_seed_001() -> None:
    # cfg [64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M]: 8 convs 3x3 with bias,
    # each with a BatchNorm2d; 32 / 2**5 = 1, so the classifier is Linear(512, 10).
    widths = [64, 128, 256, 256, 512, 512, 512, 512]
    expected, cin = 0, 3
    for c in widths:
        expected += conv(cin, c, 3) + bn(c)
        cin = c
    expected += linear(512, 10)
    assert n_params("vgg_cifar") == expected == 9_231_114
    assert out_shape("vgg_cifar") == (10,)
    spec = nasblocks.load_spec("vgg_cifar")
    features = next(n for n in plan(spec).nodes if n.name == "features")
    assert features.out_shape == (512, 1, 1)  # the seed's fix: 512, not 2048, inputs
    kinds = [child.kind for child in spec.layers[0].children]
    assert kinds.count("conv2d") == 8 and kinds.count("maxpool") == 5


def test_zfnet_is_alexnet_with_zf_changes() -> None:
    # torchvision's AlexNet with conv1 7x7/2 (was 11x11/4) and conv3-5 of 512, 1024, 512
    # filters (were 384, 256, 256); the 6x6 pooled map feeds fc 512*36 -> 4096 -> 4096 -> 1000.
    convs = conv(3, 64, 7) + conv(64, 192, 5) + conv(192, 512, 3) + conv(512, 1024, 3)
    convs += conv(1024, 512, 3)
    fcs = linear(512 * 6 * 6, 4096) + linear(4096, 4096) + linear(4096, 1000)
    assert n_params("zfnet") == convs + fcs == 107_020_712
    spec = nasblocks.load_spec("zfnet")
    first = spec.layers[0].children[0].block
    assert (first.kernel_size, first.stride) == (7, 2)
    assert plan(spec).nodes[0].group.nodes[0].out_shape == (64, 110, 110)  # the paper's 110
    assert out_shape("zfnet") == (1000,)


# -- seed 004: SE-ResNets and SKNet-50 ------------------------------------------------------


def resnet_params(block: str, layers: list[int], se: int = 0, classes: int = 1000) -> int:
    """torchvision's ResNet, term by term; ``se`` = reduction of an SE layer per block
    (senet.pytorch: Linear(C, C // r, bias=False), Linear(C // r, C, bias=False))."""
    exp = 1 if block == "basic" else 4
    total, cin = conv(3, 64, 7, bias=False) + bn(64), 64
    for i, n in enumerate(layers):
        planes = 64 * 2**i
        out = planes * exp
        for b in range(n):
            stride = 2 if i > 0 and b == 0 else 1
            if block == "basic":
                p = conv(cin, planes, 3, False) + bn(planes) + conv(planes, planes, 3, False)
                p += bn(planes)
            else:
                p = conv(cin, planes, 1, False) + bn(planes) + conv(planes, planes, 3, False)
                p += bn(planes) + conv(planes, out, 1, False) + bn(out)
            if stride != 1 or cin != out:
                p += conv(cin, out, 1, False) + bn(out)
            if se:
                p += linear(out, out // se, False) + linear(out // se, out, False)
            total += p
            cin = out
    return total + linear(cin, classes)


DEPTHS = {
    18: ("basic", [2, 2, 2, 2]),
    34: ("basic", [3, 4, 6, 3]),
    50: ("bottleneck", [3, 4, 6, 3]),
    101: ("bottleneck", [3, 4, 23, 3]),
    152: ("bottleneck", [3, 8, 36, 3]),
}


def test_resnet_formula_is_torchvision_s() -> None:
    """The formula the SE counts build on reproduces torchvision's documented counts."""
    assert resnet_params(*DEPTHS[18]) == 11_689_512
    assert resnet_params(*DEPTHS[50]) == 25_557_032
    assert resnet_params(*DEPTHS[152]) == 60_192_808
    m = torchvision.models.resnet34()
    assert resnet_params(*DEPTHS[34]) == sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("depth", sorted(DEPTHS))
def test_se_resnet_counts_like_senet_pytorch(depth: int) -> None:
    expected = resnet_params(*DEPTHS[depth], se=16)
    assert n_params(f"se_resnet{depth}") == expected
    assert n_params(f"se_resnet{depth}") - resnet_params(*DEPTHS[depth]) > 0
    assert out_shape(f"se_resnet{depth}") == (1000,)


def test_se_sits_after_the_last_bn_before_the_addition() -> None:
    """senet.pytorch's SEBottleneck: relu(se(bn3(conv3(...))) + shortcut(x)), checked
    functionally on one block of the built net."""
    model = nasblocks.build("se_resnet50", input_size=32).eval()
    block = model.layer2[1]
    x = torch.randn(2, 512, 4, 4)
    with torch.no_grad():
        out = block.relu(block.bn1(block.conv1(x)))
        out = block.relu(block.bn2(block.conv2(out)))
        out = block.bn3(block.conv3(out))
        fc = block.se.fc
        scale = torch.sigmoid(fc[2](F.relu(fc[0](out.mean((2, 3))))))  # squeeze, excite
        expected = F.relu(out * scale[:, :, None, None] + x)
        torch.testing.assert_close(block(x), expected)
    assert fc[0].in_features // fc[0].out_features == 16


def skconv_params(c: int, m: int = 2, r: int = 4) -> int:
    # seed 004 SKConv: M x (3x3 conv without bias + BN), att = 1x1 conv C -> C/r (bias),
    # 1x1 conv C/r -> C*M (bias).
    return m * (conv(c, c, 3, False) + bn(c)) + conv(c, c // r, 1) + conv(c // r, c * m, 1)


def skunit_params(cin: int, cout: int, mid: int | None = None) -> int:
    # seed 004 SKUnit: mid = in // 2 when in == out, else in; 1x1 conv + BN + ReLU,
    # SKConv + BN + ReLU, 1x1 conv + BN; a 1x1 conv + BN shortcut when in != out.
    mid = mid or (cin // 2 if cin == cout else cin)
    p = conv(cin, mid, 1, False) + bn(mid) + skconv_params(mid) + bn(mid)
    p += conv(mid, cout, 1, False) + bn(cout)
    if cin != cout:
        p += conv(cin, cout, 1, False) + bn(cout)
    return p


def test_sknet50_counts_like_seed_004() -> None:
    # ResNet-50's stem and head around 3, 4, 6, 3 SKUnits of 256 ... 2048 channels; the first
    # unit of layer1 takes the paper's width 128 (the seed's rule would give 64 at stride 2).
    total = conv(3, 64, 7, False) + bn(64) + linear(2048, 1000)
    cin = 64
    for n, cout in zip([3, 4, 6, 3], [256, 512, 1024, 2048], strict=True):
        for _ in range(n):
            total += skunit_params(cin, cout, 128 if cin == 64 else None)
            cin = cout
    assert n_params("sknet50") == total
    spec = nasblocks.load_spec("sknet50")
    shapes = {n.name: n.out_shape for n in plan(spec).nodes}
    assert shapes["layer1"] == (256, 56, 56) and shapes["layer4"] == (2048, 7, 7)
    assert shapes["fc"] == (1000,)


# -- seed 003: U-Net -----------------------------------------------------------------------


def unet_params(feature_scale: int, deconv: bool, batchnorm: bool, classes: int) -> int:
    """seed 003's UNet: unetConv2 = 2 x (3x3 conv with bias [+ BN]) ; unetUp = up (2x2/2
    ConvTranspose2d, or bilinear + 1x1 conv) + unetConv2 without BN; final 1x1 conv."""
    f = [int(x / feature_scale) for x in (64, 128, 256, 512, 1024)]

    def double(cin: int, cout: int, norm: bool) -> int:
        return conv(cin, cout, 3) + conv(cout, cout, 3) + (2 * bn(cout) if norm else 0)

    total = double(3, f[0], batchnorm)
    for i in range(1, 5):
        total += double(f[i - 1], f[i], batchnorm)
    for i in range(4, 0, -1):
        up = f[i] * f[i - 1] * 4 + f[i - 1] if deconv else conv(f[i], f[i - 1], 1)
        total += up + double(f[i], f[i - 1], False)
    return total + conv(f[0], classes, 1)


@pytest.mark.parametrize(
    ("overrides", "args"),
    [
        ({}, (2, False, True, 2)),
        ({"vars.deconv": True}, (2, True, True, 2)),
        (
            {"width_multiple": 0.25, "defaults.norm": "none", "num_classes": 5},
            (4, False, False, 5),
        ),
        ({"width_multiple": 1.0, "vars.deconv": True, "num_classes": 1}, (1, True, True, 1)),
    ],
)
def test_unet_counts_like_seed_003(overrides: dict, args: tuple) -> None:
    assert n_params("unet", **overrides) == unet_params(*args)


def test_unet_output_is_a_score_map_of_the_input_size() -> None:
    assert out_shape("unet") == (2, 256, 512)  # the seed's 3 x 256 x 512 example
    model = nasblocks.build("unet", num_classes=3, input_size=(32, 48))
    assert model(torch.randn(2, 3, 32, 48)).shape == (2, 3, 32, 48)
    keys = model.state_dict().keys()
    # the seed's module names: conv1.conv1.0 (conv), .1 (BN); up_concat1.up.1 (1x1 conv)
    assert {"conv1.conv1.0.weight", "conv1.conv1.1.running_var", "center.conv2.0.bias",
            "up_concat1.up.1.weight", "up_concat4.conv.conv2.0.weight",
            "final.weight"} <= set(keys)  # fmt: skip
    assert not any(k.startswith("up_concat") and ".conv.conv1.1." in k for k in keys)


def test_unet_init_is_seed_003_s_weights_init_kaiming() -> None:
    """kaiming_normal_(a=0, mode='fan_in') on every conv (transposed too), BN scale N(1, 0.02),
    BN shift 0; conv biases keep PyTorch's default."""
    torch.manual_seed(0)
    model = nasblocks.build("unet", input_size=32, **{"vars.deconv": True})
    convs = bns = 0
    for name, m in model.named_modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and m.weight.numel() > 4096:
            fan_in = (
                m.weight[0].numel()
                if isinstance(m, torch.nn.Conv2d)
                else (m.weight.shape[1] * m.weight[0, 0].numel())
            )
            std = (2 / fan_in) ** 0.5
            assert abs(m.weight.std().item() / std - 1) < 0.1, name
            convs += 1
        elif isinstance(m, torch.nn.BatchNorm2d):
            assert abs(m.weight.mean().item() - 1) < 0.02 and 0.005 < m.weight.std() < 0.04, name
            assert m.bias.eq(0).all(), name
            bns += 1
    assert convs >= 20 and bns == 10
    assert isinstance(model.up_concat4.up, torch.nn.ConvTranspose2d)
