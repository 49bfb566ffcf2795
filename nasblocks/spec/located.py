"""A pydantic validation error as one located line (``path: message``), with did-you-mean."""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

from nasblocks.errors import SpecError, YamlPath
from nasblocks.registry import suggest


def pydantic_error(
    err: ValidationError, prefix: YamlPath, model: type[BaseModel] | None = None
) -> SpecError:
    first = err.errors()[0]
    loc = tuple(x for x in first["loc"] if not (isinstance(x, str) and "[" in x))
    msg = first["msg"]
    if first["type"] == "value_error":  # a validator's own message: no pydantic prefix
        msg = msg.removeprefix("Value error, ")
    if first["type"] == "extra_forbidden" and loc:
        key = loc[-1]
        options = list(model.model_fields) if model is not None else []
        msg = f"unknown field {key!r}{suggest(str(key), options)}"
        if options and not suggest(str(key), options):
            msg += f"; valid fields: {', '.join(options)}"
    elif first["type"] == "missing":
        msg = f"missing required field {loc[-1]!r}" if loc else "missing value"
        loc = loc[:-1] if len(loc) > 1 else loc
    elif "input" in first and first["type"] not in ("missing",):
        shown = repr(first["input"])
        if len(shown) > 60:
            shown = shown[:57] + "..."
        msg = f"{msg} (got {shown})"
    extra = len(err.errors()) - 1
    if extra:
        msg += f" (and {extra} more error{'s' if extra > 1 else ''})"
    return SpecError(msg, (*prefix, *loc))
