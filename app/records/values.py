"""Typed values of plugin fields: parsing from forms (strings) and JSON, and display formatting."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Context, Decimal, InvalidOperation
from typing import Any

from app.core.i18n import N_
from app.core.nesting import TextRejected, loads_json
from app.manifest import FieldSpec

INT64 = 2**63 - 1
TRUE = {"true", "1", "on", "yes"}
FALSE = {"false", "0", "off", "no", ""}
JSON_FIELD_MAX_BYTES = 1_000_000  # a json field typed into a form (depth-bounded too: app.nesting)


class FieldError(ValueError):
    """A value that does not fit its field; the message (a msgid or Msg, translated where it is shown)
    is shown next to the field."""

    @property
    def message(self) -> str:
        return self.args[0] if self.args else str(self)


def parse(field: FieldSpec, value: Any) -> Any:
    """Parse one value for `field`; '' and None mean 'no value'. Raises FieldError."""
    if isinstance(value, str) and field.type not in {"string", "text", "json"}:
        value = value.strip()
    if value is None or (value == "" and field.type not in {"boolean"}):
        return None
    kind = field.type
    if kind in {"string", "text"}:
        if not isinstance(value, str):
            raise FieldError(N_("Enter text."))
        if "\x00" in value:
            raise FieldError(N_("Text may not contain NUL characters."))
        if kind == "string":
            value = value.strip()
            if field.max_length and len(value) > field.max_length:
                raise FieldError(
                    N_("Use at most %(max)s characters (this has %(n)s).", max=field.max_length, n=len(value))
                )
        return value if value != "" else None
    if kind == "integer":
        if isinstance(value, float) and value.is_integer():  # JSON's 5.0 is a whole number too
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise FieldError(N_("Enter a whole number."))
        try:
            number = int(value)
        except ValueError as exc:
            raise FieldError(N_("Enter a whole number, like 42.")) from exc
        if abs(number) > INT64:
            raise FieldError(N_("That number is too large."))
        return number
    if kind == "decimal":
        if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
            raise FieldError(N_("Enter a number."))
        try:
            amount = Decimal(str(value))
        except InvalidOperation as exc:
            raise FieldError(N_("Enter a number, like 12.50.")) from exc
        if not amount.is_finite():
            raise FieldError(N_("Enter a finite number."))
        scale = field.scale if field.scale is not None else 2
        precision = field.precision or 18
        if amount and amount.adjusted() >= precision - scale:  # first: quantize() cannot hold huge values
            raise FieldError(N_("Use at most %(n)s digits before the decimal point.", n=precision - scale))
        quantized = amount.quantize(Decimal(1).scaleb(-scale), context=Context(prec=precision + 1))
        if quantized != amount:
            raise FieldError(N_("Use at most %(n)s decimal places.", n=scale))
        if abs(quantized) >= Decimal(10) ** (precision - scale):
            raise FieldError(N_("Use at most %(n)s digits before the decimal point.", n=precision - scale))
        return quantized
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in TRUE | FALSE:
            return value.lower() in TRUE
        raise FieldError(N_("Choose yes or no."))
    if kind == "date":
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError as exc:
            raise FieldError(N_("Enter a date as YYYY-MM-DD.")) from exc
    if kind == "datetime":
        if isinstance(value, dt.datetime):
            moment = value
        else:
            try:
                moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError as exc:
                raise FieldError(N_("Enter a date and time, like 2026-05-01T09:30.")) from exc
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    if kind in {"uuid", "reference"}:
        try:
            return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
        except ValueError as exc:
            raise FieldError(N_("Choose a record.") if kind == "reference" else N_("Enter a UUID.")) from exc
    if kind == "select":
        text = str(value)
        if text not in field.option_values:
            raise FieldError(N_("Choose one of: %(options)s.", options=", ".join(field.option_values)))
        return text
    if kind == "json":
        if isinstance(value, str):
            try:
                value = loads_json(value, max_bytes=JSON_FIELD_MAX_BYTES)
            except TextRejected as exc:
                raise FieldError(N_("The JSON is %(problem)s.", problem=str(exc))) from exc
            except json.JSONDecodeError as exc:
                raise FieldError(
                    N_("Not valid JSON: %(problem)s at position %(pos)s.", problem=exc.msg, pos=exc.pos)
                ) from exc
        if _has_nul(value):  # PostgreSQL's jsonb refuses them
            raise FieldError(N_("JSON may not contain NUL characters."))
        return value
    raise FieldError(N_("Unsupported field type %(kind)s.", kind=kind))


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


def default_for(field: FieldSpec) -> Any:
    if field.default == "now" and field.type == "datetime":
        return dt.datetime.now(dt.UTC)
    if field.default == "today" and field.type == "date":
        return dt.date.today()
    return field.default


_DATES = (dt.datetime, dt.date)  # tuples, not `a | b` unions built on every call (a row has a dozen values)
_TEXTS = (Decimal, uuid.UUID)


def to_json(value: Any) -> Any:
    if isinstance(value, _DATES):
        return value.isoformat()
    if isinstance(value, _TEXTS):
        return str(value)
    return value


def to_input(field: FieldSpec | None, value: Any) -> str:
    """The string an HTML input shows for a stored value."""
    if value is None:
        return ""
    if field is not None and field.type == "json":
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M")
    return str(to_json(value))


def display(field: FieldSpec | None, value: Any) -> str:
    """Human text for list and detail pages (references are resolved by the caller)."""
    if value is None or value == "":
        return "—"
    if field is not None:
        # A conflict page also shows what the user typed, which may not parse: show it as typed.
        if field.type == "boolean" and isinstance(value, bool):
            return "Yes" if value else "No"
        if field.type == "select":
            return next((o.label for o in field.options if o.value == value), str(value))
        if field.type == "decimal" and isinstance(value, int | float | Decimal):
            return f"{value:,.{field.scale if field.scale is not None else 2}f}"
        if field.type == "json":
            return json.dumps(value, ensure_ascii=False)[:200]
        if field.is_file and isinstance(value, list):  # the attachment list (app.records.files)
            names = [str(v.get("name")) for v in value if isinstance(v, dict)]
            return ", ".join(names) if names else "—"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
