"""One path-tracking issue collector for validators of untrusted documents.

A validator walks a document (a ``plugin.toml``, a plugin's UI-instruction JSON, configuration values)
and, instead of stopping at the first problem, records each one as an :class:`Issue` with the path of the
offending value (``schema.entities[0].fields[2].type``, ``blocks[3].rows[0]["odd key"]``) in an
:class:`Issues` collector, so that authors see every problem at once.

Helpers for the messages: :func:`at` / :func:`ix` / :func:`member` build paths, :func:`kind` names a
value's type ("a table", "an array"...), :func:`show` quotes a value as it was written, :func:`one_of` lists
the choices and :func:`suggest` finds a did-you-mean.

A check that fails returns :data:`INVALID` (``return issues.fail(path, message)``): a falsy sentinel of
its own type, so a check is typed ``T | Invalid`` and a legitimate ``None`` (JSON ``null``) stays distinct
from a failure.
"""

from __future__ import annotations

import datetime as dt
import difflib
import enum
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias, TypeVar

from app.core.i18n import N_, phrase

__all__ = [
    "INVALID",
    "Invalid",
    "Issue",
    "Issues",
    "at",
    "ix",
    "kind",
    "member",
    "one_of",
    "or_default",
    "show",
    "suggest",
]

T = TypeVar("T")
D = TypeVar("D")


@dataclass(frozen=True)
class Issue:
    """One problem: where (a dotted/indexed path) and what (a message for the document's author)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class _Invalid(enum.Enum):
    INVALID = "INVALID"

    def __bool__(self) -> Literal[False]:
        return False

    def __repr__(self) -> str:
        return "INVALID"


#: What a failed check returns (after recording its issue). Falsy, so ``check(...) or ""`` reads well.
INVALID: Final = _Invalid.INVALID
Invalid: TypeAlias = Literal[_Invalid.INVALID]


def or_default(value: T | Invalid, default: D) -> T | D:
    """``value``, or ``default`` when a check failed."""
    return default if value is INVALID else value


class Issues:
    """The issues found so far, in the order found."""

    def __init__(self) -> None:
        self.items: list[Issue] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(Issue(path, message))

    def fail(self, path: str, message: str) -> Invalid:
        """Record an issue and return :data:`INVALID`, for ``return issues.fail(...)`` in checks."""
        self.add(path, message)
        return INVALID

    def extend(self, issues: Iterable[Issue]) -> None:
        self.items.extend(issues)

    def __len__(self) -> int:
        return len(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)

    def __iter__(self) -> Iterator[Issue]:
        return iter(self.items)

    def __getitem__(self, index: int) -> Issue:
        return self.items[index]


# --- paths -----------------------------------------------------------------------------------------

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def at(path: str, key: str) -> str:
    """``path.key`` (just ``key`` at the top)."""
    return f"{path}.{key}" if path else key


def ix(path: str, index: int) -> str:
    """``path[index]``."""
    return f"{path}[{index}]"


def member(path: str, key: str) -> str:
    """Like :func:`at`, but a key that is not an identifier is quoted (``path["odd key"]``), shortened to
    60 characters and ASCII-escaped, so that any key an untrusted document uses stays printable."""
    if _IDENT.fullmatch(key):
        return at(path, key)
    shown = key if len(key) <= 60 else key[:60] + "…"
    return f"{path}[{json.dumps(shown)}]"


# --- values in messages ----------------------------------------------------------------------------


def kind(value: Any) -> str:
    """The type of a (TOML or JSON) value for messages: "a string", "a table", "an array"..."""
    if value is None:
        return phrase(N_("nothing"))
    if isinstance(value, bool):
        return phrase(N_("a boolean"))
    if isinstance(value, int):
        return phrase(N_("an integer"))
    if isinstance(value, float):
        return phrase(N_("a float"))
    if isinstance(value, str):
        return phrase(N_("a string"))
    if isinstance(value, Mapping):
        return phrase(N_("a table"))
    if isinstance(value, list | tuple):
        return phrase(N_("an array"))
    if isinstance(value, dt.datetime):
        return phrase(N_("a datetime"))
    if isinstance(value, dt.date):
        return phrase(N_("a date"))
    if isinstance(value, dt.time):
        return phrase(N_("a time"))
    return type(value).__name__


def show(value: Any) -> str:
    """A value as the author wrote it, for messages."""
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return repr(value)


def one_of(values: Iterable[str]) -> str:
    """``a, b, c``: the choices, in the given order."""
    return ", ".join(values)


def suggest(word: str, choices: Iterable[str]) -> str | None:
    """The choice ``word`` is most probably a typo of, if any is close enough."""
    close = difflib.get_close_matches(word, tuple(choices), n=1, cutoff=0.6)
    return close[0] if close else None
