"""Walk the spec models by key path: which fields exist where, for hints and sweep checks."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

KeyPath = tuple[str | int, ...]


def members(tp: Any) -> list[Any]:
    """Flatten Annotated/Optional/Union wrappers into their member types."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return members(typing.get_args(tp)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [m for arg in typing.get_args(tp) for m in members(arg)]
    return [tp]


def types_at(roots: Iterable[Any], path: KeyPath) -> list[Any]:
    """The types a value at `path` may have, starting from the given root types."""
    current = [m for r in roots for m in members(r)]
    for part in path:
        nxt: list[Any] = []
        for tp in current:
            origin = typing.get_origin(tp)
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                field = _field(tp, str(part))
                if field is not None:
                    nxt.extend(members(field.annotation))
            elif origin in (list, tuple, set, frozenset) and isinstance(part, int):
                args = typing.get_args(tp)
                if args:
                    nxt.extend(members(args[0]))
            elif origin is dict:
                args = typing.get_args(tp)
                if len(args) == 2:
                    nxt.extend(members(args[1]))
        current = nxt
    return current


def field_names_at(roots: Iterable[Any], path: KeyPath) -> list[str]:
    """Names of the keys a mapping at `path` accepts (empty when it is not a model)."""
    names: list[str] = []
    for tp in types_at(roots, path):
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            keys = [f.alias or n for n, f in tp.model_fields.items()]
            names.extend(k for k in keys if k not in names)
    return names


def _field(model: type[BaseModel], key: str) -> Any:
    """The field a YAML key names, by its alias (`for`) or its name."""
    for name, field in model.model_fields.items():
        if (field.alias or name) == key:
            return field
    return None


def model_members(tp: Any) -> list[type[BaseModel]]:
    """The pydantic models among a type's Annotated/Optional/Union members."""
    return [m for m in members(tp) if isinstance(m, type) and issubclass(m, BaseModel)]
