"""Safe YAML loading that remembers where every value came from.

Only plain YAML types are constructed (no Python tags). Duplicate keys, oversized or binary
files, very deep nesting and alias bombs are refused with a located :class:`SpecError`
before anything is built. ``positions`` maps a YAML path tuple to its 1-based
``(line, column)``, so later stages can locate their own errors.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from nasblocks.errors import SpecError, YamlPath

MAX_BYTES = 2 << 20
MAX_DEPTH = 64
MAX_NODES = 200_000

Positions = dict[YamlPath, tuple[int, int]]


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` as a float (YAML 1.1 wants ``1.0e-3``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_text(path: str | Path) -> str:
    """Read a spec file, refusing what cannot be one (missing, directory, huge, binary)."""
    p = Path(path)
    name = str(path)
    if not p.exists():
        raise SpecError("no such file", file=name, line=1, column=1)
    if p.is_dir():
        raise SpecError("is a directory, expected a YAML file", file=name, line=1, column=1)
    try:
        size = p.stat().st_size
        if size > MAX_BYTES:
            raise SpecError(
                f"file is {size} bytes; specs are limited to {MAX_BYTES}", file=name, line=1
            )
        raw = p.read_bytes()
    except OSError as e:
        raise SpecError(f"cannot read: {e.strerror or e}", file=name, line=1, column=1) from None
    if b"\x00" in raw:
        raise SpecError("binary file, expected YAML text", file=name, line=1, column=1)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise SpecError("not UTF-8 text", file=name, line=line, column=1) from None


def parse_yaml(text: str, file: str | None = None) -> tuple[Any, Positions]:
    """Parse one YAML document into plain Python values and their positions."""
    if len(text) > MAX_BYTES:
        raise SpecError(f"document is longer than {MAX_BYTES} characters", file=file, line=1)
    try:
        docs = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        msg = (e.problem or e.context or "invalid YAML").strip()
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise SpecError(f"YAML syntax error: {msg}", file=file, line=line, column=col) from None
    except yaml.YAMLError as e:
        raise SpecError(f"YAML error: {e}", file=file, line=1, column=1) from None
    except RecursionError:
        raise SpecError(
            f"nesting is too deep (limit {MAX_DEPTH})", file=file, line=1, column=1
        ) from None
    docs = [d for d in docs if d is not None]
    if not docs:
        raise SpecError("empty document", file=file, line=1, column=1)
    if len(docs) > 1:
        m = docs[1].start_mark
        raise SpecError(
            "several YAML documents; a spec is one document",
            file=file,
            line=m.line + 1,
            column=m.column + 1,
        )
    return _Converter(file).convert(docs[0])


class _Converter:
    def __init__(self, file: str | None) -> None:
        self.file = file
        self.positions: Positions = {}
        self.nodes = 0
        self.constructor = _Loader("")

    def convert(self, node: yaml.Node) -> tuple[Any, Positions]:
        value = self._value(node, (), 0)
        return value, self.positions

    def _error(self, message: str, node: yaml.Node, path: YamlPath) -> SpecError:
        m = node.start_mark
        return SpecError(message, path, self.file, m.line + 1, m.column + 1)

    def _value(self, node: yaml.Node, path: YamlPath, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self._error(
                f"document expands to more than {MAX_NODES} values (alias bomb?)", node, path
            )
        if depth > MAX_DEPTH:
            raise self._error(f"nesting is too deep (limit {MAX_DEPTH})", node, path)
        self.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.ScalarNode):
            try:
                return self.constructor.construct_object(node, deep=True)
            except yaml.YAMLError as e:
                raise self._error(
                    f"cannot read value: {getattr(e, 'problem', e)}", node, path
                ) from None
        if isinstance(node, yaml.SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                raise self._error(f"unsupported tag {node.tag}", node, path)
            return [self._value(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            if node.tag != "tag:yaml.org,2002:map":
                raise self._error(f"unsupported tag {node.tag}", node, path)
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise self._error("merge keys (<<) are not supported", key_node, path)
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self._error("mapping keys must be plain scalars", key_node, path)
                key = self.constructor.construct_object(key_node)
                if not isinstance(key, (str, int)) or isinstance(key, bool):
                    key = str(key_node.value)
                where = (*path, key)  # named: mypy takes d[(*p, k)] for 3.11's d[*p, k]
                if key in out:
                    raise self._error(f"duplicate key {key!r}", key_node, where)
                self.positions[where] = (
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
                out[key] = self._value(value_node, where, depth + 1)
            return out
        raise self._error("unsupported YAML node", node, path)  # pragma: no cover


def load_yaml(path: str | Path) -> tuple[Any, Positions]:
    return parse_yaml(read_text(path), file=str(path))


class _SpecDumper(yaml.SafeDumper):
    """Short lists of scalars on one line (``layers: [2, 2, 1]``), as people write specs."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = len(data) <= 16 and all(not isinstance(v, (dict, list)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_SpecDumper.add_representer(list, _represent_list)


def dump_spec(spec: dict[str, Any]) -> str:
    """A concrete spec as YAML, identity and shape first."""
    first = {k: spec[k] for k in ("name", "input", "num_classes") if k in spec}
    ordered = first | {k: v for k, v in spec.items() if k not in first}
    return yaml.dump(ordered, Dumper=_SpecDumper, sort_keys=False, width=99)
