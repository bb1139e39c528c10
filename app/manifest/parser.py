"""The entry points: :func:`parse_manifest` and :func:`load_manifest`.

The sections are read in a fixed order (later ones refer to earlier ones: pages to entities, record
validators to entities, ui permission namespaces to the plugin id), and the issues are reported in that
order, all at once.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.core.i18n import N_, message_of
from app.core.nesting import TextRejected, loads_toml
from app.core.validation import Issues
from app.manifest.errors import ManifestError, ValidationContext
from app.manifest.model import Manifest
from app.manifest.reader import ManifestReader
from app.manifest.sections.config import read_config_and_extensions, read_events
from app.manifest.sections.entities import read_schema
from app.manifest.sections.header import read_capabilities, read_dependencies, read_limits, read_plugin_info
from app.manifest.sections.ui import read_ui
from app.manifest.vocabulary import MANIFEST_MAX_BYTES, MANIFEST_MAX_DEPTH, TOP_KEYS


def parse_manifest(source: str | bytes | Mapping[str, Any], ctx: ValidationContext | None = None) -> Manifest:
    """Parse and validate a manifest; raise :class:`ManifestError` listing every issue found."""
    issues = Issues()
    data = _load(source, issues)
    if data is None:
        raise ManifestError(issues.items)
    manifest = _read(ManifestReader(data, ctx or ValidationContext(), issues))
    if issues:
        raise ManifestError(issues.items)
    return manifest


def load_manifest(path: str | Path, ctx: ValidationContext | None = None) -> Manifest:
    """Read ``path`` (a ``plugin.toml``) and :func:`parse_manifest` it."""
    return parse_manifest(Path(path).read_bytes(), ctx)


def _read(r: ManifestReader) -> Manifest:
    r.keys(r.data, TOP_KEYS, "")
    plugin = read_plugin_info(r)
    dependencies = read_dependencies(r)
    capabilities = read_capabilities(r)
    if capabilities.messages and "message" not in dependencies.modules:
        r.add(
            "permissions.messages",
            N_(
                'the plugin requests messages = true but does not depend on the "message" base module (add it to [dependencies] modules)'
            ),
        )
    entities = read_schema(r)
    events = read_events(r, capabilities)
    pages, ui_permissions = read_ui(r)
    limits = read_limits(r)
    config_fields, extensions = read_config_and_extensions(r)
    return Manifest(
        plugin=plugin,
        dependencies=dependencies,
        capabilities=capabilities,
        entities=entities,
        events=events,
        pages=pages,
        ui_permissions=ui_permissions,
        limits=limits,
        raw=r.data,
        config_fields=config_fields,
        extensions=extensions,
    )


def _load(source: str | bytes | Mapping[str, Any], issues: Issues) -> dict[str, Any] | None:
    if isinstance(source, Mapping):
        return {str(k): _plain(v) for k, v in source.items()}
    if isinstance(source, bytes | bytearray):
        try:
            source = bytes(source).decode("utf-8")
        except UnicodeDecodeError as exc:
            issues.add(
                "plugin.toml",
                N_("not valid UTF-8 (%(reason)s at byte %(start)s)", reason=exc.reason, start=exc.start),
            )
            return None
    if source.startswith("\ufeff"):
        source = source[1:]
    try:
        return loads_toml(source, max_depth=MANIFEST_MAX_DEPTH, max_bytes=MANIFEST_MAX_BYTES)
    except TextRejected as exc:
        issues.add("plugin.toml", message_of(exc))
    except tomllib.TOMLDecodeError as exc:
        issues.add("plugin.toml", N_("invalid TOML: %(exc)s", exc=exc))
    return None


def _plain(value: Any) -> Any:
    """Deep copy of mappings/sequences into dicts/lists (keeps ``raw`` independent of the input)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
