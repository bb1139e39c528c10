"""The values of a named configuration, shared by plugin configurations (app.plugins.configs) and extension
configurations (app.extensions.store): typed values checked against declared fields (or free `key = value`
text), secrets encrypted at rest and never shown back, names, optimistic locking, and the secret-free
views the API and the audit log show.
"""

from __future__ import annotations

import base64
import functools
import os
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.core.errors import Conflict, ValidationFailed
from app.core.i18n import N_, message_of
from app.manifest import CONFIG_VALUE_MAX_LENGTH, ConfigFieldSpec, config_value

MASK = "***"  # how the API shows a stored secret
NAME_MAX = 100
NAME_PATTERN = r"^[\w][\w .@()+-]*$"
_NAME = re.compile(NAME_PATTERN)
_TEXT_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$")
_TOKEN_PREFIX = "v1:"
TEXT_MAX_KEYS = 200


# --- secrets at rest ------------------------------------------------------------------------------


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted (the platform secret key changed, or the row was tampered with)."""


class SecretBox:
    """AES-GCM with a key derived (HKDF-SHA256) from the platform secret. The associated data binds a token
    to its tenant, plugin and key, so a token copied into another row does not decrypt."""

    def __init__(self, platform_secret: str) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=b"portal-plugin-config",
            info=b"plugin configuration secrets v1",
        ).derive(platform_secret.encode("utf-8"))
        self._aead = AESGCM(key)

    @staticmethod
    def _aad(tenant_id: uuid.UUID, plugin_id: str, key: str) -> bytes:
        return f"{tenant_id}/{plugin_id}/{key}".encode()

    def seal(self, tenant_id: uuid.UUID, plugin_id: str, key: str, plaintext: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), self._aad(tenant_id, plugin_id, key))
        return _TOKEN_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, tenant_id: uuid.UUID, plugin_id: str, key: str, token: str) -> str:
        try:
            if not token.startswith(_TOKEN_PREFIX):
                raise ValueError("unknown token format")
            raw = base64.urlsafe_b64decode(token[len(_TOKEN_PREFIX) :])
            return self._aead.decrypt(raw[:12], raw[12:], self._aad(tenant_id, plugin_id, key)).decode(
                "utf-8"
            )
        except (InvalidTag, ValueError) as exc:
            raise SecretUnreadable(
                f"the secret {key!r} cannot be decrypted (was PORTAL_SECRET_KEY changed?); enter it again"
            ) from exc


@functools.lru_cache(maxsize=4)
def secret_box(platform_secret: str) -> SecretBox:
    return SecretBox(platform_secret)


# --- values ---------------------------------------------------------------------------------------


def stored_form(spec: ConfigFieldSpec, value: Any) -> Any:
    """A checked value as JSON stores it: decimals as their exact text."""
    return str(value) if isinstance(value, Decimal) else value


def display(spec: ConfigFieldSpec | None, value: Any) -> str:
    """A stored value as a form shows it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_text(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """`key = value` lines (blank lines and `#` comments ignored) → values, or errors located by line."""
    values: dict[str, str] = {}
    problems: list[str] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        key = key.strip()
        if not sep:
            problems.append(N_("line %(number)s: expected key = value", number=number))
        elif not _TEXT_KEY.match(key):
            problems.append(
                N_(
                    "line %(number)s: %(key)s is not a valid key (letters, digits, '_', '.', '-', starting "
                    "with a letter or '_')",
                    number=number,
                    key=repr(key),
                )
            )
        elif key in values:
            problems.append(
                N_(
                    "line %(number)s: key %(key)s is already set on line %(first)s",
                    number=number,
                    key=repr(key),
                    first=first_line[key],
                )
            )
        else:
            values[key] = value.strip()
            first_line[key] = number
    if len(values) > TEXT_MAX_KEYS:
        problems.append(N_("at most %(max_keys)s keys", max_keys=TEXT_MAX_KEYS))
    return values, ({"text": joined(problems)} if problems else {})


def joined(problems: list[str]) -> str:
    """`a; b; c`, each part still a message (translated where shown)."""
    text = problems[-1]
    for problem in reversed(problems[:-1]):
        text = N_("%(first)s; %(rest)s", first=problem, rest=text)
    return text


def format_text(values: Mapping[str, Any]) -> str:
    return "".join(f"{k} = {display(None, v)}\n" for k, v in values.items())


@dataclass
class Incoming:
    """Checked input for one configuration."""

    plain: dict[str, Any] = field(default_factory=dict)
    secrets_set: dict[str, str] = field(default_factory=dict)  # key -> new plaintext
    secrets_cleared: set[str] = field(default_factory=set)
    errors: dict[str, str] = field(default_factory=dict)


def check_values(
    fields: tuple[ConfigFieldSpec, ...],
    given: Mapping[str, Any],
    stored_secrets: Iterable[str],
    *,
    from_form: bool,
    clear: Iterable[str] = (),
) -> Incoming:
    """Check `given` (API JSON or form text) against the schema. Left-out or blank plain values are unset
    (the default applies). A blank, absent or `***` secret keeps the stored one; `clear` (form) or `null`/""
    (API) removes it. Errors are keyed `values.<key>`."""
    out = Incoming()
    known = {f.key: f for f in fields}
    stored = set(stored_secrets)
    cleared = set(clear)
    for key in given:
        if key not in known:
            out.errors[f"values.{key}"] = N_(
                "unknown key %(key)s (this plugin's keys: %(keys)s)",
                key=repr(key),
                keys=", ".join(known) or "none",
            )
    for spec in fields:
        raw = given.get(spec.key)
        where = f"values.{spec.key}"
        if spec.secret:
            if raw is not None and not isinstance(raw, str):
                out.errors[where] = N_("expected text")
                continue
            if from_form:  # a blank secret input keeps the stored value; the "clear" box removes it
                action = "clear" if spec.key in cleared else "keep" if raw in (None, "", MASK) else "set"
            else:  # API: absent or "***" keeps, null or "" removes
                action = (
                    "keep"
                    if spec.key not in given or raw == MASK
                    else "clear"
                    if raw in (None, "")
                    else "set"
                )
            has = spec.key in stored
            if action == "clear":
                out.secrets_cleared.add(spec.key)
                has = False
            elif action == "set":
                try:
                    out.secrets_set[spec.key] = config_value(spec.type, raw)
                except ValueError as exc:
                    out.errors[where] = message_of(exc)
                    continue
                has = True
            if spec.required and not has:
                out.errors[where] = N_("is required")
            continue
        if raw is None or (isinstance(raw, str) and not raw.strip()):  # unset: the default applies
            if spec.required and spec.default is None:
                out.errors[where] = N_("is required")
            continue
        try:
            out.plain[spec.key] = stored_form(spec, config_value(spec.type, raw, spec.option_values))
        except ValueError as exc:
            out.errors[where] = message_of(exc)
    return out


def check_text_values(given: Mapping[str, Any]) -> Incoming:
    """Values of a plugin without a schema: any keys, text values."""
    out = Incoming()
    if len(given) > TEXT_MAX_KEYS:
        out.errors["values"] = N_("at most %(max_keys)s keys", max_keys=TEXT_MAX_KEYS)
    for key, value in given.items():
        if not _TEXT_KEY.match(key):
            out.errors[f"values.{key}"] = N_(
                "not a valid key (letters, digits, '_', '.', '-', starting with a letter or '_')"
            )
        elif value is None:
            continue
        elif not isinstance(value, str):
            out.errors[f"values.{key}"] = N_(
                "expected text (this plugin declares no [[config.fields]]: values are text)"
            )
        elif len(value) > CONFIG_VALUE_MAX_LENGTH:
            out.errors[f"values.{key}"] = N_(
                "is %(length)s characters long (at most %(config_value_max_length)s)",
                length=len(value),
                config_value_max_length=CONFIG_VALUE_MAX_LENGTH,
            )
        else:
            out.plain[key] = value
    return out


def check_name(name: Any) -> str | None:
    if not isinstance(name, str) or not name.strip():
        return N_("is required")
    if len(name.strip()) > NAME_MAX:
        return N_("at most %(max)s characters", max=NAME_MAX)
    if not _NAME.match(name.strip()):
        return N_("letters, digits, spaces and . @ ( ) + - _ only")
    return None


def check_version(row: Any, version: int | None) -> None:
    """Optimistic locking of a named configuration (a plugin's, or an extension's): `version` is what the
    caller read."""
    if version is None:
        raise ValidationFailed(
            {"version": N_("required to change an existing configuration (the version you read)")}
        )
    if int(version) != row.version:
        raise Conflict(
            N_(
                "The configuration %(name)s was changed by someone else since you read it (your version %(version)s, now %(version2)s); reload it and apply your change again",
                name=repr(row.name),
                version=version,
                version2=row.version,
            )
        )


# --- applying and showing -------------------------------------------------------------------------


def sealed_secrets(
    stored: Mapping[str, str], incoming: Incoming, seal: Callable[[str, str], str]
) -> dict[str, str]:
    """The stored secret tokens after `incoming`: cleared ones removed, new ones sealed (`seal(key, text)`)."""
    secrets = {k: v for k, v in stored.items() if k not in incoming.secrets_cleared}
    for key, plaintext in incoming.secrets_set.items():
        secrets[key] = seal(key, plaintext)
    return secrets


def masked_values(row: Any) -> dict[str, Any]:
    """A configuration's values as the API shows them: plain values, and `***` for each stored secret."""
    values: dict[str, Any] = dict(row.plain_values or {})
    for key in row.secret_values or {}:
        values[key] = MASK
    return values


def audit_view(row: Any, head: Mapping[str, Any], changed_secrets: Iterable[str] = ()) -> dict[str, Any]:
    """Flat, secret-free snapshot for audit before/after (flat so the audit diff keeps only what changed):
    `head` (name, active or enabled, ...), then `values.<key>`; a secret shows as `***` (changed)."""
    changed = set(changed_secrets)
    out: dict[str, Any] = dict(head)
    for key, value in (row.plain_values or {}).items():
        out[f"values.{key}"] = value
    for key in row.secret_values or {}:
        out[f"values.{key}"] = f"{MASK} (changed)" if key in changed else MASK
    return out
