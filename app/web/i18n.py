"""Translations and locale formatting in templates, read from each request's context.

The Jinja environment is shared by every request of an app, so nothing here holds a language: the
`gettext` callables installed into it (`{{ _("...") }}`) and the filters read the language of the
request being rendered from the template's `ctx` (app.web.context.RequestContext). A template rendered
without one (an imported macro, an error before the request was resolved) shows the English text.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal
from typing import Any

from babel import dates, numbers
from babel.support import NullTranslations
from jinja2 import Environment, pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from app.core.i18n import BABEL_LOCALES, DEFAULT_LANGUAGE, Msg
from app.manifest.labels import Label, pick_label

_IDENTITY = NullTranslations()


def _ctx_of(context: Context) -> Any:
    # Straight to the two dicts: Context.get goes through __getitem__ and a KeyError for every
    # lookup in a macro imported without context (~25 µs each, dozens per page, measured).
    found = context.vars.get("ctx")
    return found if found is not None else context.parent.get("ctx")


def _translations(context: Context) -> NullTranslations:
    return getattr(_ctx_of(context), "translations", None) or _IDENTITY


def _language(context: Context) -> str:
    return getattr(_ctx_of(context), "language", None) or DEFAULT_LANGUAGE


@pass_context
def _gettext(context: Context, message: str) -> str:
    return _translations(context).gettext(message)


@pass_context
def _ngettext(context: Context, singular: str, plural: str, n: int) -> str:
    return _translations(context).ngettext(singular, plural, n)


@pass_context
def translate(context: Context, text: Any) -> str:
    """`{{ value | t }}`: a message made at run time (a marked Python message, an error); text that is
    not in the catalog (a user's name, a formatted message) is shown as it is, and escaped as usual."""
    return localize(_ctx_of(context), text)


def localize(ctx: Any, text: Any) -> str:
    """`text` in the language of the request `ctx`: a msgid from the catalog, a `Msg` (its parameters too,
    manifest labels among them) or a manifest `Label`; other text as it is."""
    if text is None:
        return ""
    translations = getattr(ctx, "translations", None) or _IDENTITY
    if isinstance(text, Label):
        return pick_label(text, getattr(ctx, "language", None) or DEFAULT_LANGUAGE)
    if isinstance(text, Msg):  # its parameters first: messages and labels among them are shown alike
        params = {k: localize(ctx, v) if isinstance(v, (Msg, Label)) else v for k, v in text.params.items()}
        return Msg(text.msgid, params).translated(translations)
    return str(translations.gettext(str(text)))


def tenant_zone(ctx: Any) -> zoneinfo.ZoneInfo | None:
    name = getattr(getattr(ctx, "tenant", None), "time_zone", None)
    if not name:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def format_datetime_for(ctx: Any, value: Any, format: str = "medium") -> str:
    """A datetime in the request's language and the tenant's time zone (UTC when it has none); a date
    as a date. `format`: a Babel format name or pattern, or "date" for the day only. Naive datetimes
    are UTC (how the database hands them back on SQLite); ISO text is parsed first."""
    language = getattr(ctx, "language", None) or DEFAULT_LANGUAGE
    locale = BABEL_LOCALES.get(language, language)
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            try:
                value = dt.date.fromisoformat(value)
            except ValueError:
                return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        zone = tenant_zone(ctx) or dt.UTC
        if format == "date":  # the day it is in the tenant's zone
            return dates.format_date(value.astimezone(zone).date(), format="medium", locale=locale)
        return dates.format_datetime(value, format=format, tzinfo=zone, locale=locale)
    if isinstance(value, dt.date):
        return dates.format_date(value, format="medium" if format == "date" else format, locale=locale)
    return str(value)


def format_number_for(ctx: Any, value: Any) -> str:
    """A number grouped and pointed the way the request's language writes it; other values as text."""
    language = getattr(ctx, "language", None) or DEFAULT_LANGUAGE
    if value is None or value == "" or isinstance(value, bool):
        return "" if value in (None, "") else str(value)
    if isinstance(value, (int, float, Decimal)):
        return numbers.format_decimal(value, locale=BABEL_LOCALES.get(language, language))
    return str(value)


@pass_context
def _datetime_filter(context: Context, value: Any, format: str = "medium") -> str:
    return format_datetime_for(_ctx_of(context), value, format)


@pass_context
def _number_filter(context: Context, value: Any) -> str:
    return format_number_for(_ctx_of(context), value)


@pass_context
def _label_filter(context: Context, label: Any) -> str:
    """A manifest label (a string, or a `{language: text}` table) in the request's language; a message
    (`Msg`, e.g. a standard field's label) from the catalog."""
    if isinstance(label, Msg):
        return localize(_ctx_of(context), label)
    return pick_label(label, _language(context))


@pass_context
def _template_gettext(context: Context, string: str, /, **variables: Any) -> str:
    """`{{ _("...", name=value) }}`: what jinja2.ext.i18n's newstyle `gettext` does (the translation
    marked safe under autoescape, then always %-formatted, escaping the values), in one call: the
    extension's `_` alias resolves `gettext` and its wrapper calls the callable through Context.call
    again, three calls per message (tens of thousands of instructions each, dozens per list page)."""
    rv: str = _translations(context).gettext(string)
    if context.eval_ctx.autoescape:
        rv = Markup(rv)
    return rv % variables


@pass_context
def _template_ngettext(context: Context, singular: str, plural: str, num: int, /, **variables: Any) -> str:
    """`{{ ngettext(...) }}` the way the newstyle extension's does it (`num` among the values)."""
    variables.setdefault("num", num)
    rv: str = _translations(context).ngettext(singular, plural, num)
    if context.eval_ctx.autoescape:
        rv = Markup(rv)
    return rv % variables


def install(env: Environment) -> None:
    """Add `_`/`gettext`/`ngettext` and the `t`, `datetime`, `number`, `label` filters to `env`."""
    env.add_extension("jinja2.ext.i18n")  # `{% trans %}` blocks, message extraction
    env.install_gettext_callables(_gettext, _ngettext, newstyle=True)  # type: ignore[attr-defined]
    # The same newstyle behaviour without the extension's indirections (see _template_gettext).
    env.globals.update(_=_template_gettext, gettext=_template_gettext, ngettext=_template_ngettext)
    env.filters["t"] = translate
    env.filters["datetime"] = _datetime_filter
    env.filters["number"] = _number_filter
    env.filters["label"] = _label_filter
