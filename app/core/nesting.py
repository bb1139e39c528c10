"""Depth and size bounds for TOML and JSON text that comes from outside (manifests, guests, API clients).

`tomllib` and `json` recurse once per nesting level: 5,000 nested arrays or 2,000 nested inline tables
end in RecursionError, which would surface as a 500. So text is scanned for bracket depth first (a
linear pass that skips strings and comments, recursing nowhere), and, since TOML's dotted keys
(`a.b.c...`) nest tables without any bracket, the parsed value's depth is checked again, iteratively,
before any recursive code (validators, `json.dumps`) walks it.
"""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any, Literal

from app.core.i18n import N_

#: Generous for every legitimate document here (a manifest nests about 8 levels, UI JSON about 20) and
#: far below Python's recursion limit.
DEFAULT_MAX_DEPTH = 64

Syntax = Literal["toml", "json"]


class TextRejected(ValueError):
    """The text is too large or nested too deeply; the message says which, located where possible."""


def _too_deep(limit: int, line: int, column: int) -> str:
    return N_(
        "nested more than %(limit)s levels deep (line %(line)s, column %(column)s)",
        limit=limit,
        line=line,
        column=column,
    )


def too_large(text: str, max_bytes: int) -> str | None:
    # Characters bound bytes from below (at most 4 bytes each), so the cheap test usually decides.
    if len(text) <= max_bytes // 4:
        return None
    size = len(text.encode("utf-8", "surrogatepass"))
    if size <= max_bytes:
        return None
    return N_(
        "is %(size)s bytes; at most %(max_bytes)s are allowed", size=f"{size:,}", max_bytes=f"{max_bytes:,}"
    )


# Tokens that matter for depth: brackets, and what hides brackets (strings, TOML comments). Every string
# alternative matches once its opening quote is seen (up to the closing quote, a newline where the parser
# would fail anyway, or the end) and its quantifiers are possessive, so the scan stays linear on hostile
# text. Multi-line TOML strings close greedily (`"""a"""""` holds `a""`), as tomllib does.
_BASIC = r'"(?:[^"\\\n]|\\[^\n]?)*+(?:"|(?=\n)|\Z)'
_TOKENS: dict[str, re.Pattern[str]] = {
    "json": re.compile(_BASIC + r"|[\[\]{}]"),
    "toml": re.compile(
        r'"""(?:[^"\\]|\\[\s\S]?|"(?!""))*+(?:"""(?:""?)?|\Z)'
        r"|'''(?:[^']|'(?!''))*+(?:'''(?:''?)?|\Z)"
        r"|" + _BASIC + r"|'[^'\n]*+(?:'|(?=\n)|\Z)|#[^\n]*+|[\[\]{}]"
    ),
}


def scan_depth(text: str, syntax: Syntax, limit: int) -> str | None:
    """The located problem when brackets outside strings (and TOML comments) nest beyond `limit`.

    Over-counting is harmless (it can only refuse text the parser would refuse anyway); under-counting
    must never happen, hence strings that end where the parser would give up rather than run on."""
    if text.count("[") + text.count("{") <= limit:  # cannot nest deeper: the usual case, at C speed
        return None
    depth = 0
    for match in _TOKENS[syntax].finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > limit:
                pos = match.start()
                return _too_deep(limit, text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos))
        elif token in ("]", "}"):
            depth -= 1
    return None


def value_too_deep(value: Any, limit: int) -> bool:
    """Whether a parsed value nests containers beyond `limit` levels (iterative: never recurses)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list | tuple))
    return False


def check(text: str, syntax: Syntax, *, max_depth: int = DEFAULT_MAX_DEPTH, max_bytes: int) -> str | None:
    """The first problem of `text` (size, then depth), or None when it may be parsed."""
    return too_large(text, max_bytes) or scan_depth(text, syntax, max_depth)


def loads_toml(text: str, *, max_depth: int = DEFAULT_MAX_DEPTH, max_bytes: int) -> dict[str, Any]:
    """`tomllib.loads` within bounds; TextRejected (size/depth) or tomllib.TOMLDecodeError otherwise."""
    problem = check(text, "toml", max_depth=max_depth, max_bytes=max_bytes)
    if problem:
        raise TextRejected(problem)
    data = tomllib.loads(text)
    if value_too_deep(data, max_depth):
        raise TextRejected(
            N_(
                "nested more than %(max_depth)s levels deep (dotted keys or table headers)",
                max_depth=max_depth,
            )
        )
    return data


def loads_json(
    text: str | bytes, *, max_depth: int = DEFAULT_MAX_DEPTH, max_bytes: int, **kwargs: Any
) -> Any:
    """`json.loads` within bounds; TextRejected (size/depth) or ValueError (not JSON) otherwise."""
    if isinstance(text, bytes | bytearray):
        if len(text) > max_bytes:
            raise TextRejected(
                N_(
                    "is %(size)s bytes; at most %(max_bytes)s are allowed",
                    size=f"{len(text):,}",
                    max_bytes=f"{max_bytes:,}",
                )
            )
        text = bytes(text).decode("utf-8")
    problem = check(text, "json", max_depth=max_depth, max_bytes=max_bytes)
    if problem:
        raise TextRejected(problem)
    return json.loads(text, **kwargs)
