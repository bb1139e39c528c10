"""The state and typed getters shared by the section readers of :mod:`app.manifest.sections`.

A :class:`ManifestReader` reads one manifest: it records issues in an :class:`~app.core.validation.Issues`
collector and carries what later sections need from earlier ones (the plugin id, the entities declared).
Every getter returns ``None`` (or an empty value) after recording an issue, so a section can go on and
report the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from app.core.i18n import N_, message_of
from app.core.validation import Issues, at, ix, kind, one_of, suggest
from app.manifest.errors import ValidationContext
from app.manifest.labels import LABEL_LANGUAGE, Label
from app.manifest.model import EntitySpec
from app.manifest.semver import SemVer, parse_version
from app.manifest.vocabulary import NAME, RESERVED_WORDS


class ManifestReader:
    def __init__(self, data: dict[str, Any], ctx: ValidationContext, issues: Issues) -> None:
        self.data = data
        self.ctx = ctx
        self.issues = issues
        #: the plugin's id once [plugin] was read and the id is valid, else ""
        self.plugin_id = ""
        #: the entities of [[schema.entities]] read so far, by name
        self.entities: dict[str, EntitySpec] = {}

    def add(self, path: str, message: str) -> None:
        self.issues.add(path, message)

    def keys(
        self, table: Mapping[str, Any], allowed: Iterable[str], path: str, required: Iterable[str] = ()
    ) -> None:
        """Unknown keys (with a did-you-mean) and missing required ones."""
        allowed = tuple(allowed)
        for key in table:
            if key in allowed:
                continue
            close = suggest(key, allowed)
            hint = (
                N_("did you mean '%(close)s'?", close=close)
                if close
                else N_("expected one of: %(choices)s", choices=one_of(sorted(allowed)))
            )
            self.add(at(path, key), N_("unknown key '%(key)s' (%(hint)s)", key=key, hint=hint))
        for key in required:
            if key not in table:
                self.add(at(path, key), N_("is required"))

    def table(self, parent: Mapping[str, Any], key: str, path: str) -> dict[str, Any] | None:
        """An optional sub-table; ``None`` when absent or not a table (then an issue is recorded)."""
        if key not in parent:
            return None
        value = parent[key]
        if not isinstance(value, Mapping):
            self.add(at(path, key), N_("expected a table, got %(kind)s", kind=kind(value)))
            return None
        return dict(value)

    def array(self, parent: Mapping[str, Any], key: str, path: str) -> list[Any]:
        if key not in parent:
            return []
        value = parent[key]
        if not isinstance(value, list | tuple):
            self.add(at(path, key), N_("expected an array, got %(kind)s", kind=kind(value)))
            return []
        return list(value)

    def text(self, parent: Mapping[str, Any], key: str, path: str, *, nonempty: bool = True) -> str | None:
        """An optional string (missing required keys are reported by :meth:`keys`)."""
        if key not in parent:
            return None
        value = parent[key]
        if not isinstance(value, str):
            self.add(at(path, key), N_("expected a string, got %(kind)s", kind=kind(value)))
            return None
        if nonempty and not value.strip():
            self.add(at(path, key), N_("must not be empty"))
            return None
        return value

    def label(self, parent: Mapping[str, Any], key: str, path: str) -> str | None:
        """An optional label: a string, or a table of translations `{ en = "...", zh = "..." }` (a
        :class:`~app.manifest.labels.Label`)."""
        if key not in parent or not isinstance(parent[key], Mapping):
            return self.text(parent, key, path)
        table, where = parent[key], at(path, key)
        if not table:
            self.add(where, N_("a table of translations needs at least one language"))
            return None
        translations: dict[str, str] = {}
        for language, text in table.items():
            if not LABEL_LANGUAGE.match(str(language)):
                self.add(
                    where, N_("'%(language)s' is not a language code (e.g. en, zh, pt-BR)", language=language)
                )
            elif not isinstance(text, str):
                self.add(at(where, str(language)), N_("expected a string, got %(kind)s", kind=kind(text)))
            elif not text.strip():
                self.add(at(where, str(language)), N_("must not be empty"))
            else:
                translations[str(language)] = text
        return Label(translations) if translations and len(translations) == len(table) else None

    def flag(self, parent: Mapping[str, Any], key: str, path: str) -> bool | None:
        if key not in parent:
            return None
        value = parent[key]
        if not isinstance(value, bool):
            self.add(at(path, key), N_("expected true or false, got %(kind)s", kind=kind(value)))
            return None
        return value

    def integer(
        self, parent: Mapping[str, Any], key: str, path: str, low: int, high: int | None = None
    ) -> int | None:
        if key not in parent:
            return None
        value = parent[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(at(path, key), N_("expected an integer, got %(kind)s", kind=kind(value)))
            return None
        if value < low or (high is not None and value > high):
            bounds = (
                N_("between %(low)s and %(high)s", low=low, high=high)
                if high is not None
                else N_("at least %(low)s", low=low)
            )
            self.add(
                at(path, key),
                N_("%(value)s is out of range (must be %(bounds)s)", value=value, bounds=bounds),
            )
            return None
        return value

    def names(self, value: Any, path: str, what: str) -> list[tuple[str, str]]:
        """An array of strings; returns ``(path, string)`` pairs of the valid items."""
        if not isinstance(value, list | tuple):
            self.add(path, N_("expected an array of %(what)s, got %(kind)s", what=what, kind=kind(value)))
            return []
        out: list[tuple[str, str]] = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                out.append((ix(path, i), item))
            else:
                self.add(
                    ix(path, i), N_("expected a string (%(what)s), got %(kind)s", what=what, kind=kind(item))
                )
        return out

    def identifier(self, value: str, path: str, what: str) -> bool:
        """A table or column name: lowercase, at most 63 characters, not a reserved SQL word."""
        if not NAME.match(value):
            self.add(
                path,
                N_(
                    "%(what)s name '%(value)s' is not valid (lowercase letters, digits and underscores, starting with a letter, at most 63 characters)",
                    what=what,
                    value=value,
                ),
            )
            return False
        if value in RESERVED_WORDS:
            self.add(
                path,
                N_(
                    "%(what)s name '%(value)s' is a reserved SQL word; choose another name",
                    what=what,
                    value=value,
                ),
            )
            return False
        return True

    def semver(self, text: str, path: str) -> SemVer | None:
        try:
            return parse_version(text)
        except ValueError as exc:
            self.add(path, message_of(exc))
            return None
