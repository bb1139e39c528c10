"""The plugin manifest (``plugin.toml``): its vocabulary, its model and its validating parser.

:func:`parse_manifest` turns a manifest (TOML text, bytes or an already parsed mapping) into a frozen
:class:`Manifest`. It validates everything it can in one pass and reports *all* problems at once as a
:class:`ManifestError` whose issues carry a dotted path (``schema.entities[0].fields[2].type``) and a
message meant for the plugin author. Checks that depend on the running platform (available base modules,
installed plugins, entities owned by other plugins) read a :class:`ValidationContext`.

A leaf package: it imports only :mod:`app.core`. Its modules:

- :mod:`~app.manifest.vocabulary`: types, limits, name patterns, the keys each table allows;
- :mod:`~app.manifest.model`: the frozen dataclasses (:class:`Manifest`, :class:`EntitySpec`, ...);
- :mod:`~app.manifest.semver`, :mod:`~app.manifest.values` (configuration values, field defaults),
  :mod:`~app.manifest.errors`;
- :mod:`~app.manifest.parser` with :mod:`~app.manifest.reader` and one reader module per part of the
  manifest in :mod:`app.manifest.sections` (``header``, ``entities``, ``ui``, ``config``);
- :mod:`~app.manifest.jsonschema`: the JSON Schema of ``plugin.toml`` (``docs/plugin.schema.json``).
"""

from app.manifest.errors import ManifestError, ManifestIssue, ValidationContext
from app.manifest.model import (
    Capabilities,
    ChildSpec,
    ConfigFieldSpec,
    Dependencies,
    EntitySpec,
    EventsSpec,
    ExtensionSpec,
    FieldSpec,
    Manifest,
    PageSpec,
    PluginDependency,
    PluginInfo,
    Rollup,
    SelectOption,
    UiPermission,
    default_label,
)
from app.manifest.parser import load_manifest, parse_manifest
from app.manifest.semver import SemVer, parse_version
from app.manifest.values import config_value
from app.manifest.vocabulary import (
    BUILTIN_ACTIONS,
    CHILD_ROWS_MAX,
    CONFIG_FIELD_TYPES,
    CONFIG_VALUE_MAX_LENGTH,
    DB_OPERATIONS,
    EXTENSION_POINTS,
    FIELD_TYPES,
    LIMIT_KEYS,
    MANIFEST_MAX_BYTES,
    MANIFEST_MAX_DEPTH,
    PAGE_TYPES,
    STANDARD_FIELDS,
    TEXT_FILTER_TYPES,
)

__all__ = [
    "BUILTIN_ACTIONS",
    "CHILD_ROWS_MAX",
    "CONFIG_FIELD_TYPES",
    "CONFIG_VALUE_MAX_LENGTH",
    "DB_OPERATIONS",
    "EXTENSION_POINTS",
    "FIELD_TYPES",
    "LIMIT_KEYS",
    "MANIFEST_MAX_BYTES",
    "MANIFEST_MAX_DEPTH",
    "PAGE_TYPES",
    "STANDARD_FIELDS",
    "TEXT_FILTER_TYPES",
    "Capabilities",
    "ChildSpec",
    "ConfigFieldSpec",
    "Dependencies",
    "EntitySpec",
    "EventsSpec",
    "ExtensionSpec",
    "FieldSpec",
    "Manifest",
    "ManifestError",
    "ManifestIssue",
    "PageSpec",
    "PluginDependency",
    "PluginInfo",
    "Rollup",
    "SelectOption",
    "SemVer",
    "UiPermission",
    "ValidationContext",
    "config_value",
    "default_label",
    "load_manifest",
    "parse_manifest",
    "parse_version",
]
