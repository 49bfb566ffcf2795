"""What a layer may be called: plain identifiers that shadow nothing an ``nn.Module`` has.

Layer names become module attributes and names in the generated ``forward``, so a spec can
never name a layer ``forward``, ``state_dict`` or ``__class__`` (a spec is data, never code).
"""

from __future__ import annotations

import keyword
import re
from typing import Any

from nasblocks.errors import SpecError, YamlPath

MAX_LAYERS = 10_000
"""Blocks in a network once every ``repeat`` is expanded. The largest standard networks have a
few hundred (ResNet-152: 155 convolutions); a spec over this is refused before it is planned,
so a 1 KB file cannot keep ``summary`` or ``build`` busy for minutes."""
# Layer names become module attributes and names in the generated ``forward``: they must be
# plain identifiers (or nn.Sequential-style indices) that shadow nothing a module has. The
# public attributes of ``torch.fx.GraphModule`` / ``nn.Sequential`` / ``nn.Module`` are written
# out here so that the spec layer stays torch-free; tests/spec/test_hostile.py checks this
# list against torch's and nasblocks' Network. ``spec`` is the attribute ``build`` sets.
RESERVED_NAMES = frozenset(
    [
        "T_destination",
        "add_module",
        "add_submodule",
        "append",
        "apply",
        "bfloat16",
        "buffers",
        "call_super_init",
        "children",
        "code",
        "compile",
        "cpu",
        "cuda",
        "delete_all_unused_submodules",
        "delete_submodule",
        "double",
        "dump_patches",
        "eval",
        "extend",
        "extra_repr",
        "float",
        "forward",
        "get_buffer",
        "get_extra_state",
        "get_parameter",
        "get_submodule",
        "graph",
        "half",
        "insert",
        "ipu",
        "load_state_dict",
        "modules",
        "mtia",
        "named_buffers",
        "named_children",
        "named_modules",
        "named_parameters",
        "parameters",
        "pop",
        "print_readable",
        "recompile",
        "register_backward_hook",
        "register_buffer",
        "register_forward_hook",
        "register_forward_pre_hook",
        "register_full_backward_hook",
        "register_full_backward_pre_hook",
        "register_load_state_dict_post_hook",
        "register_load_state_dict_pre_hook",
        "register_module",
        "register_parameter",
        "register_state_dict_post_hook",
        "register_state_dict_pre_hook",
        "requires_grad_",
        "set_extra_state",
        "set_submodule",
        "share_memory",
        "state_dict",
        "to",
        "to_empty",
        "to_folder",
        "train",
        "type",
        "xpu",
        "zero_grad",
        "training",
        "meta",
        "shape_env",
        "spec",
        "self",
    ]
)
NETWORK_NAMES = frozenset(
    [  # what nasblocks' Network and FeatureNetwork add (timm's model API): layer names only
        "drop_rate",
        "feature_info",
        "forward_features",
        "forward_head",
        "get_classifier",
        "head_hidden_size",
        "kept",
        "num_classes",
        "num_features",
        "reset_classifier",
    ]
)
NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}|[0-9]{1,9}")
NAME_RULE = (
    "a name is a letter followed by letters, digits or _ (at most 64), or a layer index; "
    "not a Python keyword nor a module attribute"
)


MAX_DOTS = 3
"""Dots a layer name may hold (``convs.0``: the module ``0`` of a container ``convs``)."""


def check_layer_name(name: Any, path: YamlPath) -> str:
    """A layer name: a name, or a dotted path of names (at most :data:`MAX_DOTS` dots) that
    puts the layer's module inside a container of that path (``convs.0``, ``bns.0``: timm's
    interleaved ``ModuleList`` children), whatever the data flow; every part follows the rule
    of :func:`check_name`, and the first (an attribute of the network) is none of
    :data:`NETWORK_NAMES`."""
    if isinstance(name, str) and "." in name:
        parts = name.split(".")
        if len(parts) > MAX_DOTS + 1:
            raise SpecError(f"layer name {name!r} has more than {MAX_DOTS} dots", path)
        for part in parts:
            try:
                check_name(part, path, "layer name part")
            except SpecError as e:
                raise SpecError(f"in layer name {name!r}: {e.message}", path) from None
        first = parts[0]
    else:
        name = first = check_name(name, path)
    if first in NETWORK_NAMES:
        raise SpecError(
            f"layer name {first!r} is an attribute of nasblocks' networks (timm's model API); "
            "choose another name",
            path,
        )
    return name


def check_paths(names: dict[str, Any], path_of: Any) -> None:
    """Dotted names of one layer list must not go inside a sibling's own module: ``convs.0``
    next to a layer ``convs`` is refused at ``path_of(name)`` (containers are made only for
    the dotted names)."""
    for name in names:
        parts = name.split(".")
        for k in range(1, len(parts)):
            outer = ".".join(parts[:k])
            if outer in names:
                raise SpecError(
                    f"layer {name!r} would go inside layer {outer!r}, which is a module of "
                    f"its own; rename one of them",
                    path_of(name),
                )


def check_name(name: Any, path: YamlPath, what: str = "layer name") -> str:
    """``name`` as a safe identifier, or a located SpecError saying the rule."""
    if isinstance(name, int) and not isinstance(name, bool) and name >= 0:
        name = str(name)
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        shown = repr(name) if len(repr(name)) <= 40 else repr(name)[:37] + "..."
        raise SpecError(f"{what} {shown} is not allowed: {NAME_RULE}", path)
    if keyword.iskeyword(name):
        raise SpecError(f"{what} {name!r} is a Python keyword; choose another name", path)
    if name in RESERVED_NAMES:
        raise SpecError(
            f"{what} {name!r} is an attribute every nn.Module has; choose another name",
            path,
        )
    return name
