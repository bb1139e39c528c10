"""Helpers shared by the HTML forms of the administration pages."""

from __future__ import annotations

from litestar.datastructures import FormMultiDict

from app.core.errors import ValidationFailed
from app.core.i18n import N_


def T(path: str) -> str:
    """A page's route under the tenant segment: every administration page is one tenant's."""
    return "/t/{tenant:str}" + path


def form_text(form: FormMultiDict, key: str, limit: int = 1000) -> str:
    """A text field of a submitted form, cut at `limit`; missing or non-text fields read as ""."""
    value = form.get(key)
    if not isinstance(value, str):
        return ""
    if "\x00" in value:  # no database stores NUL in text; refuse it here with the field's name
        raise ValidationFailed({key: N_("NUL characters are not allowed.")})
    return value[:limit]
