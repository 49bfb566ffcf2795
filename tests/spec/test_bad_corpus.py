"""A corpus of bad specs: every one is refused with exactly one located line
``FILE:LINE:COL: yaml.path: message``, exit code 2, quickly, and ``build`` raises a
NasBlocksError (never a raw exception)."""

from __future__ import annotations

import re
import time

import pytest

import nasblocks
from nasblocks.cli.main import main
from nasblocks.errors import NasBlocksError

R = "name: r\ninput: [3, 16, 16]\nstages: {block: basic, layers: [1], widths: [8]}\n"
T = "name: t\ninput: [3, 16, 16]\n"  # a good top
H = "name: t\ninput: [3, 16, 16]\nlayers:\n"  # a good head; cases append layers


def L(*layers: str) -> str:
    return H + "".join(f"  - {layer}\n" for layer in layers)


# validate accepts a 60-billion-parameter conv pair today: refusing it from a parameter estimate
# before any weight exists needs the analytic costs of every block (a later issue).

SIZE_BOMB = (
    H
    + "  - conv: 4\n  - repeat: 1000\n    layers:\n"
    + "".join("      - conv: {out_channels: 4}\n" for _ in range(60))
)

CASES = [
    # -- shapes ------------------------------------------------------------------------------
    ("groups-not-dividing-in", L("conv: 6", "conv: {out_channels: 8, groups: 4}")),
    ("groups-not-dividing-out", L("conv: 8", "conv: {out_channels: 6, groups: 4}")),
    ("groups-on-rgb", L("conv: {out_channels: 8, groups: 2}")),
    ("kernel-bigger-than-input", L("conv2d: {out_channels: 4, kernel_size: 17}")),
    (
        "kernel-collapses-after-stride",
        L("conv: {out_channels: 4, stride: 8}", "conv2d: {out_channels: 4, kernel_size: 5}"),
    ),
    ("maxpool-collapse", L("maxpool: {kernel_size: 32}")),
    ("stride-chain-collapse", L(*["conv2d: {out_channels: 4, kernel_size: 3, stride: 2}"] * 5)),
    (
        "concat-spatial",
        L("{name: a, conv: 8}", "conv: {out_channels: 8, stride: 2}", "concat: [-1, a]"),
    ),
    ("add-channels", L("{name: a, conv: 8}", "conv: 4", "add: [-1, a]")),
    ("add-spatial", L("{name: a, conv: 8}", "conv: {out_channels: 8, stride: 2}", "add: [-1, a]")),
    ("multiply-channels", L("{name: a, conv: 8}", "conv: 4", "multiply: [-1, a]")),
    ("linear-on-feature-map", L("conv: 8", "linear: 10")),
    ("linear-on-input", L("linear: 10")),
    ("conv-on-flat", L("flatten", "conv: 8")),
    ("add-single-input", L("conv: 8", "add: [-1]")),
    # -- references --------------------------------------------------------------------------
    ("from-unknown", L("{name: a, conv: 8}", "{conv: 8, from: nope}")),
    ("from-forward-name", L("{conv: 8, from: later}", "{name: later, conv: 8}")),
    ("from-forward-index", L("{conv: 8, from: 1}", "conv: 8")),
    ("from-self-name", L("conv: 8", "{name: me, conv: 8, from: me}")),
    ("from-self-index", L("conv: 8", "{conv: 8, from: 1}")),
    ("from-index-too-negative", L("conv: 8", "{conv: 8, from: -5}")),
    ("from-index-too-large", L("conv: 8", "{conv: 8, from: 99}")),
    ("from-list-unknown", L("{name: a, conv: 8}", "concat: [a, zz]")),
    ("from-bool", L("conv: 8", "{conv: 8, from: true}")),
    ("from-float", L("conv: 8", "{conv: 8, from: 1.5}")),
    ("from-mapping", L("conv: 8", "{conv: 8, from: {a: 1}}")),
    ("from-empty-list", L("conv: 8", "{concat: []}")),
    ("from-null", L("conv: 8", "{conv: 8, from: null}")),
    ("from-input-misspelled", L("conv: 8", "{conv: 8, from: inptu}")),
    ("from-input-flat-to-conv", L("flatten", "linear: 4", "{add: [-1, input]}")),
    ("duplicate-layer-name", L("{name: a, conv: 8}", "{name: a, conv: 8}")),
    ("name-input-reserved", L("{name: input, conv: 8}")),
    ("outputs-unknown", H + "  - {name: fc, conv: 8}\noutputs: [nope]\n"),
    ("outputs-empty", H + "  - {name: fc, conv: 8}\noutputs: []\n"),
    ("outputs-int", H + "  - {name: fc, conv: 8}\noutputs: 3\n"),
    # -- repeats -----------------------------------------------------------------------------
    ("repeat-0", L("{conv: 8, repeat: 0}")),
    ("repeat-negative", L("{conv: 8, repeat: -1}")),
    ("repeat-1001", L("{conv: 8, repeat: 1001}")),
    ("repeat-true", L("{conv: 8, repeat: true}")),
    ("repeat-float", L("{conv: 8, repeat: 2.5}")),
    ("repeat-string", L("{conv: 8, repeat: three}")),
    ("repeat-list", L("{conv: 8, repeat: [2]}")),
    ("repeat-null", L("{conv: 8, repeat: null}")),
    ("repeat-nan", L("{conv: 8, repeat: .nan}")),
    # -- names -------------------------------------------------------------------------------
    ("name-keyword", L("{name: def, conv: 8}")),
    ("name-self", L("{name: self, conv: 8}")),
    ("name-training", L("{name: training, conv: 8}")),
    ("name-forward", L("{name: forward, conv: 8}")),
    ("name-dunder", L("{name: __class__, conv: 8}")),
    ("name-quote", L('{name: "a\'b", conv: 8}')),
    (
        "template-named-like-a-layer-key",
        T
        + "templates:\n  block:\n    params: {w: null}\n    layers: [{conv: $w}]\n"
        + "layers:\n  - {block: {w: 4}}\n",
    ),
    (
        "template-named-repeat",
        T + "templates:\n  repeat:\n    layers: [conv: 4]\nlayers:\n  - conv: 4\n",
    ),
    ("name-dotted-inside-a-layer", L("{name: x, conv: 8}", "{name: x.y, conv: 8}")),
    ("name-unicode", L("{name: é, conv: 8}")),
    ("name-empty", L("{name: '', conv: 8}")),
    ("name-too-long", L("{name: " + "a" * 65 + ", conv: 8}")),
    ("name-list", L("{name: [a], conv: 8}")),
    ("name-bool", L("{name: true, conv: 8}")),
    ("name-negative-int", L("{name: -3, conv: 8}")),
    ("name-space", L("{name: 'a b', conv: 8}")),
    ("name-injection", L('{name: "c1\\")\\nimport os\\n#", conv: 8}')),
    ("name-in-group", H + "  - name: g\n    layers:\n      - {name: forward, conv: 8}\n"),
    pytest.param(H + "  - {name: fc, conv: 8}\noutputs: {'bad name': fc}\n", id="output-name-bad"),
    ("output-name-keyword", H + "  - {name: fc, conv: 8}\noutputs: {class: fc}\n"),
    # -- types -------------------------------------------------------------------------------
    ("out-channels-string", L("conv2d: {out_channels: eight}")),
    ("out-channels-list", L("conv2d: {out_channels: [8]}")),
    ("out-channels-true", L("conv2d: {out_channels: true}")),
    ("out-channels-float", L("conv2d: {out_channels: 8.5}")),
    ("out-channels-null", L("conv2d: {out_channels: null}")),
    ("out-channels-zero", L("conv2d: {out_channels: 0}")),
    ("kernel-size-true", L("conv2d: {out_channels: 8, kernel_size: true}")),
    ("kernel-size-string", L("conv2d: {out_channels: 8, kernel_size: big}")),
    ("kernel-size-null", L("conv2d: {out_channels: 8, kernel_size: null}")),
    ("stride-false", L("conv: {out_channels: 8, stride: false}")),
    ("conv-shorthand-true", L("conv: true")),
    ("linear-shorthand-string", L("flatten", "linear: many")),
    ("block-params-list", L("conv2d: [8, 3]")),
    ("layer-is-int", L("3")),
    ("layer-is-list", L("[conv, 8]")),
    ("layers-is-mapping", T + "layers: {conv: 8}\n"),
    ("layers-empty", T + "layers: []\n"),
    ("name-is-list", "name: [t]\ninput: [3, 16, 16]\nlayers: [relu]\n"),
    ("activation-unknown", L("conv: {out_channels: 8, activation: swishy}")),
    ("norm-unknown", L("conv: {out_channels: 8, norm: batchy}")),
    ("vars-nested", T + "vars: {w: [1, 2]}\nlayers: [relu]\n"),
    ("var-wrong-type", T + "vars: {w: wide}\nlayers:\n  - conv: $w\n"),
    # -- NaN / inf ---------------------------------------------------------------------------
    ("dropout-nan", L("dropout: .nan")),
    ("dropout-inf", L("dropout: {p: .inf}")),
    ("dropout-neg-inf", L("dropout: -.inf")),
    ("norm-eps-nan", T + "defaults: {norm_eps: .nan}\nlayers: [relu]\n"),
    ("norm-eps-inf", T + "defaults: {norm_eps: .inf}\nlayers: [relu]\n"),
    ("width-multiple-nan", T + "width_multiple: .nan\nlayers: [relu]\n"),
    ("width-multiple-inf", T + "width_multiple: .inf\nlayers: [relu]\n"),
    ("depth-multiple-nan", T + "depth_multiple: .nan\nlayers: [relu]\n"),
    ("depth-multiple-inf", T + "depth_multiple: .inf\nlayers: [relu]\n"),
    ("momentum-nan", T + "defaults: {norm_momentum: .nan}\nlayers: [relu]\n"),
    ("head-dropout-nan", R + "head: {dropout: .nan}\n"),
    ("out-channels-inf", L("conv2d: {out_channels: .inf}")),
    # -- plugins -----------------------------------------------------------------------------
    ("plugin-no-opt-in", T + "plugins: [blocks.py]\nlayers: [relu]\n"),
    ("plugin-module-no-opt-in", T + "plugins: [os]\nlayers: [relu]\n"),
    ("plugin-missing-file", T + "plugins: [no_such_file_xyz.py]\nlayers: [relu]\n"),
    ("plugin-dotted-path-escape", T + "plugins: [../../etc/evil.py]\nlayers: [relu]\n"),
    ("plugins-string", T + "plugins: blocks.py\nlayers: [relu]\n"),
    ("plugins-int", T + "plugins: [3]\nlayers: [relu]\n"),
    ("plugins-mapping", T + "plugins: {a: b}\nlayers: [relu]\n"),
    # -- sizes -------------------------------------------------------------------------------
    pytest.param(SIZE_BOMB, id="size-bomb-repeat-group"),
    pytest.param(
        H + "  - conv: 4\n  - repeat: 1000\n    layers:\n      - {conv: 4, repeat: 1000}\n",
        id="size-bomb-nested-repeat",
    ),
    pytest.param(
        T + "depth_multiple: 16\nlayers:\n  - {conv: 4, repeat: 1000}\n",
        id="size-bomb-depth-multiple",
    ),
    pytest.param(
        L(
            "conv2d: {out_channels: 16384, kernel_size: 15, padding: 7}",
            "conv2d: {out_channels: 16384, kernel_size: 15, padding: 7}",
        ),
        id="size-bomb-width",
    ),
    # -- YAML syntax -------------------------------------------------------------------------
    ("yaml-tab-indent", T + "layers:\n\t- conv: 8\n"),
    ("yaml-unclosed-bracket", "name: t\ninput: [3, 16, 16\nlayers: [relu]\n"),
    ("yaml-unclosed-brace", L("{conv: 8")),
    ("yaml-unclosed-quote", 'name: "t\ninput: [3, 16, 16]\nlayers: [relu]\n'),
    ("yaml-duplicate-layer-key", L("{conv: 8, conv: 4}")),
    ("yaml-duplicate-top-key", T + "input: [3, 8, 8]\nlayers: [relu]\n"),
    ("yaml-python-tag-in-layer", L("!!python/object/apply:os.system ['true']")),
    ("yaml-python-module-tag", "name: !!python/module:os\nlayers: [relu]\n"),
    ("yaml-custom-tag", L("conv: !evil 8")),
    ("yaml-merge-top", "base: &b {name: t}\n<<: *b\nlayers: [relu]\n"),
    ("yaml-undefined-alias", L("*nothing")),
    ("yaml-two-documents", "name: t\nlayers: [relu]\n---\nname: u\n"),
    ("yaml-binary", b"name: t\nlayers: [\xff\xfe]\n"),
    ("yaml-nul", b"name: t\x00\nlayers: [relu]\n"),
    ("yaml-set-tag", "name: t\nlayers: !!set {relu: null}\n"),
    # -- top level ---------------------------------------------------------------------------
    ("top-list", "- relu\n- conv: 8\n"),
    ("top-int", "42\n"),
    ("top-null", "null\n"),
    ("top-whitespace", "   \n\n"),
    ("top-unknown-key", T + "layres: [relu]\n"),
    ("top-unknown-key-far", T + "layers: [relu]\nbanana: 1\n"),
    pytest.param(T + 'layers: [relu]\n"a\\nb": 1\n', id="top-key-with-newline"),
    ("no-layers", T + ""),
    ("input-null", "name: t\ninput: null\nlayers: [relu]\n"),
    ("input-2-dims", "name: t\ninput: [16, 16]\nlayers: [relu]\n"),
    ("input-4-dims", "name: t\ninput: [1, 3, 16, 16]\nlayers: [relu]\n"),
    ("input-zero", "name: t\ninput: [3, 0, 16]\nlayers: [relu]\n"),
    ("input-string", "name: t\ninput: 3x16x16\nlayers: [relu]\n"),
    ("input-bool", "name: t\ninput: [true, 16, 16]\nlayers: [relu]\n"),
    ("input-float", "name: t\ninput: [3, 16.5, 16]\nlayers: [relu]\n"),
    ("input-huge", "name: t\ninput: [3, 100000, 16]\nlayers: [relu]\n"),
    ("num-classes-0", T + "num_classes: 0\nlayers: [relu]\n"),
    ("num-classes-neg", T + "num_classes: -1\nlayers: [relu]\n"),
    ("num-classes-true", T + "num_classes: true\nlayers: [relu]\n"),
    ("num-classes-float", T + "num_classes: 10.0\nlayers: [relu]\n"),
    ("init-unknown", T + "init: xavier_magic\nlayers: [relu]\n"),
    ("round-channels-0", T + "round_channels: 0\nlayers: [relu]\n"),
    (
        "stages-and-layers",
        T + "stages: {block: basic, layers: [1], widths: [8]}\nlayers: [relu]\n",
    ),
    ("stages-unknown-block", T + "stages: {block: basicc, layers: [1], widths: [8]}\n"),
    ("stages-layers-negative", T + "stages: {block: basic, layers: [-1], widths: [8]}\n"),
    ("vgg-bad-cfg", L("vgg: [64, X, 128]")),
    ("vgg-empty-cfg", L("vgg: []")),
    # -- timm-style ResNet options ----------------------------------------------------------
    ("stem-type-unknown", R + "stem: {type: deeep}\n"),
    ("stem-tiered-no-width", R + "stem: {type: deep_tiered, width: 2}\n"),
    ("attention-unknown", R.replace("widths: [8]", "widths: [8], attention: sse")),
    ("attention-not-a-role", R.replace("widths: [8]", "widths: [8], attention: conv")),
    ("attention-list-unknown", L("basic: {channels: 3, attention: ecca}")),
    ("avg-down-dilated", L("conv: 8", "bottleneck: {channels: 2, avg_down: true, dilation: 2}")),
    ("drop-path-rate-one", R.replace("widths: [8]", "widths: [8], drop_path_rate: 1.0")),
    ("eca-even-kernel", L("conv: 8", "eca: {kernel_size: 4}")),
    ("dla-tree-odd-size", L("conv2d: {out_channels: 8, kernel_size: 4}", "dla_tree: 8")),
    ("dla-tree-basic-groups", L("dla_tree: {out_channels: 8, cardinality: 32}")),
    ("dla-tree-groups", L("dla_tree: {out_channels: 3, block: bottleneck, cardinality: 2}")),
    ("dla-tree-no-width", L("dla_tree: {out_channels: 8, block: bottleneck, base_width: 4}")),
    ("dla-tree-block-unknown", L("dla_tree: {out_channels: 8, block: basik}")),
    ("dla-tree-levels-0", L("dla_tree: {out_channels: 8, levels: 0}")),
    ("hrnet-stage-packed-width", L("conv: 8", "hrnet_stage: {channels: [4, 8]}")),
    ("hrnet-stage-depth-0", L("conv: 24", "hrnet_stage: {channels: [4, 8], depth: 0}")),
    ("hrnet-transition-one-branch", L("hrnet_transition: {channels: [8]}")),
    (
        "hrnet-transition-odd-size",
        L("conv2d: {out_channels: 8, kernel_size: 2}", "hrnet_transition: {channels: [4, 8]}"),
    ),
    ("hrnet-incre-widths-count", L("conv: 8", "hrnet_incre: {branches: [8], channels: [2, 4]}")),
    ("hrnet-downsample-one-branch", L("conv: 8", "hrnet_downsample: {branches: [8]}")),
    ("ghost-module-ratio-1", L("ghost_module: {out_channels: 8, ratio: 1}")),
    ("ghost-module-even-cheap-kernel", L("ghost_module: {out_channels: 8, cheap_kernel_size: 4}")),
    ("ghost-bottleneck-no-mid", L("ghost_bottleneck: 16")),
    (
        "ghost-bottleneck-stride-3",
        L("ghost_bottleneck: {out_channels: 8, mid_channels: 8, stride: 3}"),
    ),
    (
        "ghost-bottleneck-se-negative",
        L("ghost_bottleneck: {out_channels: 8, mid_channels: 8, se: -1}"),
    ),
    (
        "ghost-stages-default-typo",
        L(
            "{name: b, block_stages: {defaults: {block: ghost_bottleneck, mid_channel: 8}, "
            "stages: [{out_channels: 8, mid_channels: 8}]}}"
        ),
    ),
    (
        "ghost-stages-no-mid",
        L("{name: b, block_stages: [{block: ghost_bottleneck, out_channels: 8}]}"),
    ),
    ("cn-conv-even-kernel", L("cn_conv: {out_channels: 8, kernel_size: 2}")),
    (
        "multiply-no-broadcast",
        L(
            "{name: a, conv: 8}",
            "global_avgpool: {flatten: false}",
            "conv: 4",
            "multiply: [-1, a]",
        ),
    ),
]

# the YAML path: one token, an odd key quoted as JSON (outputs["bad name"])
LINE_TAIL = re.compile(r':\d+:\d+: (?:[^\s"]|"(?:[^"\\]|\\.)*")+: .+$')


def _params():
    out = []
    for case in CASES:
        if not hasattr(case, "marks"):
            out.append(pytest.param(case[1], id=case[0]))
        else:
            out.append(case)
    return out


@pytest.mark.parametrize("doc", _params())
def test_bad_spec(tmp_path, capsys, doc):
    file = tmp_path / "spec.yaml"
    file.write_bytes(doc if isinstance(doc, bytes) else doc.encode())
    capsys.readouterr()
    start = time.perf_counter()
    code = main(["validate", str(file)])
    elapsed = time.perf_counter() - start
    captured = capsys.readouterr()
    err = captured.err
    assert code == 2, f"exit {code}; stdout={captured.out!r} stderr={err!r}"
    assert err.endswith("\n") and err.count("\n") == 1, f"expected one line, got:\n{err}"
    line = err[:-1]
    assert re.match(rf"^{re.escape(str(file))}{LINE_TAIL.pattern}", line), line
    assert elapsed < 5, f"took {elapsed:.1f}s"
    try:
        nasblocks.build(file)
    except NasBlocksError:
        pass
    except Exception as e:  # pragma: no cover - the failure is the point
        pytest.fail(f"raw {type(e).__name__} from build: {e}")
    else:
        pytest.fail("build accepted it")


def test_corpus_is_large():
    assert len(CASES) >= 80, len(CASES)
    ids = [c.id if hasattr(c, "marks") else c[0] for c in CASES]
    assert len(ids) == len(set(ids))
