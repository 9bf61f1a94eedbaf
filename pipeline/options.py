"""Typed, frozen option sections whose declaration is also their schema.

A method's config is a frozen dataclass whose fields are declared with `option(default,
description, **constraints)`: the dataclass is what the code reads, and `section_schema`
turns the same declaration into the JSON-schema section `model.<method>` that validates the
configuration, fills its defaults and documents it (docs/configuration.md). So a method's
defaults live in one place, its own file. `typed(cls, values)` builds the dataclass from a
validated section: every field must be there (the schema filled the defaults)."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal

JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}


def option(default: Any, description: str = "", **constraints: Any) -> Any:
    """A config field: its default, what it means, and JSON-schema constraints (minimum, ...)."""
    return dataclasses.field(default=default, metadata={"description": description, "schema": constraints})


def _type_schema(annotation: Any) -> dict:
    if typing.get_origin(annotation) is Literal:  # the choices, and their type (for command-line strings)
        choices = list(typing.get_args(annotation))
        kinds = sorted({JSON_TYPES[type(choice)] for choice in choices})
        return {"type": kinds[0] if len(kinds) == 1 else kinds, "enum": choices}
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kinds = [JSON_TYPES[t] if t is not type(None) else "null" for t in typing.get_args(annotation)]
        return {"type": kinds}
    if annotation is float:  # an integer is a valid number too
        return {"type": "number"}
    return {"type": JSON_TYPES[annotation]}


def section_schema(cls: type, description: str = "") -> dict:
    """The JSON schema of one config section declared as an `option` dataclass."""
    hints = typing.get_type_hints(cls)
    properties = {}
    for field in dataclasses.fields(cls):
        entry = {**_type_schema(hints[field.name]), **field.metadata.get("schema", {}), "default": field.default}
        if field.metadata.get("description"):
            entry = {"description": field.metadata["description"], **entry}
        properties[field.name] = entry
    schema = {"type": "object", "additionalProperties": False, "default": {}, "properties": properties}
    return {"description": description, **schema} if description else schema


def typed(cls: type, values: dict) -> Any:
    """`cls` from a validated section; keys that are not fields of `cls` are ignored."""
    names = {field.name for field in dataclasses.fields(cls)}
    missing = sorted(names - set(values))
    if missing:
        raise KeyError(f"{cls.__name__}: options {', '.join(missing)} are missing (the schema fills them)")
    return cls(**{key: value for key, value in values.items() if key in names})
