"""Checks of single values in a plugin's UI instructions, and the reader of one JSON object.

Each check is `(value, path, errs) -> normalized value`, or `INVALID` after recording its problem with
the value's JSON path in `errs` (an `app.core.validation.Issues`); app.ui.validate builds the blocks
from them. A plugin is untrusted: strings are bounded and URLs must be same-origin relative ones.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from app.core.i18n import N_, phrase
from app.core.validation import INVALID, Invalid, Issues, member

MAX_STRING = 10_000
MAX_URL = 2048
MAX_CHART_VALUE = 1e15

_SURROGATE = re.compile("[\ud800-\udfff]")  # would make the response unencodable
_URL_BAD = re.compile(r"[\x00-\x20\x7f\\]")
ACTION_RE = re.compile(r"[a-z0-9_-]{1,64}")
ID_RE = re.compile(r"[a-z0-9_-]{1,64}")
# Field and data names become form keys: a leading letter keeps `_csrf_token` and friends out of reach.
NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
PERMISSION_RE = re.compile(r"(?:ui|db)\.[a-z0-9_.*-]{1,200}")


def safe_relative_url(href: str) -> str | None:
    """`href` when it is a same-origin relative URL (`/path`, `?query`, `#frag`), else None.

    The first character decides: `/` not followed by `/` or `\\` (which browsers treat as another host),
    `?` or `#`. So no scheme (`javascript:`, `data:`...) can ever lead; controls, whitespace and
    backslashes are refused anywhere since browsers strip or reinterpret them."""
    if not isinstance(href, str) or not href or len(href) > MAX_URL:
        return None
    if _URL_BAD.search(href) or _SURROGATE.search(href) or any(ch.isspace() for ch in href):
        return None
    if href[0] in "?#" or (href[0] == "/" and href[1:2] not in ("/", "\\")):
        return href
    return None


Errs = Issues
Check = Callable[[Any, str, Errs], Any]


def is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def c_str(value: Any, path: str, errs: Errs) -> str | Invalid:
    if not isinstance(value, str):
        return errs.fail(path, N_("expected a string"))
    if len(value) > MAX_STRING:
        return errs.fail(
            path, N_("longer than %(max_string)s characters", max_string=format(MAX_STRING, ","))
        )
    if _SURROGATE.search(value):
        return errs.fail(path, N_("contains an unpaired surrogate (invalid Unicode)"))
    return value


def c_bool(value: Any, path: str, errs: Errs) -> bool | Invalid:
    return value if isinstance(value, bool) else errs.fail(path, N_("expected a boolean"))


def c_number(value: Any, path: str, errs: Errs) -> float | Invalid:
    return value if is_number(value) else errs.fail(path, N_("expected a number"))


def c_scalar(value: Any, path: str, errs: Errs) -> str | float | bool | Invalid | None:
    if value is None or isinstance(value, bool) or is_number(value):
        return value
    if isinstance(value, str):
        return c_str(value, path, errs)
    return errs.fail(path, N_("expected a string, number, boolean or null"))


def c_url(value: Any, path: str, errs: Errs) -> str | Invalid:
    if c_str(value, path, errs) is INVALID:
        return INVALID
    return safe_relative_url(value) or errs.fail(
        path,
        N_(
            'expected a relative URL starting with a single "/", "?" or "#" (no scheme, host, spaces or backslashes)'
        ),
    )


def c_enum(*choices: str) -> Check:
    def check(value: Any, path: str, errs: Errs) -> str | Invalid:
        return (
            value
            if value in choices and isinstance(value, str)
            else errs.fail(path, N_("expected one of: %(choices)s", choices=", ".join(choices)))
        )

    return check


def c_int(lo: int, hi: int) -> Check:
    def check(value: Any, path: str, errs: Errs) -> int | Invalid:
        ok = isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi
        return value if ok else errs.fail(path, N_("expected an integer from %(lo)s to %(hi)s", lo=lo, hi=hi))

    return check


def c_match(regex: re.Pattern[str], what: str) -> Check:
    def check(value: Any, path: str, errs: Errs) -> str | Invalid:
        return (
            value
            if isinstance(value, str) and regex.fullmatch(value)
            else errs.fail(path, N_("expected %(what)s", what=what))
        )

    return check


def c_list(max_items: int, min_items: int = 0) -> Check:
    def check(value: Any, path: str, errs: Errs) -> list[Any] | Invalid:
        if not isinstance(value, list):
            return errs.fail(path, N_("expected a list"))
        if not min_items <= len(value) <= max_items:
            return errs.fail(
                path,
                N_(
                    "expected %(min_items)s to %(max_items)s items, got %(length)s",
                    min_items=min_items,
                    max_items=format(max_items, ","),
                    length=format(len(value), ","),
                ),
            )
        return value

    return check


c_action = c_match(ACTION_RE, phrase(N_("an action name: 1-64 of a-z, 0-9, _ and -")))
c_id = c_match(ID_RE, phrase(N_("an id: 1-64 of a-z, 0-9, _ and -")))
c_name = c_match(NAME_RE, phrase(N_("a name: a letter, then up to 63 of A-Z, a-z, 0-9, _, . and -")))
c_permission = c_match(
    PERMISSION_RE,
    phrase(N_('a permission like "ui.<plugin>.<element>" or "db.<plugin>.<entity>.<operation>"')),
)


class Obj:
    """One JSON object being read: unknown keys and failed checks land in `errs`, with their paths."""

    def __init__(self, raw: dict[str, Any], path: str, errs: Errs, allowed: frozenset[str]) -> None:
        self.raw, self.path, self.errs = raw, path, errs
        for key in raw:
            if key not in allowed:
                errs.add(member(path, key), N_("unknown property"))

    @classmethod
    def of(cls, raw: Any, path: str, errs: Errs, allowed: frozenset[str]) -> Obj | None:
        """The object at `path`, or None after recording that `raw` is not one."""
        if isinstance(raw, dict):
            return cls(raw, path, errs, allowed)
        errs.add(path, N_("expected an object"))
        return None

    def at(self, key: str) -> str:
        return member(self.path, key)

    def get(self, key: str, check: Check, default: Any = None, *, required: bool = False) -> Any:
        """The checked value at `key`; `default` when it is missing or invalid, or null (JSON's nothing)."""
        if key not in self.raw:
            if required:
                self.errs.add(self.at(key), N_("required"))
            return default
        value = check(self.raw[key], self.at(key), self.errs)
        return default if value is INVALID or value is None else value


def c_chart_value(value: Any, path: str, errs: Errs) -> float | Invalid | None:
    if value is None:
        return None
    if not is_number(value) or abs(value) > MAX_CHART_VALUE:
        return errs.fail(
            path,
            N_(
                "expected a number between -%(max_chart_value)s and %(max_chart_value)s, or null",
                max_chart_value=format(MAX_CHART_VALUE, ".0e"),
            ),
        )
    return value
