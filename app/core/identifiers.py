"""Shared checks for user-typed identifiers."""

from __future__ import annotations

import re

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
EMAIL_RE = re.compile(r"^[^@\s\x00-\x1f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
RESERVED_SLUGS = {"admin", "api", "static", "login", "logout", "t", "me", "new", "system", "health"}


def normalize_email(email: str) -> str:
    return email.strip().lower()


def email_problem(email: str) -> str | None:
    if not email:
        return "Enter an email address."
    if len(email) > 254 or not EMAIL_RE.match(email):
        return "Enter a valid email address, like name@example.com."
    return None


def slug_problem(slug: str) -> str | None:
    if not slug:
        return "Enter a slug."
    if not SLUG_RE.match(slug):
        return "Use 1–63 lower-case letters, digits and inner hyphens (e.g. acme-eu)."
    if slug in RESERVED_SLUGS:
        return f"'{slug}' is reserved; choose another."
    return None


def text_problem(value: str, label: str, max_length: int, *, required: bool = True) -> str | None:
    if required and not value.strip():
        return f"Enter a {label}."
    if len(value) > max_length:
        return f"Use at most {max_length} characters."
    if any(ord(c) < 32 and c not in "\t" for c in value):
        return "Control characters are not allowed."
    return None
