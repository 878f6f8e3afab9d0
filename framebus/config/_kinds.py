"""Kinds: each subscriber kind and source kind is one model class, found by its ``kind`` tag.

A kind is declared once, by its model (fields, bounds, defaults, help). The registry maps tags
to models: the entry points ``framebus.subscribers`` and ``framebus.sources`` (pyproject.toml
lists the shipped ones, one line each; a plug-in package lists its own), plus any model passed
to :func:`register_kind`. The topology validates ``subscribers[i]`` and ``streams[i].source``
against what is registered when it is read, so the config names no kind's module: the kinds
import the config (the arrow points down) and the registry points at them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import BaseModel, Field, GetCoreSchemaHandler, GetJsonSchemaHandler, TypeAdapter
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

__all__ = ["SOURCES", "SUBSCRIBERS", "ByKind", "Group", "kind_named", "kind_of", "kinds", "register_kind"]

Group = Literal["framebus.subscribers", "framebus.sources"]
SUBSCRIBERS: Group = "framebus.subscribers"
SOURCES: Group = "framebus.sources"

_lock = threading.RLock()
_registered: dict[str, dict[str, type[BaseModel]]] = {SUBSCRIBERS: {}, SOURCES: {}}
_loaded: set[str] = set()


def kind_of(model: type[BaseModel]) -> str:
    """The tag of a kind model: the one value of its ``kind: Literal["tag"]`` field."""
    field = model.model_fields.get("kind")
    tags = get_args(field.annotation) if field is not None else ()
    if len(tags) != 1 or not isinstance(tags[0], str):
        raise TypeError(f"{model.__name__}: a kind model needs exactly one tag, kind: Literal['name']")
    return str(tags[0])


def register_kind(group: Group, model: type[BaseModel]) -> type[BaseModel]:
    """Add `model` to the kinds of `group` (in-process; a package lists its kinds as entry points)."""
    with _lock:
        _registered[group][kind_of(model)] = model
    return model


def kinds(group: Group) -> dict[str, type[BaseModel]]:
    """Every kind of `group` by tag, sorted: entry points (imported on first use, not at import
    of framebus.config) and :func:`register_kind`'s."""
    with _lock:
        if group not in _loaded:
            _loaded.add(group)  # first, so a kind module that reads a topology at import does not recurse
            for point in entry_points(group=group):
                model = point.load()
                if kind_of(model) != point.name:
                    raise TypeError(f"entry point {group}:{point.name} is a model of kind {kind_of(model)!r}")
                _registered[group].setdefault(point.name, model)
        return dict(sorted(_registered[group].items()))


def kind_named(group: Group, wanted: Callable[[type[BaseModel]], bool], hint: str) -> type[BaseModel] | None:
    """The kind `wanted` accepts, importing as few kind modules as it can: entry points are tried
    in order of the prefix their tag shares with `hint` (``framebus record`` wants ``recorder``),
    so running one service does not import all of them (and OpenCV and aiohttp with them)."""
    with _lock:
        found = next((m for m in _registered[group].values() if wanted(m)), None)
        if found is not None or group in _loaded:
            return found
        points = sorted(entry_points(group=group), key=lambda p: -_shared_prefix(p.name, hint))
        for point in points:
            model: type[BaseModel] = point.load()
            if kind_of(model) == point.name:
                _registered[group].setdefault(point.name, model)
                if wanted(model):
                    return model
    return None


def _shared_prefix(a: str, b: str) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def _validate(group: Group, value: object) -> BaseModel:
    """`value` (a mapping, or a model already) as the model its ``kind`` names. A ValidationError
    from that model keeps its field locations: pydantic nests it under this entry's location."""
    known = kinds(group)
    if isinstance(value, BaseModel) and type(value) in known.values():
        return value
    tag = value.get("kind") if isinstance(value, dict) else None
    model = known.get(tag) if isinstance(tag, str) else None
    if model is None:  # worded as pydantic words it for a union of models
        expected = ", ".join(repr(tag) for tag in known).replace("{", "{{").replace("}", "}}")
        if not isinstance(value, dict) or "kind" not in value:
            raise PydanticCustomError(
                "union_tag_not_found", "Unable to extract tag using discriminator 'kind'"
            )
        found = repr(tag).replace("{", "{{").replace("}", "}}")
        raise PydanticCustomError(
            "union_tag_invalid",
            f"Input tag {found} found using 'kind' does not match any of the expected tags: {expected}",
        )
    return model.model_validate(value)


class ByKind:
    """Annotated metadata: validate as the registered kind of `group` that ``kind`` names."""

    def __init__(self, group: Group, noun: str) -> None:
        self.group, self.noun = group, noun

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(
            lambda value: _validate(self.group, value),
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda model, info: model.model_dump(mode=info.mode), info_arg=True
            ),
        )

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        models = tuple(kinds(self.group).values())
        union: Any = Annotated[Union[models], Field(discriminator="kind")]  # noqa: UP007 (a runtime tuple)
        return handler(TypeAdapter(union).core_schema)
