"""Manifest errors (every issue found, each with its path) and the platform facts a manifest is checked
against (:class:`ValidationContext`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from app.core.validation import Issue
from app.manifest.model import EntitySpec

#: One problem of a manifest: ``path`` (``schema.entities[0].fields[2].type``) and ``message``.
ManifestIssue = Issue


class ManifestError(Exception):
    """The manifest is invalid; :attr:`issues` lists every problem found."""

    def __init__(self, issues: Iterable[ManifestIssue]) -> None:
        self.issues: list[ManifestIssue] = list(issues)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(issue) for issue in self.issues)


@dataclass(frozen=True)
class ValidationContext:
    """What the platform offers a manifest being validated."""

    platform_version: str = "1.0.0"
    available_modules: frozenset[str] = frozenset({"auth"})
    #: plugin id -> installed version
    installed_plugins: Mapping[str, str] = field(default_factory=dict)
    #: entity name -> id of the (other) plugin that owns it
    foreign_entities: Mapping[str, str] = field(default_factory=dict)
    #: entity specs of dependency plugins, usable as reference targets and dashboard entities
    foreign_entity_specs: Mapping[str, EntitySpec] = field(default_factory=dict)
    #: why an entity name / plugin id is the base's (None: free). The base's own names are derived from
    #: its tables and permissions (app.installs.reserved), which this leaf package cannot import.
    entity_name_clash: Callable[[str], str | None] = field(default=lambda _name: None)
    plugin_id_clash: Callable[[str], str | None] = field(default=lambda _id: None)
