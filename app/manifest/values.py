"""Values in manifests: configuration values (:func:`config_value`, also used for what admins type into
a configuration form) and the ``default`` of entity fields."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from app.core.i18n import N_
from app.core.validation import Issues, kind, one_of, show
from app.manifest.model import SelectOption
from app.manifest.vocabulary import (
    CONFIG_VALUE_MAX_LENGTH,
    DECIMAL_DEFAULT_PRECISION,
    EMAIL,
    INT64_MAX,
    INT64_MIN,
)

_TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
_FALSE_WORDS = frozenset({"false", "0", "no", "off"})


def config_value(ftype: str, value: Any, options: Iterable[str] = ()) -> Any:
    """Check and normalise one configuration value of type ``ftype``; raise :class:`ValueError` with a
    message for people. Accepts the typed TOML/JSON value or the text a form sends."""
    if ftype in ("string", "text", "url", "email", "select"):
        if not isinstance(value, str):
            raise ValueError(N_("expected text, got %(kind)s", kind=kind(value)))
        if len(value) > CONFIG_VALUE_MAX_LENGTH:
            raise ValueError(
                N_(
                    "is %(length)s characters long (at most %(config_value_max_length)s)",
                    length=len(value),
                    config_value_max_length=CONFIG_VALUE_MAX_LENGTH,
                )
            )
        if ftype == "url":
            value = value.strip()
            if not re.match(r"^https?://[^\s/?#]+[^\s]*$", value):
                raise ValueError(N_("%(value)s is not an http(s) URL", value=show(value)))
        elif ftype == "email":
            value = value.strip()
            if not EMAIL.match(value):
                raise ValueError(N_("%(value)s is not an e-mail address", value=show(value)))
        elif ftype == "select":
            allowed = tuple(options)
            if value not in allowed:
                raise ValueError(
                    N_(
                        "%(value)s is not one of the options (%(choices)s)",
                        value=show(value),
                        choices=one_of(allowed),
                    )
                )
        return value
    if ftype == "integer":
        if isinstance(value, str) and re.match(r"^\s*[+-]?\d+\s*$", value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(N_("%(value)s is not a whole number", value=show(value)))
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError(N_("%(value)s does not fit a 64-bit integer", value=value))
        return value
    if ftype == "decimal":
        number: Decimal | None = None
        if isinstance(value, int | float | str | Decimal) and not isinstance(value, bool):
            try:
                number = Decimal(str(value).strip())
            except InvalidOperation:
                number = None
        if number is None or not number.is_finite():
            raise ValueError(N_("%(value)s is not a decimal number", value=show(value)))
        return number
    if ftype == "boolean":
        if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS | _FALSE_WORDS:
            return value.strip().lower() in _TRUE_WORDS
        if not isinstance(value, bool):
            raise ValueError(N_("%(value)s is not true or false", value=show(value)))
        return value
    raise ValueError(N_("unknown type '%(ftype)s'", ftype=ftype))


def field_default(
    issues: Issues,
    value: Any,
    path: str,
    ftype: str,
    max_length: int | None,
    precision: int | None,
    scale: int | None,
    options: tuple[SelectOption, ...],
) -> Any:
    """The default of a ``ftype`` field, normalised (see :class:`FieldSpec`); ``None`` after recording an
    issue when it does not fit the field."""

    def bad(what: str = ftype) -> None:
        issues.add(path, N_("default %(value)s is not a valid %(what)s", value=show(value), what=what))

    if ftype in ("string", "text"):
        if not isinstance(value, str):
            bad("string")
            return None
        if max_length is not None and len(value) > max_length:
            issues.add(
                path,
                N_(
                    "default is %(length)s characters long (max_length is %(max_length)s)",
                    length=len(value),
                    max_length=max_length,
                ),
            )
            return None
        return value
    if ftype == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            bad()
            return None
        if not INT64_MIN <= value <= INT64_MAX:
            issues.add(path, N_("default %(value)s does not fit a 64-bit integer", value=value))
            return None
        return value
    if ftype == "decimal":
        return decimal_default(issues, value, path, precision or DECIMAL_DEFAULT_PRECISION, scale or 0)
    if ftype == "boolean":
        if not isinstance(value, bool):
            bad()
            return None
        return value
    if ftype == "date":
        if value == "today":
            return value
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
        issues.add(
            path, N_('default %(value)s is not a valid date (use YYYY-MM-DD or "today")', value=show(value))
        )
        return None
    if ftype == "datetime":
        if value == "now":
            return value
        parsed: dt.datetime | None = value if isinstance(value, dt.datetime) else None
        if parsed is None and isinstance(value, str):
            try:
                parsed = dt.datetime.fromisoformat(value)
            except ValueError:
                parsed = None
        if parsed is None:
            issues.add(
                path,
                N_('default %(value)s is not a valid datetime (use ISO 8601 or "now")', value=show(value)),
            )
            return None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)
    if ftype in ("uuid", "reference"):
        try:
            if isinstance(value, str):
                return uuid.UUID(value)
        except ValueError:
            pass
        bad("uuid")
        return None
    if ftype == "select":
        values = [o.value for o in options]
        if not isinstance(value, str) or (values and value not in values):
            issues.add(
                path,
                N_(
                    "default %(value)s is not one of the options (%(choices)s)",
                    value=show(value),
                    choices=one_of(values),
                ),
            )
            return None
        return value
    # json: any TOML value is a valid JSON document except dates and times.
    if _has_temporal(value):
        issues.add(path, N_("json defaults cannot contain TOML dates or times"))
        return None
    return value


def decimal_default(issues: Issues, value: Any, path: str, precision: int, scale: int) -> Decimal | None:
    number: Decimal | None = None
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            number = None
    if number is None or not number.is_finite():
        issues.add(path, N_("default %(value)s is not a valid decimal", value=show(value)))
        return None
    _sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # finite
    places = max(0, -exponent)
    integer_digits = max(0, len(digits) + exponent) if number != 0 else 0
    if places > scale or integer_digits > precision - scale:
        issues.add(
            path,
            N_(
                "default %(value)s does not fit decimal(%(precision)s, %(scale)s)",
                value=show(value),
                precision=precision,
                scale=scale,
            ),
        )
        return None
    return number


def _has_temporal(value: Any) -> bool:
    if isinstance(value, dt.date | dt.time):
        return True
    if isinstance(value, Mapping):
        return any(_has_temporal(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_temporal(v) for v in value)
    return False
