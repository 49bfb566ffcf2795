"""Block declarations, one file per family, imported when a block of the family is first used.

:data:`BUILTIN` says which family declares each built-in block, so that ``validate`` of a
ResNet imports the core, pooling and residual families and not the other eight (each block
class is a pydantic model: creating all of them is most of ``nasblocks``' import time).
:func:`load_all` imports every family (for ``block_names``, suggestions, the schema).
``tests/blocks/test_conformance.py`` checks the index against the registrations.
"""

from __future__ import annotations

import importlib

FAMILIES = {
    "attention": ("cbam", "eca", "se", "se_conv", "sk", "sk_unit"),
    "cell": ("relu_conv_bn", "zero"),
    "conv": (
        "channel_shuffle",
        "conv_transpose",
        "deform_conv",
        "depthwise",
        "separable",
        "shuffle_conv",
        "spatial_separable",
        "upsample",
    ),
    "core": (
        "batchnorm",
        "classifier",
        "conv",
        "conv2d",
        "dropout",
        "dropout2d",
        "flatten",
        "gelu",
        "groupnorm",
        "hardsigmoid",
        "hardswish",
        "identity",
        "leaky_relu",
        "linear",
        "pointwise",
        "relu",
        "relu6",
        "sigmoid",
        "silu",
        "tanh",
    ),
    "efficientnet": ("batchnorm_act", "cn_conv", "ds_conv", "mb_conv", "mixed_conv"),
    "ghostnet": ("ghost_bottleneck", "ghost_module"),
    "csp": ("conv_norm_act", "csp_stage", "dark_stage"),
    "dpn": ("bn_act", "dual_path"),
    "hrnet": ("hrnet_downsample", "hrnet_incre", "hrnet_stage", "hrnet_transition"),
    "dla": ("dla_tree",),
    "inception": (
        "inception",
        "inception_a",
        "inception_aux",
        "inception_b",
        "inception_c",
        "inception_d",
        "inception_e",
        "inception_v3_aux",
    ),
    "merge": ("add", "concat", "multiply", "split"),
    "mobile": ("conv_bn_act", "inverted_residual"),
    "pooling": (
        "adaptive_avgpool",
        "adaptive_maxpool",
        "avgpool",
        "global_avgpool",
        "global_maxpool",
        "maxpool",
        "reorg",
        "spp",
        "spp_net",
    ),
    "presets_support": ("log_softmax", "pixel_classifier", "transform_input"),
    "repvgg": ("repvgg",),
    "res2net": ("res2net_bottleneck",),
    "residual": ("basic", "bottleneck", "shufflenet_v1_unit", "shufflenet_v2_unit"),
    "self_attention": ("non_local",),
    "shake_shake": ("shake_shake",),
    "sknet": ("sk_basic", "sk_bottleneck"),
    "unet": ("double_conv", "unet_down", "unet_up"),
}
BUILTIN = {kind: family for family, kinds in FAMILIES.items() for kind in kinds}
"""Built-in block name -> the family module (``nasblocks.blocks.<family>``) declaring it."""


def load_family(kind: str) -> bool:
    """Import the family that declares the built-in ``kind``; False if none does."""
    family = BUILTIN.get(kind)
    if family is None:
        return False
    importlib.import_module(f"nasblocks.blocks.{family}")
    return True


def load_all() -> None:
    for family in FAMILIES:
        importlib.import_module(f"nasblocks.blocks.{family}")
