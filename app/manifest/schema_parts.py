"""Building blocks of the manifest's JSON Schema (app.manifest.jsonschema): typed property schemas and
tables whose property list must equal the vocabulary's allowed keys."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from app.manifest import vocabulary as v

Schema = dict[str, Any]


# --- building blocks -------------------------------------------------------------------------------


def _table(keys: Iterable[str], properties: Mapping[str, Schema], description: str, **extra: Any) -> Schema:
    """An object allowing exactly the vocabulary's ``keys`` (in their order), nothing else."""
    keys = tuple(keys)
    if set(keys) != set(properties):
        missing, unknown = set(keys) - set(properties), set(properties) - set(keys)
        raise AssertionError(f"schema out of step with the vocabulary: missing {missing}, unknown {unknown}")
    return {
        "type": "object",
        "description": description,
        "properties": {key: properties[key] for key in keys},
        "additionalProperties": False,
        **extra,
    }


def _string(description: str, **extra: Any) -> Schema:
    return {"type": "string", "description": description, **extra}


def _text(description: str) -> Schema:
    """A string that must not be blank."""
    return _string(description, pattern=r"\S")


def _flag(description: str) -> Schema:
    return {"type": "boolean", "description": description}


def _integer(description: str, minimum: int, maximum: int | None = None) -> Schema:
    out: Schema = {"type": "integer", "description": description, "minimum": minimum}
    if maximum is not None:
        out["maximum"] = maximum
    return out


def _array(items: Schema, description: str, **extra: Any) -> Schema:
    return {"type": "array", "description": description, "items": items, **extra}


def _enum(values: Iterable[str], description: str) -> Schema:
    return {"type": "string", "description": description, "enum": list(values)}


def _when(key: str, value: Any) -> Schema:
    """An ``if`` that holds when ``key`` is present and equals ``value`` (or is one of a list of them)."""
    test = {"enum": value} if isinstance(value, list) else {"const": value}
    return {"properties": {key: test}, "required": [key]}


def _pattern(regex: re.Pattern[str]) -> str:
    return regex.pattern


def _unanchored(regex: re.Pattern[str]) -> str:
    return regex.pattern.removeprefix("^").removesuffix("$")


def _identifier(description: str, *, max_length: int = 63, forbidden: Iterable[str] = ()) -> Schema:
    """A table or column name: lowercase, starting with a letter, not a reserved word."""
    return _string(
        description,
        pattern=_pattern(v.NAME),
        maxLength=max_length,
        **{"not": {"enum": sorted(set(v.RESERVED_WORDS) | set(forbidden))}},
    )


# --- the parts of the manifest -----------------------------------------------------------------------


def file_field_properties() -> dict[str, Schema]:
    """The keys of file/image fields (app.manifest.sections.files)."""
    return {
        "accept": {
            "type": "array",
            "description": "file/image fields: the content types allowed, recognised from the file's "
            "content (default: any recognised type; image fields: the four image types).",
            "items": {"enum": [*v.FILE_CONTENT_TYPES, "image/*"]},
            "minItems": 1,
            "uniqueItems": True,
        },
        "max_size": _integer(
            f"file/image fields: the largest file in bytes (default {v.FILE_DEFAULT_MAX_SIZE}).",
            1,
            v.FILE_MAX_SIZE,
        ),
        "multiple": _flag("file/image fields: the field holds several files (default: one)."),
    }
