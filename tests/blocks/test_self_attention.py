"""The non-local block: the embedded-Gaussian computation by hand, identity at init, a cost
that counts the attention products, shape errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from block_helpers import build, randomize

from nasblocks.analysis import measure_block
from nasblocks.errors import ShapeError
from nasblocks.init import apply_init
from nasblocks.modules.self_attention import NonLocal2d
from nasblocks.registry import block_spec


def _conv(x: torch.Tensor, w: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    return F.conv2d(x, w[f"{name}.weight"], w[f"{name}.bias"])


@pytest.mark.parametrize(("reduction", "sub_sample"), [(2, False), (4, True)])
def test_non_local_is_the_embedded_gaussian_by_hand(reduction: int, sub_sample: bool) -> None:
    block = randomize(build("non_local", (8, 6, 5), reduction=reduction, sub_sample=sub_sample))
    block.eval()
    w = block.state_dict()
    x = torch.randn(2, 8, 6, 5)
    pool = (lambda t: F.max_pool2d(t, 2)) if sub_sample else (lambda t: t)
    at = ".0" if sub_sample else ""
    theta = _conv(x, w, "theta").flatten(2)  # (B, C', HW)
    phi = pool(_conv(x, w, f"phi{at}")).flatten(2)  # (B, C', N)
    g = pool(_conv(x, w, f"g{at}")).flatten(2)
    f = torch.einsum("bci,bcj->bij", theta, phi).softmax(dim=-1)  # over the positions j
    y = torch.einsum("bij,bcj->bci", f, g).reshape(2, -1, 6, 5)
    z = F.batch_norm(
        _conv(y, w, "W.0"), w["W.1.running_mean"], w["W.1.running_var"], w["W.1.weight"],
        w["W.1.bias"],
    )  # fmt: skip
    with torch.no_grad():
        torch.testing.assert_close(block(x), x + z)


def test_every_output_position_sees_every_input_position() -> None:
    block = randomize(build("non_local", (4, 7, 7), zero_init_last=False)).eval()
    x = torch.randn(1, 4, 7, 7, requires_grad=True)
    block(x)[0, :, 0, 0].sum().backward()
    assert x.grad is not None and x.grad[0, :, -1, -1].abs().sum() > 0  # far corner matters


def test_the_block_starts_as_the_identity_even_after_an_init_scheme() -> None:
    model = NonLocal2d(16, 4)  # (channels, reduction): keeps the channels, like SE
    apply_init(model, "kaiming")  # sets every BN scale to 1, then post_init zeroes W's again
    x = torch.randn(2, 16, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), x)
        assert model.train()(x).shape == x.shape


@pytest.mark.parametrize("sub_sample", [False, True])
def test_the_cost_counts_both_attention_products(sub_sample: bool) -> None:
    spec = block_spec("non_local", reduction=2, sub_sample=sub_sample)
    c, h, w = 8, 16, 12
    n, keys = h * w, (h // 2) * (w // 2) if sub_sample else h * w
    inter = c // 2
    convs = 3 * c * inter * n + inter * c * n  # theta, phi, g and W, all 1x1
    params, macs = spec.cost((c, h, w))
    assert macs == convs + 2 * n * keys * inter  # theta^T phi, then the weights times g
    assert params == 3 * (c * inter + inter) + inter * c + c + 2 * c
    assert measure_block(spec, (c, h, w)) == (params, macs)  # as FlopCounterMode counts bmm


def test_shape_errors_name_the_field() -> None:
    with pytest.raises(ShapeError) as err:
        block_spec("non_local", reduction=8).output_shape((4, 6, 6))
    assert err.value.field == "reduction"
    with pytest.raises(ShapeError) as err:
        block_spec("non_local", sub_sample=True).output_shape((4, 1, 6))
    assert err.value.field == "sub_sample"
    with pytest.raises(ShapeError, match="feature map"):
        block_spec("non_local").output_shape((16,))
