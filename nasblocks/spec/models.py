"""The DSL reference: every pydantic model a spec file is made of.

``extra="forbid"`` everywhere and a description on every field: the JSON Schema printed by
``nasblocks schema`` is generated from these models (plus one model per registered block),
so this file *is* the documentation of the format.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nasblocks.blocks import _fields as f

Dim = Annotated[int, Field(ge=1, le=8192)]


class _Model(BaseModel):
    # strict: `true` is not the number 1; NaN and inf are no sizes or multipliers
    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, allow_inf_nan=False, defer_build=True
    )


class Defaults(_Model):
    """Model-level defaults, given to every block that has the field unless a layer sets it."""

    norm: f.Norm | None = Field(None, description=f.NORM_DOC)
    norm_eps: float | None = Field(None, gt=0, lt=1, description=f.EPS_DOC)
    norm_momentum: float | None = Field(None, ge=0, le=1, description=f.MOMENTUM_DOC)
    activation: f.Activation | None = Field(None, description=f.ACT_DOC)


InitScheme = Literal[
    "default", "kaiming", "vgg", "mobilenet", "googlenet", "inception", "unet", "efficientnet"
]


class Stem(_Model):
    """ResNet-style stem: ``conv1`` (no bias), ``bn1``, ``relu``, then an optional ``maxpool``.

    ``type: deep`` makes ``conv1`` three 3x3 convs (``conv1.0``, ``.3``, ``.6``, with norms
    and activations between; the first one strided): ResNet-C/D of He et al. 2019, "Bag of
    Tricks", timm's ``stem_type``.
    """

    type: Literal["plain", "deep", "deep_tiered"] = Field(
        "plain",
        description="plain: one kxk conv; deep: 3x3 convs of width, width, out_channels; "
        "deep_tiered: of 3 * (width // 4), width, out_channels.",
    )
    out_channels: int = Field(64, ge=1, le=1 << 14, description="Stem width.")
    width: int | None = Field(
        None,
        ge=1,
        le=1 << 14,
        description="Inner width of a deep stem (timm's stem_width); default out_channels / 2.",
    )
    kernel_size: int = Field(7, ge=1, le=15, description="Kernel of a plain stem's convolution.")
    stride: int = Field(2, ge=1, le=8, description="Stride of the stem's (first) convolution.")
    pool: Literal["max", "avg", "none"] = Field(
        "max", description="3x3 stride-2 pooling after the stem (none for small images)."
    )


class Stages(_Model):
    """ResNet-style body: a block kind, blocks per stage, and widths per stage.

    Fields taking one value per stage also accept a single value for every stage.
    The first block of a stage carries the stage's stride; stages are named ``layer1`` ...
    (torchvision's names) unless ``names`` says otherwise.
    """

    block: str = Field(
        "basic",
        description="Block kind: basic, bottleneck, or any block with "
        "a `channels` or `out_channels` field and a `stride` field.",
    )
    layers: list[Annotated[int, Field(ge=0, le=1000)]] = Field(
        min_length=1, max_length=16, description="Blocks per stage, e.g. [3, 4, 6, 3]."
    )
    widths: list[Annotated[int, Field(ge=1, le=1 << 14)]] | None = Field(
        None, description="Base width per stage (torchvision's planes); default 64, 128, 256 ..."
    )
    strides: list[Annotated[int, Field(ge=1, le=8)]] | None = Field(
        None, description="Stride of each stage's first block; default 1, 2, 2, ..."
    )
    groups: int | list[int] = Field(1, description="Convolution groups (ResNeXt cardinality).")
    width_per_group: int | list[int] = Field(
        64, description="Width of one group (torchvision's base_width; 128 = wide ResNet)."
    )
    dilate: bool | list[bool] = Field(
        False,
        description="Replace the stage's stride by dilation (torchvision's "
        "replace_stride_with_dilation, one flag per stage).",
    )
    attention: str | list[str] = Field(
        "none",
        description="Attention inside each block: none, sk, or an attention kind (se, se_conv, "
        "eca, cbam, a plugin's).",
    )
    attention_reduction: int = Field(16, ge=1, description="Reduction ratio of the attention.")
    expansion: int | None = Field(
        None,
        ge=1,
        description="Output width / base width; "
        "default is the block's own (1 basic, 4 bottleneck).",
    )
    zero_init_last: bool = Field(
        False,
        description="Zero the last BN of each residual branch (torchvision's zero_init_residual).",
    )
    avg_down: bool = Field(
        False,
        description="Average-pool shortcuts in strided blocks (ResNet-D; timm's avg_down).",
    )
    drop_path_rate: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Stochastic depth of the last block; block i of n drops its branch with "
        "probability rate * i / (n - 1), as timm's drop_path_rate.",
    )
    block_args: dict[str, Any] = Field(
        default_factory=dict, description="Further fields given to every block of every stage."
    )
    names: list[str] | None = Field(None, description="Stage names; default layer1, layer2 ...")


class Head(_Model):
    """Classification head after the stages: global pool, flatten, optional dropout, ``fc``."""

    pool: Literal["avg", "max"] = Field("avg", description="Global pooling.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout before the linear layer.")


class Vgg(_Model):
    """A VGG cfg list: numbers are 3x3 conv widths, ``M`` a 2x2 max-pool, ``A`` an avg-pool.

    Expands to a flat group of ``conv2d`` [``batchnorm``] ``relu`` and pool layers, with
    torchvision's indices (``features.0.weight`` ...).
    """

    cfg: list[int | Literal["M", "A"]] = Field(min_length=1, description="The cfg list.")
    norm: Literal["batch", "none"] = Field("none", description="Batch norm after each conv.")
    kernel_size: int = Field(3, ge=1, le=15, description="Conv kernel size (padding keeps size).")
    activation: f.Activation = Field("relu", description=f.ACT_DOC)


class BlockStages(_Model):
    """Stages of blocks written as siblings, like timm's EfficientNet ``arch_def``.

    ``{name: blocks, block_stages: [...]}`` builds the group ``blocks`` with one group per
    stage (``blocks.0``, ``blocks.1`` ...) whose blocks are siblings (``blocks.1.0``,
    ``blocks.1.1`` ...). A stage is an entry or a list of entries; an entry is a block's
    fields plus ``block`` (its kind, else ``defaults.block``) and ``repeat`` (copies, default
    1), e.g. ``{block: mb_conv, repeat: 2, stride: 2, out_channels: 24, se: 0.25}``. Only a
    stage's first block keeps its ``stride``; the copies after it get 1. The model's
    ``depth_multiple`` scales each stage's total repeats (rounded per ``depth_rounding``) and
    shares them among its entries from the last, as timm's ``_scale_stage_depth`` does; its
    ``width_multiple`` and ``round_channels`` scale the channels as for every block (with
    ``round_channels: 8``, timm's ``round_chs_fn``). The short form is the list of stages.
    """

    stages: list[Any] = Field(
        min_length=1, max_length=64, description="The stages: each an entry or a list of them."
    )
    defaults: dict[str, Any] = Field(
        default_factory=dict,
        description="Fields every entry gets unless it sets them, where its block has the "
        "field (`block` too), e.g. {block: mb_conv, expand_ratio: 6, se: 0.25}.",
    )
    depth_rounding: Literal["ceil", "round"] = Field(
        "ceil",
        description="How a stage's scaled depth rounds: ceil (EfficientNet, timm's default "
        "depth_trunc) or round (at least 1; MixNet-M/L/XL).",
    )
    drop_path_rate: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Stochastic depth rising linearly over the blocks: block i of n gets "
        "drop_path rate * i / n (timm's EfficientNet schedule).",
    )


class Template(_Model):
    """A named group of layers, used in a layer list like a block: ``{cell: {channels: 16}}``.

    The layers see the template's ``params`` as ``$name`` (a parameter without a default,
    ``null``, must be given at each use), then the spec's ``vars``. Each use builds its own
    group (its own weights); ``repeat`` stacks copies. Search nodes inside a template are
    sampled once for the whole network, so every use shares them (one cell, 15 positions).
    """

    description: str = Field("", description="What the template is (shown by `summary`).")
    params: dict[str, int | float | str | bool | None] = Field(
        default_factory=dict,
        description="Parameter names and defaults (null: required at each use).",
    )
    layers: list[Any] = Field(min_length=1, description="The layers of one use (see Layer).")


class SpecDocument(_Model):
    """A network spec file (all fields but ``layers``/``stages`` are optional)."""

    name: str = Field("model", description="Model name (class name of the built module).")
    description: str = Field("", description="Free text, e.g. the paper the net follows.")
    source: str = Field("", description="Paper or code the network reproduces.")
    input: list[Dim] = Field(
        [3, 224, 224], min_length=3, max_length=3, description="Input shape [C, H, W]."
    )
    num_classes: int = Field(
        1000, ge=1, le=1 << 20, description="Number of classes; `$num_classes` in a layer uses it."
    )
    vars: dict[str, int | float | str | bool] = Field(
        default_factory=dict, description="Named values a layer can use as `$name`."
    )
    defaults: Defaults = Field(default_factory=Defaults, description=Defaults.__doc__)
    init: InitScheme = Field(
        "default",
        description="Weight initialisation scheme: default "
        "(PyTorch's), kaiming (ResNet), vgg, mobilenet, googlenet, "
        "inception, unet, efficientnet (timm's EfficientNet / MixNet / MobileNetV2).",
    )
    width_multiple: float = Field(
        1.0, gt=0, le=16, description="Scales every channel-count field of every block."
    )
    depth_multiple: float = Field(
        1.0, gt=0, le=16, description="Scales every `repeat` and stage length."
    )
    round_channels: int = Field(
        1, ge=1, le=256, description="Scaled channel counts round to a multiple of this."
    )
    plugins: list[str] = Field(
        default_factory=list, description="Modules or .py files defining extra blocks."
    )
    templates: dict[str, Template] = Field(
        default_factory=dict, description="Reusable layer groups by name (see Template)."
    )
    stem: Stem | None = Field(None, description=Stem.__doc__)
    stages: Stages | None = Field(None, description=Stages.__doc__)
    head: Head | Literal["none"] | None = Field(None, description=Head.__doc__)
    layers: list[Any] | None = Field(None, description="General layer list (see Layer).")
    outputs: list[str] | dict[str, str] | None = Field(
        None,
        description="Output layers: a list of layer names, or a mapping {field: layer} naming "
        "the fields of the training-mode output tuple. Default: the last layer, plus every aux "
        "layer in training mode. Aux layers left out of an explicit `outputs` are not built "
        "(torchvision's aux_logits=False).",
    )


LAYER_META = {
    "name": "Name of the layer: the module attribute name, and what `from` can refer to.",
    "from": "Input(s): -1 is the previous layer, a non-negative number a layer index, a name a "
    "named layer, `input` the network input; a list for multi-input blocks.",
    "repeat": "Stack the block this many times (scaled by depth_multiple).",
    "aux": "An auxiliary output (e.g. GoogLeNet's aux heads): computed and returned only in "
    "training mode.",
    "layers": "A nested group of layers, built as one submodule.",
    "fixed_width": "true: the model's width_multiple leaves the channels of this layer (and "
    "of the layers inside it) as written, as timm keeps MixNet's 1536-channel head.",
    "block": "The block as a value: a block or template name, or a one-entry mapping like "
    "{conv: 64}; `{block: {conv: 64}}` is `{conv: 64}`. A search choice over blocks goes here.",
}
