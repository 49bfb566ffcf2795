"""JSON Schema of spec files, generated from the DSL models and the block registry."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from nasblocks.registry import block_names, get_block
from nasblocks.spec.models import LAYER_META, BlockStages, SpecDocument, Vgg


def layer_model() -> type[BaseModel]:
    """One pydantic model for a layer: the meta keys plus one optional key per block kind."""
    fields: dict[str, Any] = {
        "name": (str | None, Field(None, description=LAYER_META["name"])),
        "from_": (
            int | str | list[int | str] | None,
            Field(None, alias="from", description=LAYER_META["from"]),
        ),
        "repeat": (int | None, Field(None, ge=1, description=LAYER_META["repeat"])),
        "aux": (bool | None, Field(None, description=LAYER_META["aux"])),
        "layers": (list[Any] | None, Field(None, description=LAYER_META["layers"])),
        "fixed_width": (bool | None, Field(None, description=LAYER_META["fixed_width"])),
        "vgg": (Vgg | list[int | Literal["M", "A"]] | None, Field(None, description=Vgg.__doc__)),
        "block_stages": (
            BlockStages | list[Any] | None,
            Field(None, description=BlockStages.__doc__),
        ),
    }
    for name in block_names():
        cls = get_block(name)
        short: Any = Any if cls.shorthand or cls.arity != 1 else None
        fields[name] = (cls | short | None, Field(None, description=(cls.__doc__ or "").strip()))
    return create_model(
        "Layer", __config__=ConfigDict(extra="forbid", populate_by_name=True), **fields
    )


def spec_json_schema() -> dict[str, Any]:
    Layer = layer_model()  # noqa: N806
    # Layer is a model made at run time: a value for pydantic to read, not a static type.
    layers = list[Layer | str] | None  # type: ignore[valid-type]
    Document = create_model(  # noqa: N806
        "Spec",
        __base__=SpecDocument,
        layers=(layers, Field(None, description="General layer list.")),
    )
    schema = Document.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "nasblocks spec"
    return schema
