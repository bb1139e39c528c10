"""Shared checks for user-typed identifiers."""

from __future__ import annotations

import re

from app.core.i18n import N_, Msg

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
EMAIL_RE = re.compile(r"^[^@\s\x00-\x1f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
# The names text_problem is called with, for the catalog ("Enter a display name.").
FIELD_NAMES = (
    N_("name"),
    N_("display name"),
    N_("unit"),
    N_("token name"),
    N_("role name"),
    N_("description"),
    N_("view name"),
)
RESERVED_SLUGS = {"admin", "api", "static", "login", "logout", "t", "me", "new", "system", "health"}


def normalize_email(email: str) -> str:
    return email.strip().lower()


def email_problem(email: str) -> str | None:
    if not email:
        return N_("Enter an email address.")
    if len(email) > 254 or not EMAIL_RE.match(email):
        return N_("Enter a valid email address, like name@example.com.")
    return None


def slug_problem(slug: str) -> str | None:
    if not slug:
        return N_("Enter a slug.")
    if not SLUG_RE.match(slug):
        return N_("Use 1–63 lower-case letters, digits and inner hyphens (e.g. acme-eu).")
    if slug in RESERVED_SLUGS:
        return N_("'%(slug)s' is reserved; choose another.", slug=slug)
    return None


def text_problem(value: str, label: str, max_length: int, *, required: bool = True) -> str | None:
    if required and not value.strip():
        return N_("Enter a %(label)s.", label=Msg(label, {}))
    if len(value) > max_length:
        return N_("Use at most %(max_length)s characters.", max_length=max_length)
    if any(ord(c) < 32 and c not in "\t" for c in value):
        return N_("Control characters are not allowed.")
    return None
