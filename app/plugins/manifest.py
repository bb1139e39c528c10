"""Plugin manifest (``plugin.toml``): parsing and validation.

:func:`parse_manifest` turns a manifest (TOML text, bytes or an already parsed mapping) into a frozen
:class:`Manifest`.  It validates everything it can in one pass and reports *all* problems at once as a
:class:`ManifestError` whose issues carry a dotted path (``schema.entities[0].fields[2].type``) and a
message meant for the plugin author.

Checks that depend on the running platform (available base modules, installed plugins, entities owned
by other plugins) read a :class:`ValidationContext`.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import tomllib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import total_ordering
from pathlib import Path
from typing import Any

from app.nesting import TextRejected, loads_toml
from app.plugins import reserved

__all__ = [
    "BUILTIN_ACTIONS",
    "CONFIG_FIELD_TYPES",
    "DB_OPERATIONS",
    "FIELD_TYPES",
    "LIMIT_KEYS",
    "PAGE_TYPES",
    "STANDARD_FIELDS",
    "Capabilities",
    "ConfigFieldSpec",
    "Dependencies",
    "EntitySpec",
    "EventsSpec",
    "FieldSpec",
    "Manifest",
    "ManifestError",
    "ManifestIssue",
    "PageSpec",
    "PluginDependency",
    "PluginInfo",
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

# --------------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------------

FIELD_TYPES: tuple[str, ...] = (
    "boolean",
    "date",
    "datetime",
    "decimal",
    "integer",
    "json",
    "reference",
    "select",
    "string",
    "text",
    "uuid",
)

#: Types of ``[[config.fields]]`` (plugin configuration values, not table columns).
CONFIG_FIELD_TYPES: tuple[str, ...] = ("string", "text", "integer", "decimal", "boolean", "select", "url", "email")
#: Config types that may be ``secret`` (stored encrypted, never shown back).
SECRET_CONFIG_TYPES: tuple[str, ...] = ("string", "text")
CONFIG_VALUE_MAX_LENGTH = 10_000

#: Columns the host adds to every plugin table, in table order.
STANDARD_FIELDS: tuple[str, ...] = (
    "id",
    "tenant_id",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
    "deleted_at",
    "version",
)

#: Standard fields that may serve as an entity's owner (they hold a user id).
OWNER_STANDARD_FIELDS: tuple[str, ...] = ("created_by", "updated_by")

#: Field types a unit field may have (a unit is compared with the member's unit, a string or uuid).
UNIT_FIELD_TYPES: tuple[str, ...] = ("string", "select", "uuid", "reference")

LIMIT_KEYS: tuple[str, ...] = ("deadline_ms", "fuel", "memory_mb", "output_bytes", "host_calls", "log_bytes",
                              "notifications")

PAGE_TYPES: tuple[str, ...] = ("crud", "dashboard", "custom")

BUILTIN_ACTIONS: tuple[str, ...] = ("create", "edit", "delete", "export", "import", "bulk_delete", "restore")

DB_OPERATIONS: tuple[str, ...] = ("select", "insert", "update", "delete")

COLUMN_TYPES: tuple[str, ...] = (
    "currency",
    "date",
    "datetime",
    "link",
    "multiselect",
    "number",
    "select",
    "status",
    "text",
)

#: PostgreSQL's reserved key words: as table or column names they need quoting everywhere, so a
#: manifest may not use them for entities or fields.
RESERVED_WORDS: frozenset[str] = frozenset(
    {
        "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "authorization",
        "both", "case", "cast", "check", "collate", "column", "constraint", "create", "cross",
        "current_catalog", "current_date", "current_role", "current_time", "current_timestamp",
        "current_user", "default", "deferrable", "desc", "distinct", "do", "else", "end", "except",
        "false", "fetch", "for", "foreign", "from", "full", "grant", "group", "having", "in",
        "initially", "inner", "intersect", "into", "is", "join", "lateral", "leading", "left", "like",
        "limit", "localtime", "localtimestamp", "natural", "not", "null", "offset", "on", "only", "or",
        "order", "outer", "placing", "primary", "references", "returning", "right", "select",
        "session_user", "similar", "some", "symmetric", "table", "then", "to", "trailing", "true",
        "union", "unique", "user", "using", "variadic", "when", "where", "window", "with",
    }
)  # fmt: skip

#: Entity names whose ``plugin_<name>`` table the host keeps for itself.
RESERVED_ENTITY_NAMES: frozenset[str] = frozenset({"schema_versions", "event_subscriptions"})

MAX_PLUGIN_ID_LENGTH = 64
MANIFEST_MAX_BYTES, MANIFEST_MAX_DEPTH = 256 * 1024, 32  # the bundled manifests: 8 KiB, 8 levels
TABLE_PREFIX = "plugin_"
#: PostgreSQL truncates identifiers at 63 bytes; ``plugin_<entity>`` must fit.
MAX_ENTITY_NAME_LENGTH = 63 - len(TABLE_PREFIX)
STRING_DEFAULT_LENGTH = 255
STRING_MAX_LENGTH = 10_000
SELECT_VALUE_MAX_LENGTH = 100
DECIMAL_DEFAULT_PRECISION = 18
DECIMAL_DEFAULT_SCALE = 2
DECIMAL_MAX_PRECISION = 38
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_KEBAB_ID = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_IDENT = r"(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
_SEMVER = re.compile(rf"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-({_IDENT}(?:\.{_IDENT})*))?$")
_EVENT = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_*-]+){1,2}$")
_PAGE_PATH = re.compile(r"^(/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+$")
_SEGMENT = r"[a-z0-9]+(?:[-_][a-z0-9]+)*"
_UI_PERMISSION = re.compile(rf"^ui\.{_SEGMENT}(?:\.{_SEGMENT})+$")
_DB_PERMISSION = re.compile(r"^db\.([a-z][a-z0-9_]*)\.([a-z]+)$")
_ACTION_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_CONSTRAINT = re.compile(r"^\s*(>=)?\s*(\S+)\s*$")

# Allowed keys per table.
_TOP_KEYS = (
    "plugin",
    "dependencies",
    "permissions",
    "schema",
    "events",
    "ui",
    "limits",
    "config",
    "extensions",
)
_PLUGIN_KEYS = ("id", "name", "version", "description", "author", "min_platform_version")
_DEPENDENCY_KEYS = ("modules", "plugins")
_PLUGIN_DEPENDENCY_KEYS = ("id", "version")
_CAPABILITY_KEYS = ("database", "events", "config", "files", "messages")
_SCHEMA_KEYS = ("entities",)
_ENTITY_KEYS = ("name", "label", "fields", "indexes", "owner_field", "unit_field", "display_field")
_FIELD_KEYS = (
    "name",
    "type",
    "label",
    "help",
    "required",
    "unique",
    "nullable",
    "default",
    "max_length",
    "precision",
    "scale",
    "options",
    "entity",
    "searchable",
)
#: Field attributes that only make sense for some types.
_TYPE_SPECIFIC: dict[str, tuple[str, ...]] = {
    "max_length": ("string",),
    "precision": ("decimal",),
    "scale": ("decimal",),
    "options": ("select",),
    "entity": ("reference",),
}
_SEARCHABLE_TYPES = ("string", "text", "select")
_OPTION_KEYS = ("value", "label")
_EVENTS_KEYS = ("published", "subscribed")
_UI_KEYS = ("pages", "permissions")
_PAGE_KEYS = ("name", "path", "type", "entity", "icon", "menu_group", "columns", "filters", "actions", "form")
_COLUMN_KEYS = ("field", "label", "type", "width", "sortable", "hidden", "options")
_COLUMN_OPTION_KEYS = ("value", "label", "color")
_FILTER_KEYS = ("field", "label")
_ACTION_KEYS = ("name", "label", "permission")
_FORM_KEYS = ("groups", "fields")
_FORM_GROUP_KEYS = ("title", "fields")
_FORM_FIELD_KEYS = ("field", "label", "help", "readonly")
_UI_PERMISSION_KEYS = ("code", "description")
_CONFIG_KEYS = ("fields",)
_CONFIG_FIELD_KEYS = ("key", "type", "label", "help", "required", "default", "secret", "options")
_EXTENSION_KEYS = ("point", "name", "description", "config", "entities")
#: Extension point types a plugin can implement (app.extensions; the contracts are in wit/plugin.wit).
EXTENSION_POINTS = ("condition", "user-selector", "record-validator", "auth-verifier")
_EXTENSION_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
_FALSE_WORDS = frozenset({"false", "0", "no", "off"})


# --------------------------------------------------------------------------------------------------
# Versions
# --------------------------------------------------------------------------------------------------


@total_ordering
@dataclass(frozen=True)
class SemVer:
    """A semantic version ``MAJOR.MINOR.PATCH[-prerelease]``, ordered by semver precedence."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()

    def _key(self) -> tuple[Any, ...]:
        pre: tuple[tuple[int, int, str], ...] = tuple(
            (0, int(part), "") if part.isdigit() else (1, 0, part) for part in self.prerelease
        )
        # A release sorts after every prerelease of the same version.
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, SemVer):
            return NotImplemented
        return self._key() < other._key()

    def __str__(self) -> str:
        core = f"{self.major}.{self.minor}.{self.patch}"
        return f"{core}-{'.'.join(self.prerelease)}" if self.prerelease else core


def parse_version(text: str) -> SemVer:
    """Parse ``MAJOR.MINOR.PATCH[-prerelease]``; raise :class:`ValueError` if it is not one."""
    match = _SEMVER.match(text)
    if match is None:
        raise ValueError(f"'{text}' is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.0.0)")
    major, minor, patch, pre = match.groups()
    return SemVer(int(major), int(minor), int(patch), tuple(pre.split(".")) if pre else ())


# --------------------------------------------------------------------------------------------------
# Result model
# --------------------------------------------------------------------------------------------------


def default_label(name: str) -> str:
    """``unit_price`` → ``Unit Price``."""
    return name.replace("_", " ").strip().title()


@dataclass(frozen=True)
class PluginInfo:
    id: str
    name: str
    version: str
    description: str = ""
    author: str = ""
    min_platform_version: str | None = None


@dataclass(frozen=True)
class PluginDependency:
    id: str
    min_version: str | None = None


@dataclass(frozen=True)
class Dependencies:
    modules: tuple[str, ...] = ()
    plugins: tuple[PluginDependency, ...] = ()


@dataclass(frozen=True)
class Capabilities:
    """Host API groups the plugin's WASM may call (``[permissions]`` in the manifest)."""

    database: bool = False
    events: bool = False
    config: bool = False
    files: bool = False
    messages: bool = False  # the notify host function (the `message` base module)


@dataclass(frozen=True)
class SelectOption:
    value: str
    label: str


@dataclass(frozen=True)
class FieldSpec:
    """One declared field.  ``default`` is normalised to a Python value: ``int`` (integer),
    :class:`~decimal.Decimal` (decimal), ``bool``, :class:`datetime.date` or ``"today"`` (date),
    aware :class:`datetime.datetime` or ``"now"`` (datetime), :class:`uuid.UUID` (uuid, reference),
    ``str`` (string, text, select) or any JSON value (json); ``None`` when there is no default."""

    name: str
    type: str
    label: str
    help: str | None = None
    required: bool = False
    unique: bool = False
    nullable: bool = True
    default: Any = None
    max_length: int | None = None
    precision: int | None = None
    scale: int | None = None
    options: tuple[SelectOption, ...] = ()
    entity: str | None = None
    searchable: bool = False

    @property
    def has_default(self) -> bool:
        return self.default is not None

    @property
    def option_values(self) -> tuple[str, ...]:
        return tuple(option.value for option in self.options)


@dataclass(frozen=True)
class ConfigFieldSpec:
    """One ``[[config.fields]]`` entry. ``default`` is normalised by :func:`config_value`: ``int``
    (integer), :class:`~decimal.Decimal` (decimal), ``bool`` (boolean), ``str`` otherwise; ``None``
    when there is none (secrets never have one)."""

    key: str
    type: str
    label: str
    help: str | None = None
    required: bool = False
    default: Any = None
    secret: bool = False
    options: tuple[SelectOption, ...] = ()

    @property
    def option_values(self) -> tuple[str, ...]:
        return tuple(option.value for option in self.options)


def config_value(ftype: str, value: Any, options: Iterable[str] = ()) -> Any:
    """Check and normalise one configuration value of type ``ftype``; raise :class:`ValueError` with a
    message for people. Accepts the typed TOML/JSON value or the text a form sends."""
    if ftype in ("string", "text", "url", "email", "select"):
        if not isinstance(value, str):
            raise ValueError(f"expected text, got {_kind(value)}")
        if len(value) > CONFIG_VALUE_MAX_LENGTH:
            raise ValueError(f"is {len(value)} characters long (at most {CONFIG_VALUE_MAX_LENGTH})")
        if ftype == "url":
            value = value.strip()
            if not re.match(r"^https?://[^\s/?#]+[^\s]*$", value):
                raise ValueError(f"{_show(value)} is not an http(s) URL")
        elif ftype == "email":
            value = value.strip()
            if not _EMAIL.match(value):
                raise ValueError(f"{_show(value)} is not an e-mail address")
        elif ftype == "select":
            allowed = tuple(options)
            if value not in allowed:
                raise ValueError(f"{_show(value)} is not one of the options ({_one_of(allowed)})")
        return value
    if ftype == "integer":
        if isinstance(value, str) and re.match(r"^\s*[+-]?\d+\s*$", value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{_show(value)} is not a whole number")
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError(f"{value} does not fit a 64-bit integer")
        return value
    if ftype == "decimal":
        number: Decimal | None = None
        if isinstance(value, int | float | str | Decimal) and not isinstance(value, bool):
            try:
                number = Decimal(str(value).strip())
            except InvalidOperation:
                number = None
        if number is None or not number.is_finite():
            raise ValueError(f"{_show(value)} is not a decimal number")
        return number
    if ftype == "boolean":
        if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS | _FALSE_WORDS:
            return value.strip().lower() in _TRUE_WORDS
        if not isinstance(value, bool):
            raise ValueError(f"{_show(value)} is not true or false")
        return value
    raise ValueError(f"unknown type '{ftype}'")


@dataclass(frozen=True)
class ExtensionSpec:
    """One ``[[extensions]]`` entry: an implementation of an extension point in the plugin's component."""

    point: str
    name: str
    description: str
    config_fields: tuple[ConfigFieldSpec, ...] = ()
    entities: tuple[str, ...] = ()  # record-validator: the entities it validates


@dataclass(frozen=True)
class EntitySpec:
    name: str
    label: str
    fields: tuple[FieldSpec, ...]
    indexes: tuple[tuple[str, ...], ...] = ()
    owner_field: str | None = None
    # The field naming a row's unit (department, shop...) for `unit` data scopes; None: no unit.
    unit_field: str | None = None
    display_field: str = "id"

    @property
    def owner_column(self) -> str:
        """The column holding the user id that owns a row (`subtree`/`own` data scopes)."""
        return self.owner_field or "created_by"

    @property
    def table_name(self) -> str:
        return f"{TABLE_PREFIX}{self.name}"

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def column_names(self) -> tuple[str, ...]:
        """Standard fields followed by declared fields, in table order."""
        return STANDARD_FIELDS + self.field_names

    @property
    def searchable_fields(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields if f.searchable)

    def has_field(self, name: str) -> bool:
        return any(f.name == name for f in self.fields)

    def field(self, name: str) -> FieldSpec:
        """The declared field called ``name``; :class:`KeyError` if there is none."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"entity '{self.name}' has no field '{name}'")


@dataclass(frozen=True)
class PageSpec:
    """A UI page.  ``columns``, ``filters``, ``actions`` and the groups/fields of ``form`` are
    normalised plain dicts (see :func:`parse_manifest` for their keys); ``None`` means "not
    configured: derive from the entity"."""

    name: str
    path: str
    type: str
    entity: str | None = None
    icon: str | None = None
    menu_group: str | None = None
    columns: tuple[dict[str, Any], ...] | None = None
    filters: tuple[dict[str, Any], ...] | None = None
    actions: tuple[dict[str, Any], ...] | None = None
    form: dict[str, Any] | None = None


@dataclass(frozen=True)
class UiPermission:
    code: str
    description: str


@dataclass(frozen=True)
class EventsSpec:
    published: tuple[str, ...] = ()
    subscribed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Manifest:
    plugin: PluginInfo
    dependencies: Dependencies
    capabilities: Capabilities
    entities: tuple[EntitySpec, ...]
    events: EventsSpec
    pages: tuple[PageSpec, ...]
    ui_permissions: tuple[UiPermission, ...]
    limits: dict[str, int]
    raw: dict[str, Any]
    #: ``[[config.fields]]``: the schema of the plugin's named configurations (empty: free key=value text)
    config_fields: tuple[ConfigFieldSpec, ...] = ()
    #: ``[[extensions]]``: extension point implementations in the plugin's component
    extensions: tuple[ExtensionSpec, ...] = ()

    @property
    def id(self) -> str:
        return self.plugin.id

    @property
    def version(self) -> str:
        return self.plugin.version

    def entity(self, name: str) -> EntitySpec:
        """The entity called ``name``; :class:`KeyError` if the plugin declares none."""
        for entity in self.entities:
            if entity.name == name:
                return entity
        raise KeyError(f"plugin '{self.plugin.id}' declares no entity '{name}'")

    def page(self, path: str) -> PageSpec:
        """The page at ``path``; :class:`KeyError` if there is none."""
        for page in self.pages:
            if page.path == path:
                return page
        raise KeyError(f"plugin '{self.plugin.id}' has no page '{path}'")

    @property
    def db_permissions(self) -> tuple[str, ...]:
        """``db.<entity>.<operation>`` for every entity and operation."""
        return tuple(f"db.{e.name}.{op}" for e in self.entities for op in DB_OPERATIONS)

    @property
    def permission_codes(self) -> tuple[str, ...]:
        """Every permission the plugin brings: generated ``db.*`` ones, then declared ``ui.*`` ones."""
        return self.db_permissions + tuple(p.code for p in self.ui_permissions)


@dataclass(frozen=True)
class ManifestIssue:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


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


# --------------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------------


def parse_manifest(source: str | bytes | Mapping[str, Any], ctx: ValidationContext | None = None) -> Manifest:
    """Parse and validate a manifest; raise :class:`ManifestError` listing every issue found."""
    issues = _Issues()
    data = _load(source, issues)
    if data is None:
        raise ManifestError(issues.items)
    manifest = _Parser(data, ctx or ValidationContext(), issues).parse()
    if issues.items:
        raise ManifestError(issues.items)
    return manifest


def load_manifest(path: str | Path, ctx: ValidationContext | None = None) -> Manifest:
    """Read ``path`` (a ``plugin.toml``) and :func:`parse_manifest` it."""
    return parse_manifest(Path(path).read_bytes(), ctx)


# --------------------------------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------------------------------


class _Issues:
    def __init__(self) -> None:
        self.items: list[ManifestIssue] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(ManifestIssue(path, message))


def _load(source: str | bytes | Mapping[str, Any], issues: _Issues) -> dict[str, Any] | None:
    if isinstance(source, Mapping):
        return _plain(source)
    if isinstance(source, bytes | bytearray):
        try:
            source = bytes(source).decode("utf-8")
        except UnicodeDecodeError as exc:
            issues.add("plugin.toml", f"not valid UTF-8 ({exc.reason} at byte {exc.start})")
            return None
    if source.startswith("\ufeff"):
        source = source[1:]
    try:
        return loads_toml(source, max_depth=MANIFEST_MAX_DEPTH, max_bytes=MANIFEST_MAX_BYTES)
    except TextRejected as exc:
        issues.add("plugin.toml", str(exc))
    except tomllib.TOMLDecodeError as exc:
        issues.add("plugin.toml", f"invalid TOML: {exc}")
    return None


def _plain(value: Any) -> Any:
    """Deep copy of mappings/sequences into dicts/lists (keeps ``raw`` independent of the input)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _ix(path: str, index: int) -> str:
    return f"{path}[{index}]"


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dt.datetime):
        return "a datetime"
    if isinstance(value, dt.date):
        return "a date"
    if isinstance(value, dt.time):
        return "a time"
    return type(value).__name__


def _show(value: Any) -> str:
    """A value as the author wrote it, for messages."""
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return repr(value)


def _one_of(values: Iterable[str]) -> str:
    return ", ".join(values)


class _Parser:
    def __init__(self, data: dict[str, Any], ctx: ValidationContext, issues: _Issues) -> None:
        self.data = data
        self.ctx = ctx
        self.issues = issues
        self.plugin_id = ""
        self.entities: dict[str, EntitySpec] = {}

    # -- generic helpers ---------------------------------------------------------------------------

    def add(self, path: str, message: str) -> None:
        self.issues.add(path, message)

    def keys(
        self, table: Mapping[str, Any], allowed: Iterable[str], path: str, required: Iterable[str] = ()
    ) -> None:
        allowed = tuple(allowed)
        for key in table:
            if key in allowed:
                continue
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else f"expected one of: {_one_of(sorted(allowed))}"
            self.add(_at(path, key), f"unknown key '{key}' ({hint})")
        for key in required:
            if key not in table:
                self.add(_at(path, key), "is required")

    def table(self, parent: Mapping[str, Any], key: str, path: str) -> dict[str, Any] | None:
        """An optional sub-table; ``None`` when absent or not a table (then an issue is recorded)."""
        if key not in parent:
            return None
        value = parent[key]
        if not isinstance(value, Mapping):
            self.add(_at(path, key), f"expected a table, got {_kind(value)}")
            return None
        return dict(value)

    def array(self, parent: Mapping[str, Any], key: str, path: str) -> list[Any]:
        if key not in parent:
            return []
        value = parent[key]
        if not isinstance(value, list | tuple):
            self.add(_at(path, key), f"expected an array, got {_kind(value)}")
            return []
        return list(value)

    def text(self, parent: Mapping[str, Any], key: str, path: str, *, nonempty: bool = True) -> str | None:
        """An optional string (missing required keys are reported by :meth:`keys`)."""
        if key not in parent:
            return None
        value = parent[key]
        if not isinstance(value, str):
            self.add(_at(path, key), f"expected a string, got {_kind(value)}")
            return None
        if nonempty and not value.strip():
            self.add(_at(path, key), "must not be empty")
            return None
        return value

    def flag(self, parent: Mapping[str, Any], key: str, path: str) -> bool | None:
        if key not in parent:
            return None
        value = parent[key]
        if not isinstance(value, bool):
            self.add(_at(path, key), f"expected true or false, got {_kind(value)}")
            return None
        return value

    def integer(
        self, parent: Mapping[str, Any], key: str, path: str, low: int, high: int | None = None
    ) -> int | None:
        if key not in parent:
            return None
        value = parent[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(_at(path, key), f"expected an integer, got {_kind(value)}")
            return None
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            self.add(_at(path, key), f"{value} is out of range (must be {bounds})")
            return None
        return value

    def names(self, value: Any, path: str, what: str) -> list[tuple[str, str]]:
        """An array of strings; returns ``(path, string)`` pairs of the valid items."""
        if not isinstance(value, list | tuple):
            self.add(path, f"expected an array of {what}, got {_kind(value)}")
            return []
        out: list[tuple[str, str]] = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                out.append((_ix(path, i), item))
            else:
                self.add(_ix(path, i), f"expected a string ({what}), got {_kind(item)}")
        return out

    def identifier(self, value: str, path: str, what: str) -> bool:
        if not _NAME.match(value):
            self.add(
                path,
                f"{what} name '{value}' is not valid (lowercase letters, digits and underscores, "
                "starting with a letter, at most 63 characters)",
            )
            return False
        if value in RESERVED_WORDS:
            self.add(path, f"{what} name '{value}' is a reserved SQL word; choose another name")
            return False
        return True

    # -- sections ----------------------------------------------------------------------------------

    def parse(self) -> Manifest:
        data = self.data
        self.keys(data, _TOP_KEYS, "")
        plugin = self.plugin_info()
        dependencies = self.dependencies()
        capabilities = self.capabilities()
        if capabilities.messages and "message" not in dependencies.modules:
            self.add("permissions.messages", 'the plugin requests messages = true but does not depend on the '
                     '"message" base module (add it to [dependencies] modules)')
        entities = self.schema()
        events = self.events(capabilities)
        ui = self.table(data, "ui", "") or {}
        self.keys(ui, _UI_KEYS, "ui")
        ui_permissions = self.ui_permissions(ui)
        declared_codes = {
            item["code"]
            for item in ui.get("permissions", ())
            if isinstance(item, Mapping) and isinstance(item.get("code"), str)
        }
        pages = self.pages(ui, declared_codes)
        limits = self.limits()
        config_fields, extensions = self.config_and_extensions()
        return Manifest(
            plugin=plugin,
            dependencies=dependencies,
            capabilities=capabilities,
            entities=entities,
            events=events,
            pages=pages,
            ui_permissions=ui_permissions,
            limits=limits,
            raw=data,
            config_fields=config_fields,
            extensions=extensions,
        )

    def plugin_info(self) -> PluginInfo:
        if "plugin" not in self.data:
            self.add("plugin", "the [plugin] table is required")
        section = self.table(self.data, "plugin", "") or {}
        path = "plugin"
        if isinstance(self.data.get("plugin"), Mapping):
            self.keys(section, _PLUGIN_KEYS, path, required=("id", "name", "version"))
        plugin_id = self.text(section, "id", path) or ""
        valid_id = False
        if plugin_id:
            if not _KEBAB_ID.match(plugin_id):
                self.add(
                    f"{path}.id",
                    f"plugin id '{plugin_id}' must be kebab-case (lowercase letters and digits in "
                    "words joined by single hyphens, starting with a letter)",
                )
            elif len(plugin_id) > MAX_PLUGIN_ID_LENGTH:
                self.add(
                    f"{path}.id",
                    f"plugin id is {len(plugin_id)} characters long (at most {MAX_PLUGIN_ID_LENGTH})",
                )
            elif plugin_id in self.ctx.available_modules:
                self.add(f"{path}.id", f"plugin id '{plugin_id}' is the name of a base module")
            elif clash := reserved.plugin_id_clash(plugin_id):
                self.add(f"{path}.id", clash)
            else:
                valid_id = True
        # Checks that depend on the id (e.g. the ui.<plugin>. namespace) only run with a valid one.
        self.plugin_id = plugin_id if valid_id else ""
        name = self.text(section, "name", path) or ""
        version = self.text(section, "version", path) or ""
        if version:
            self.semver(version, f"{path}.version")
        description = self.text(section, "description", path, nonempty=False) or ""
        author = self.text(section, "author", path, nonempty=False) or ""
        min_platform = self.text(section, "min_platform_version", path)
        if min_platform is not None:
            required = self.semver(min_platform, f"{path}.min_platform_version")
            try:
                platform = parse_version(self.ctx.platform_version)
            except ValueError:
                platform = None
            if required is not None and platform is not None and required > platform:
                self.add(
                    f"{path}.min_platform_version",
                    f"requires platform >= {min_platform}, this is {self.ctx.platform_version}",
                )
        return PluginInfo(plugin_id, name, version, description, author, min_platform)

    def semver(self, text: str, path: str) -> SemVer | None:
        try:
            return parse_version(text)
        except ValueError as exc:
            self.add(path, str(exc))
            return None

    def dependencies(self) -> Dependencies:
        path = "dependencies"
        section = self.table(self.data, "dependencies", "")
        if section is None:
            return Dependencies()
        self.keys(section, _DEPENDENCY_KEYS, path)
        modules: list[str] = []
        if "modules" in section:
            available = _one_of(sorted(self.ctx.available_modules)) or "none"
            for item_path, module in self.names(section["modules"], f"{path}.modules", "module ids"):
                if module in modules:
                    self.add(item_path, f"module '{module}' is listed twice")
                    continue
                modules.append(module)
                if module not in self.ctx.available_modules:
                    self.add(
                        item_path,
                        f"base module '{module}' is not available on this platform (available: {available})",
                    )
        plugins = (
            self.plugin_dependencies(section.get("plugins"), f"{path}.plugins")
            if "plugins" in section
            else []
        )
        return Dependencies(tuple(modules), tuple(plugins))

    def plugin_dependencies(self, value: Any, path: str) -> list[PluginDependency]:
        entries: list[tuple[str, Any, Any]] = []  # (path, id, constraint)
        if isinstance(value, Mapping):
            entries = [(_at(path, str(k)), k, v) for k, v in value.items()]
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                item_path = _ix(path, i)
                if isinstance(item, str):
                    entries.append((item_path, item, None))
                elif isinstance(item, Mapping):
                    self.keys(item, _PLUGIN_DEPENDENCY_KEYS, item_path, required=("id",))
                    entries.append((item_path, item.get("id"), item.get("version")))
                else:
                    self.add(item_path, f"expected a plugin id or a table {{id, version}}, got {_kind(item)}")
        else:
            self.add(path, f"expected an array of plugin ids or a table of id = version, got {_kind(value)}")
        out: list[PluginDependency] = []
        seen: set[str] = set()
        for item_path, dep_id, constraint in entries:
            if not isinstance(dep_id, str) or not _KEBAB_ID.match(dep_id):
                self.add(item_path, f"{_show(dep_id)} is not a plugin id")
                continue
            if dep_id in seen:
                self.add(item_path, f"plugin '{dep_id}' is listed twice")
                continue
            seen.add(dep_id)
            if dep_id == self.plugin_id:
                self.add(item_path, "a plugin cannot depend on itself")
                continue
            minimum = self.constraint(constraint, item_path)
            out.append(PluginDependency(dep_id, str(minimum) if minimum is not None else None))
            installed = self.ctx.installed_plugins.get(dep_id)
            if installed is None:
                self.add(item_path, f"plugin '{dep_id}' is not installed")
                continue
            if minimum is not None:
                try:
                    ok = parse_version(installed) >= minimum
                except ValueError:
                    ok = False
                if not ok:
                    self.add(item_path, f"requires plugin '{dep_id}' >= {minimum}, installed is {installed}")
        return out

    def constraint(self, constraint: Any, path: str) -> SemVer | None:
        if constraint is None:
            return None
        if not isinstance(constraint, str):
            self.add(path, f"version constraint must be a string like '>=1.0.0', got {_kind(constraint)}")
            return None
        if constraint.strip() in ("", "*"):
            return None
        match = _CONSTRAINT.match(constraint)
        try:
            if match is None:
                raise ValueError
            return parse_version(match.group(2))
        except ValueError:
            self.add(path, f"version constraint '{constraint}' is not valid (use '>=MAJOR.MINOR.PATCH')")
            return None

    def capabilities(self) -> Capabilities:
        section = self.table(self.data, "permissions", "")
        if section is None:
            return Capabilities()
        self.keys(section, _CAPABILITY_KEYS, "permissions")
        values = {key: bool(self.flag(section, key, "permissions")) for key in _CAPABILITY_KEYS}
        return Capabilities(**values)

    # -- schema --------------------------------------------------------------------------------------

    def schema(self) -> tuple[EntitySpec, ...]:
        section = self.table(self.data, "schema", "")
        if section is None:
            return ()
        self.keys(section, _SCHEMA_KEYS, "schema")
        raw_entities = self.array(section, "entities", "schema")
        # Names first: references may point at entities declared further down.
        local_names = {
            e["name"] for e in raw_entities if isinstance(e, Mapping) and isinstance(e.get("name"), str)
        }
        specs: list[EntitySpec] = []
        seen: dict[str, int] = {}
        for i, raw in enumerate(raw_entities):
            path = _ix("schema.entities", i)
            if not isinstance(raw, Mapping):
                self.add(path, f"expected a table, got {_kind(raw)}")
                continue
            spec = self.entity(raw, path, local_names)
            if spec is None:
                continue
            if spec.name in seen:
                self.add(
                    f"{path}.name",
                    f"entity '{spec.name}' is declared twice (first at schema.entities[{seen[spec.name]}])",
                )
                continue
            seen[spec.name] = i
            specs.append(spec)
            self.entities[spec.name] = spec
        return tuple(specs)

    def entity(self, raw: Mapping[str, Any], path: str, local_names: set[str]) -> EntitySpec | None:
        self.keys(raw, _ENTITY_KEYS, path, required=("name", "fields"))
        name = self.text(raw, "name", path)
        if name is None:
            return None
        if self.identifier(name, f"{path}.name", "entity"):
            if len(name) > MAX_ENTITY_NAME_LENGTH:
                self.add(
                    f"{path}.name",
                    f"entity name is {len(name)} characters long (at most {MAX_ENTITY_NAME_LENGTH}, "
                    f"so that '{TABLE_PREFIX}{name}' fits in 63)",
                )
            if name in RESERVED_ENTITY_NAMES:
                self.add(
                    f"{path}.name",
                    f"entity name '{name}' is reserved: the host uses table '{TABLE_PREFIX}{name}'",
                )
            elif clash := reserved.entity_name_clash(name):
                self.add(f"{path}.name", clash)
            owner = self.ctx.foreign_entities.get(name)
            if owner is not None and owner != self.plugin_id:
                self.add(f"{path}.name", f"entity '{name}' is already provided by plugin '{owner}'")
        label = self.text(raw, "label", path) or default_label(name)

        fields: list[FieldSpec] = []
        seen: dict[str, int] = {}
        raw_fields = self.array(raw, "fields", path)
        if "fields" in raw and isinstance(raw["fields"], list | tuple) and not raw_fields:
            self.add(f"{path}.fields", "an entity needs at least one field")
        for j, raw_field in enumerate(raw_fields):
            field_path = _ix(f"{path}.fields", j)
            if not isinstance(raw_field, Mapping):
                self.add(field_path, f"expected a table, got {_kind(raw_field)}")
                continue
            spec = self.field(raw_field, field_path, local_names)
            if spec is None:
                continue
            if spec.name in seen:
                self.add(
                    f"{field_path}.name",
                    f"field '{spec.name}' is declared twice (first at fields[{seen[spec.name]}])",
                )
                continue
            seen[spec.name] = j
            fields.append(spec)
        by_name = {f.name: f for f in fields}

        indexes = self.indexes(raw, path, by_name)

        owner_field = self.text(raw, "owner_field", path)
        if owner_field is not None:
            target = by_name.get(owner_field)
            if target is None and owner_field not in OWNER_STANDARD_FIELDS:
                self.add(f"{path}.owner_field", f"unknown field '{owner_field}'")
                owner_field = None
            elif target is not None and target.type not in ("uuid", "reference"):
                self.add(
                    f"{path}.owner_field",
                    f"owner field '{owner_field}' must be a uuid or reference field, not {target.type}",
                )

        unit_field = self.text(raw, "unit_field", path)
        if unit_field is not None:
            target = by_name.get(unit_field)
            if target is None:
                self.add(f"{path}.unit_field", f"unknown field '{unit_field}'")
                unit_field = None
            elif target.type not in UNIT_FIELD_TYPES:
                self.add(
                    f"{path}.unit_field",
                    f"unit field '{unit_field}' must be a {' or '.join(UNIT_FIELD_TYPES)} field, not {target.type}",
                )
                unit_field = None

        display_field = self.text(raw, "display_field", path)
        if display_field is not None:
            if display_field not in by_name and display_field not in STANDARD_FIELDS:
                self.add(f"{path}.display_field", f"unknown field '{display_field}'")
        else:
            display_field = next((f.name for f in fields if f.type == "string"), "id")

        return EntitySpec(
            name=name,
            label=label,
            fields=tuple(fields),
            indexes=indexes,
            owner_field=owner_field,
            unit_field=unit_field,
            display_field=display_field,
        )

    def indexes(
        self, raw: Mapping[str, Any], path: str, fields: Mapping[str, FieldSpec]
    ) -> tuple[tuple[str, ...], ...]:
        out: list[tuple[str, ...]] = []
        for i, item in enumerate(self.array(raw, "indexes", path)):
            index_path = _ix(f"{path}.indexes", i)
            if not isinstance(item, list | tuple):
                self.add(index_path, f"expected an array of field names, got {_kind(item)}")
                continue
            if not item:
                self.add(index_path, "an index needs at least one field")
                continue
            columns: list[str] = []
            ok = True
            for col_path, column in self.names(item, index_path, "field names"):
                known = fields.get(column)
                if known is None and column not in STANDARD_FIELDS:
                    self.add(col_path, f"unknown field '{column}'")
                    ok = False
                elif known is not None and known.type == "json":
                    self.add(col_path, f"json field '{column}' cannot be indexed")
                    ok = False
                elif column in columns:
                    self.add(col_path, f"field '{column}' appears twice in this index")
                    ok = False
                columns.append(column)
            if len(columns) != len(item):
                ok = False
            key = tuple(columns)
            if ok and key in out:
                self.add(index_path, f"duplicate index on ({', '.join(key)})")
                continue
            if ok:
                out.append(key)
        return tuple(out)

    def field(self, raw: Mapping[str, Any], path: str, local_names: set[str]) -> FieldSpec | None:
        self.keys(raw, _FIELD_KEYS, path, required=("name", "type"))
        name = self.text(raw, "name", path)
        if name is None:
            return None
        if name in STANDARD_FIELDS:
            self.add(
                f"{path}.name",
                f"'{name}' is a standard field the host adds to every table "
                f"({_one_of(STANDARD_FIELDS)}); choose another name",
            )
        else:
            self.identifier(name, f"{path}.name", "field")

        ftype = self.text(raw, "type", path) or ""
        if ftype and ftype not in FIELD_TYPES:
            self.add(f"{path}.type", f"unknown type '{ftype}' (expected one of: {_one_of(FIELD_TYPES)})")
            ftype = ""
        if ftype:
            for attr, types in _TYPE_SPECIFIC.items():
                if attr in raw and ftype not in types:
                    self.add(f"{path}.{attr}", f"'{attr}' does not apply to {ftype} fields")

        label = self.text(raw, "label", path) or default_label(name)
        help_text = self.text(raw, "help", path)
        required = bool(self.flag(raw, "required", path))
        unique = bool(self.flag(raw, "unique", path))
        if unique and ftype == "json":
            self.add(f"{path}.unique", "json fields cannot be unique")
        explicit_nullable = self.flag(raw, "nullable", path)

        max_length: int | None = None
        precision: int | None = None
        scale: int | None = None
        options: tuple[SelectOption, ...] = ()
        target: str | None = None
        if ftype == "string":
            max_length = self.integer(raw, "max_length", path, 1, STRING_MAX_LENGTH) or STRING_DEFAULT_LENGTH
        elif ftype == "decimal":
            precision = (
                self.integer(raw, "precision", path, 1, DECIMAL_MAX_PRECISION) or DECIMAL_DEFAULT_PRECISION
            )
            scale_value = self.integer(raw, "scale", path, 0, DECIMAL_MAX_PRECISION)
            if scale_value is None:
                scale = min(DECIMAL_DEFAULT_SCALE, precision)
            elif scale_value > precision:
                self.add(f"{path}.scale", f"scale {scale_value} is larger than precision {precision}")
                scale = precision
            else:
                scale = scale_value
        elif ftype == "select":
            options = self.options(raw, path)
        elif ftype == "reference":
            target = self.reference(raw, path, local_names)

        searchable_flag = self.flag(raw, "searchable", path)
        if searchable_flag and ftype and ftype not in _SEARCHABLE_TYPES:
            self.add(f"{path}.searchable", f"only {_one_of(_SEARCHABLE_TYPES)} fields can be searchable")
        searchable = searchable_flag if searchable_flag is not None else ftype in ("string", "text")

        default: Any = None
        if "default" in raw and ftype:
            default = self.default(
                raw["default"], f"{path}.default", ftype, max_length, precision, scale, options
            )

        if required and explicit_nullable is True:
            self.add(
                f"{path}.nullable", "a required field cannot be nullable (required = true, nullable = true)"
            )
        if explicit_nullable is False and not required and "default" not in raw:
            self.add(f"{path}.nullable", "nullable = false needs required = true or a default")
        nullable = explicit_nullable if explicit_nullable is not None else not required

        return FieldSpec(
            name=name,
            type=ftype,
            label=label,
            help=help_text,
            required=required,
            unique=unique,
            nullable=nullable,
            default=default,
            max_length=max_length,
            precision=precision,
            scale=scale,
            options=options,
            entity=target,
            searchable=bool(searchable),
        )

    def options(self, raw: Mapping[str, Any], path: str) -> tuple[SelectOption, ...]:
        if "options" not in raw:
            self.add(f"{path}.options", "select fields need options")
            return ()
        items = self.array(raw, "options", path)
        if not items and isinstance(raw["options"], list | tuple):
            self.add(f"{path}.options", "select fields need at least one option")
        out: list[SelectOption] = []
        seen: set[str] = set()
        for i, item in enumerate(items):
            item_path = _ix(f"{path}.options", i)
            if isinstance(item, str):
                value, label = item, item
            elif isinstance(item, Mapping):
                self.keys(item, _OPTION_KEYS, item_path, required=("value",))
                value = self.text(item, "value", item_path)
                if value is None:
                    continue
                label = self.text(item, "label", item_path) or value
            else:
                self.add(item_path, f"expected a string or a table {{value, label}}, got {_kind(item)}")
                continue
            if not value.strip():
                self.add(item_path, "option value must not be empty")
                continue
            if len(value) > SELECT_VALUE_MAX_LENGTH:
                self.add(item_path, f"option value is longer than {SELECT_VALUE_MAX_LENGTH} characters")
                continue
            if value in seen:
                self.add(item_path, f"option '{value}' is listed twice")
                continue
            seen.add(value)
            out.append(SelectOption(value, label))
        return tuple(out)

    def reference(self, raw: Mapping[str, Any], path: str, local_names: set[str]) -> str | None:
        if "entity" not in raw:
            self.add(f"{path}.entity", "reference fields need the name of the entity they point to")
            return None
        target = self.text(raw, "entity", path)
        if target is None:
            return None
        if target not in local_names and target not in self.ctx.foreign_entity_specs:
            known = sorted(local_names | set(self.ctx.foreign_entity_specs))
            self.add(f"{path}.entity", f"unknown entity '{target}' (known: {_one_of(known) or 'none'})")
        return target

    def default(
        self,
        value: Any,
        path: str,
        ftype: str,
        max_length: int | None,
        precision: int | None,
        scale: int | None,
        options: tuple[SelectOption, ...],
    ) -> Any:
        def bad(what: str = ftype) -> None:
            self.add(path, f"default {_show(value)} is not a valid {what}")

        if ftype in ("string", "text"):
            if not isinstance(value, str):
                return bad("string")
            if max_length is not None and len(value) > max_length:
                self.add(path, f"default is {len(value)} characters long (max_length is {max_length})")
                return None
            return value
        if ftype == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                return bad()
            if not INT64_MIN <= value <= INT64_MAX:
                self.add(path, f"default {value} does not fit a 64-bit integer")
                return None
            return value
        if ftype == "decimal":
            return self.decimal_default(value, path, precision or DECIMAL_DEFAULT_PRECISION, scale or 0)
        if ftype == "boolean":
            return value if isinstance(value, bool) else bad()
        if ftype == "date":
            if value == "today":
                return value
            if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
                return value
            if isinstance(value, str):
                try:
                    return dt.date.fromisoformat(value)
                except ValueError:
                    pass
            self.add(path, f'default {_show(value)} is not a valid date (use YYYY-MM-DD or "today")')
            return None
        if ftype == "datetime":
            if value == "now":
                return value
            parsed: dt.datetime | None = value if isinstance(value, dt.datetime) else None
            if parsed is None and isinstance(value, str):
                try:
                    parsed = dt.datetime.fromisoformat(value)
                except ValueError:
                    parsed = None
            if parsed is None:
                self.add(path, f'default {_show(value)} is not a valid datetime (use ISO 8601 or "now")')
                return None
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)
        if ftype in ("uuid", "reference"):
            try:
                return uuid.UUID(value) if isinstance(value, str) else bad("uuid")
            except ValueError:
                return bad("uuid")
        if ftype == "select":
            values = [o.value for o in options]
            if not isinstance(value, str) or (values and value not in values):
                self.add(path, f"default {_show(value)} is not one of the options ({_one_of(values)})")
                return None
            return value
        # json: any TOML value is a valid JSON document except dates and times.
        if _has_temporal(value):
            self.add(path, "json defaults cannot contain TOML dates or times")
            return None
        return value

    def decimal_default(self, value: Any, path: str, precision: int, scale: int) -> Decimal | None:
        number: Decimal | None = None
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            try:
                number = Decimal(str(value).strip())
            except InvalidOperation:
                number = None
        if number is None or not number.is_finite():
            self.add(path, f"default {_show(value)} is not a valid decimal")
            return None
        _sign, digits, exponent = number.as_tuple()
        assert isinstance(exponent, int)  # finite
        places = max(0, -exponent)
        integer_digits = max(0, len(digits) + exponent) if number != 0 else 0
        if places > scale or integer_digits > precision - scale:
            self.add(path, f"default {_show(value)} does not fit decimal({precision}, {scale})")
            return None
        return number

    # -- events, ui, limits ------------------------------------------------------------------------

    def events(self, capabilities: Capabilities) -> EventsSpec:
        section = self.table(self.data, "events", "")
        if section is None:
            return EventsSpec()
        self.keys(section, _EVENTS_KEYS, "events")
        lists: dict[str, tuple[str, ...]] = {}
        for key in _EVENTS_KEYS:
            names: list[str] = []
            if key in section:
                for item_path, name in self.names(section[key], f"events.{key}", "event names"):
                    if not _EVENT.match(name):
                        self.add(
                            item_path,
                            f"event name '{name}' is not valid (two or three dot-separated parts, "
                            "e.g. 'inventory.stock.low' or 'workflow.completed')",
                        )
                    elif key == "published" and "*" in name:
                        self.add(item_path, f"published event '{name}' cannot contain a wildcard")
                    elif any("*" in part and part != "*" for part in name.split(".")):
                        self.add(item_path, f"'{name}': a wildcard must be a whole part ('*' stands for one "
                                            "dot-separated part, e.g. 'crm.customer.*')")
                    elif name in names:
                        self.add(item_path, f"event '{name}' is listed twice")
                    else:
                        names.append(name)
            lists[key] = tuple(names)
        if (lists["published"] or lists["subscribed"]) and not capabilities.events:
            self.add(
                "permissions.events",
                "the plugin publishes or subscribes to events but does not request events = true",
            )
        return EventsSpec(published=lists["published"], subscribed=lists["subscribed"])

    def ui_permissions(self, ui: Mapping[str, Any]) -> tuple[UiPermission, ...]:
        out: list[UiPermission] = []
        seen: set[str] = set()
        for i, item in enumerate(self.array(ui, "permissions", "ui")):
            path = _ix("ui.permissions", i)
            if not isinstance(item, Mapping):
                self.add(path, f"expected a table {{code, description}}, got {_kind(item)}")
                continue
            self.keys(item, _UI_PERMISSION_KEYS, path, required=("code", "description"))
            code = self.text(item, "code", path)
            description = self.text(item, "description", path)
            if code is None:
                continue
            if not _UI_PERMISSION.match(code):
                self.add(
                    f"{path}.code",
                    f"permission code '{code}' is not valid (ui.<plugin>.<element>, lowercase words "
                    "joined by '-' or '_')",
                )
                continue
            if self.plugin_id and code.split(".")[1] != self.plugin_id:
                self.add(f"{path}.code", f"permission code '{code}' must start with 'ui.{self.plugin_id}.'")
                continue
            if code in seen:
                self.add(f"{path}.code", f"permission '{code}' is declared twice")
                continue
            seen.add(code)
            if description is not None:
                out.append(UiPermission(code, description))
        return tuple(out)

    def pages(self, ui: Mapping[str, Any], ui_codes: set[str]) -> tuple[PageSpec, ...]:
        out: list[PageSpec] = []
        paths: dict[str, int] = {}
        for i, item in enumerate(self.array(ui, "pages", "ui")):
            path = _ix("ui.pages", i)
            if not isinstance(item, Mapping):
                self.add(path, f"expected a table, got {_kind(item)}")
                continue
            page = self.page(item, path, ui_codes)
            if page is None:
                continue
            if page.path in paths:
                self.add(
                    f"{path}.path", f"path '{page.path}' is already used by ui.pages[{paths[page.path]}]"
                )
                continue
            paths[page.path] = i
            out.append(page)
        return tuple(out)

    def page(self, raw: Mapping[str, Any], path: str, ui_codes: set[str]) -> PageSpec | None:
        self.keys(raw, _PAGE_KEYS, path, required=("name", "path", "type"))
        name = self.text(raw, "name", path) or ""
        page_path = self.text(raw, "path", path)
        if page_path is not None and not _PAGE_PATH.match(page_path):
            self.add(
                f"{path}.path",
                f"path '{page_path}' must start with '/' and use only URL-safe characters "
                "(letters, digits, '-', '_', '.', '~'; no empty, '.' or '..' segments)",
            )
            page_path = None
        elif page_path is not None and any(seg.lower().startswith("api") for seg in page_path.split("/")):
            # Paths under /api/ are the JSON API's (token auth, no CSRF check): a page must never look like one.
            self.add(f"{path}.path", f"path '{page_path}' has a segment starting with 'api', which the portal "
                     "keeps for its JSON API; choose another path")
            page_path = None
        ptype = self.text(raw, "type", path)
        if ptype is not None and ptype not in PAGE_TYPES:
            self.add(f"{path}.type", f"unknown page type '{ptype}' (expected one of: {_one_of(PAGE_TYPES)})")
            ptype = None
        icon = self.text(raw, "icon", path)
        menu_group = self.text(raw, "menu_group", path)

        entity_name = self.text(raw, "entity", path)
        entity: EntitySpec | None = None
        if entity_name is not None:
            entity = self.entities.get(entity_name)
            if entity is None and ptype != "crud":
                entity = self.ctx.foreign_entity_specs.get(entity_name)
            if entity is None:
                scope = "this plugin's" if ptype == "crud" else "known"
                known = (
                    sorted(self.entities)
                    if ptype == "crud"
                    else sorted({*self.entities, *self.ctx.foreign_entity_specs})
                )
                self.add(
                    f"{path}.entity",
                    f"unknown entity '{entity_name}' ({scope} entities: {_one_of(known) or 'none'})",
                )
        elif ptype == "crud":
            self.add(f"{path}.entity", "crud pages need an entity")

        columns = filters = actions = None
        form = None
        config_keys = [k for k in ("columns", "filters", "actions", "form") if k in raw]
        if ptype is not None and ptype != "crud":
            for key in config_keys:
                self.add(f"{path}.{key}", f"'{key}' only applies to crud pages")
        elif entity is not None:
            if "columns" in raw:
                columns = self.columns(raw["columns"], f"{path}.columns", entity)
            if "filters" in raw:
                filters = self.filters(raw["filters"], f"{path}.filters", entity)
            if "actions" in raw:
                actions = self.actions(raw["actions"], f"{path}.actions", ui_codes)
            if "form" in raw:
                form = self.form(raw["form"], f"{path}.form", entity)

        if page_path is None or ptype is None:
            return None
        return PageSpec(
            name=name,
            path=page_path,
            type=ptype,
            entity=entity_name,
            icon=icon,
            menu_group=menu_group,
            columns=columns,
            filters=filters,
            actions=actions,
            form=form,
        )

    def field_ref(self, value: Any, path: str, entity: EntitySpec, *, standard: bool) -> str | None:
        if not isinstance(value, str):
            self.add(path, f"expected a field name, got {_kind(value)}")
            return None
        if entity.has_field(value) or (standard and value in STANDARD_FIELDS):
            return value
        hint = " (standard fields are not editable)" if value in STANDARD_FIELDS else ""
        self.add(path, f"unknown field '{value}' in entity '{entity.name}'{hint}")
        return None

    def field_label(self, entity: EntitySpec, name: str) -> str:
        return entity.field(name).label if entity.has_field(name) else default_label(name)

    def columns(self, value: Any, path: str, entity: EntitySpec) -> tuple[dict[str, Any], ...]:
        if not isinstance(value, list | tuple):
            self.add(path, f"expected an array of columns, got {_kind(value)}")
            return ()
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for i, item in enumerate(value):
            item_path = _ix(path, i)
            if isinstance(item, Mapping):
                self.keys(item, _COLUMN_KEYS, item_path, required=("field",))
                name = (
                    self.field_ref(item.get("field"), f"{item_path}.field", entity, standard=True)
                    if "field" in item
                    else None
                )
                label = self.text(item, "label", item_path)
                ctype = self.text(item, "type", item_path)
                if ctype is not None and ctype not in COLUMN_TYPES:
                    self.add(
                        f"{item_path}.type",
                        f"unknown column type '{ctype}' (expected one of: {_one_of(COLUMN_TYPES)})",
                    )
                    ctype = None
                width = self.integer(item, "width", item_path, 1, 2000)
                sortable = self.flag(item, "sortable", item_path)
                hidden = self.flag(item, "hidden", item_path)
                options = self.column_options(item, item_path)
            else:
                name = self.field_ref(item, item_path, entity, standard=True)
                label = ctype = width = sortable = hidden = None
                options = ()
            if name is None:
                continue
            if name in seen:
                self.add(item_path, f"column '{name}' is listed twice")
                continue
            seen.add(name)
            out.append(
                {
                    "field": name,
                    "label": label or self.field_label(entity, name),
                    "type": ctype,
                    "width": width,
                    "sortable": True if sortable is None else sortable,
                    "hidden": bool(hidden),
                    "options": options,
                }
            )
        return tuple(out)

    def column_options(self, item: Mapping[str, Any], path: str) -> tuple[dict[str, str | None], ...]:
        out: list[dict[str, str | None]] = []
        for i, option in enumerate(self.array(item, "options", path)):
            option_path = _ix(f"{path}.options", i)
            if not isinstance(option, Mapping):
                self.add(option_path, f"expected a table {{value, label, color}}, got {_kind(option)}")
                continue
            self.keys(option, _COLUMN_OPTION_KEYS, option_path, required=("value",))
            value = self.text(option, "value", option_path)
            if value is None:
                continue
            out.append(
                {
                    "value": value,
                    "label": self.text(option, "label", option_path) or value,
                    "color": self.text(option, "color", option_path),
                }
            )
        return tuple(out)

    def filters(self, value: Any, path: str, entity: EntitySpec) -> tuple[dict[str, Any], ...]:
        if not isinstance(value, list | tuple):
            self.add(path, f"expected an array of filters, got {_kind(value)}")
            return ()
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for i, item in enumerate(value):
            item_path = _ix(path, i)
            if isinstance(item, Mapping):
                self.keys(item, _FILTER_KEYS, item_path, required=("field",))
                name = (
                    self.field_ref(item.get("field"), f"{item_path}.field", entity, standard=True)
                    if "field" in item
                    else None
                )
                label = self.text(item, "label", item_path)
            else:
                name = self.field_ref(item, item_path, entity, standard=True)
                label = None
            if name is None:
                continue
            if entity.has_field(name) and entity.field(name).type == "json":
                self.add(item_path, f"json field '{name}' cannot be a filter")
                continue
            if name in seen:
                self.add(item_path, f"filter '{name}' is listed twice")
                continue
            seen.add(name)
            out.append({"field": name, "label": label or self.field_label(entity, name)})
        return tuple(out)

    def actions(self, value: Any, path: str, ui_codes: set[str]) -> tuple[dict[str, Any], ...]:
        if not isinstance(value, list | tuple):
            self.add(path, f"expected an array of actions, got {_kind(value)}")
            return ()
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for i, item in enumerate(value):
            item_path = _ix(path, i)
            permission: str | None = None
            label: str | None = None
            if isinstance(item, str):
                name: str | None = item
                if item not in BUILTIN_ACTIONS:
                    self.add(
                        item_path,
                        f"unknown action '{item}' (built-in actions: {_one_of(BUILTIN_ACTIONS)}; "
                        "custom actions are tables {name, label, permission})",
                    )
                    continue
            elif isinstance(item, Mapping):
                self.keys(item, _ACTION_KEYS, item_path, required=("name",))
                name = self.text(item, "name", item_path)
                if name is not None and not _ACTION_NAME.match(name):
                    self.add(
                        f"{item_path}.name",
                        f"action name '{name}' is not valid (lowercase letters, digits, '-' and '_')",
                    )
                    name = None
                label = self.text(item, "label", item_path)
                permission = self.text(item, "permission", item_path)
                if permission is not None and not self.permission_ref(
                    permission, f"{item_path}.permission", ui_codes
                ):
                    permission = None
            else:
                self.add(
                    item_path,
                    f"expected an action name or a table {{name, label, permission}}, got {_kind(item)}",
                )
                continue
            if name is None:
                continue
            if name in seen:
                self.add(item_path, f"action '{name}' is listed twice")
                continue
            seen.add(name)
            out.append({"name": name, "label": label or default_label(name), "permission": permission})
        return tuple(out)

    def permission_ref(self, code: str, path: str, ui_codes: set[str]) -> bool:
        if code.startswith("ui."):
            if code not in ui_codes:
                self.add(path, f"permission '{code}' is not declared in [[ui.permissions]]")
                return False
            return True
        match = _DB_PERMISSION.match(code)
        if match is None:
            self.add(
                path, f"permission '{code}' is neither a declared ui.* permission nor db.<entity>.<operation>"
            )
            return False
        entity, operation = match.groups()
        if entity not in self.entities and entity not in self.ctx.foreign_entity_specs:
            self.add(path, f"permission '{code}' names unknown entity '{entity}'")
            return False
        if operation not in DB_OPERATIONS:
            self.add(
                path,
                f"permission '{code}': unknown operation '{operation}' (expected one of: {_one_of(DB_OPERATIONS)})",
            )
            return False
        return True

    def form(self, value: Any, path: str, entity: EntitySpec) -> dict[str, Any] | None:
        if not isinstance(value, Mapping):
            self.add(path, f"expected a table {{groups, fields}}, got {_kind(value)}")
            return None
        self.keys(value, _FORM_KEYS, path)
        seen: dict[str, str] = {}
        groups: list[dict[str, Any]] = []
        for i, group in enumerate(self.array(value, "groups", path)):
            group_path = _ix(f"{path}.groups", i)
            if not isinstance(group, Mapping):
                self.add(group_path, f"expected a table {{title, fields}}, got {_kind(group)}")
                continue
            self.keys(group, _FORM_GROUP_KEYS, group_path, required=("fields",))
            title = self.text(group, "title", group_path)
            fields = (
                self.form_fields(group.get("fields"), f"{group_path}.fields", entity, seen)
                if "fields" in group
                else ()
            )
            groups.append({"title": title, "fields": fields})
        loose = self.form_fields(value["fields"], f"{path}.fields", entity, seen) if "fields" in value else ()
        if "groups" not in value and "fields" not in value:
            self.add(path, "a form needs 'fields' or 'groups'")
        elif not seen and not _form_has_entries(value):
            self.add(path, "a form needs at least one field")
        missing = [f.name for f in entity.fields if f.required and not f.has_default and f.name not in seen]
        if seen and missing:
            self.add(
                path,
                f"the form leaves out required field{'s' if len(missing) > 1 else ''} "
                f"{_one_of(repr(m) for m in missing)} (records could not be created)",
            )
        return {"groups": tuple(groups), "fields": loose}

    def form_fields(
        self, value: Any, path: str, entity: EntitySpec, seen: dict[str, str]
    ) -> tuple[dict[str, Any], ...]:
        if not isinstance(value, list | tuple):
            self.add(path, f"expected an array of field names, got {_kind(value)}")
            return ()
        out: list[dict[str, Any]] = []
        for i, item in enumerate(value):
            item_path = _ix(path, i)
            if isinstance(item, Mapping):
                self.keys(item, _FORM_FIELD_KEYS, item_path, required=("field",))
                name = (
                    self.field_ref(item.get("field"), f"{item_path}.field", entity, standard=False)
                    if "field" in item
                    else None
                )
                label = self.text(item, "label", item_path)
                help_text = self.text(item, "help", item_path)
                readonly = self.flag(item, "readonly", item_path)
            else:
                name = self.field_ref(item, item_path, entity, standard=False)
                label = help_text = None
                readonly = None
            if name is None:
                continue
            if name in seen:
                self.add(item_path, f"field '{name}' is already in the form (at {seen[name]})")
                continue
            seen[name] = item_path
            spec = entity.field(name)
            out.append(
                {
                    "field": name,
                    "label": label or spec.label,
                    "help": help_text if help_text is not None else spec.help,
                    "readonly": bool(readonly),
                }
            )
        return tuple(out)

    def limits(self) -> dict[str, int]:
        section = self.table(self.data, "limits", "")
        if section is None:
            return {}
        self.keys(section, LIMIT_KEYS, "limits")
        out: dict[str, int] = {}
        for key in LIMIT_KEYS:
            value = self.integer(section, key, "limits", 1)
            if value is not None:
                out[key] = value
        return out

    def config_and_extensions(self) -> tuple[tuple[ConfigFieldSpec, ...], tuple[ExtensionSpec, ...]]:
        config = self.table(self.data, "config", "")
        out: tuple[ConfigFieldSpec, ...] = ()
        if config is not None:
            self.keys(config, _CONFIG_KEYS, "config")
            out = self.config_fields(self.array(config, "fields", "config"), "config.fields")
        extensions: list[ExtensionSpec] = []
        names: dict[str, int] = {}
        for i, item in enumerate(self.array(self.data, "extensions", "")):
            path = _ix("extensions", i)
            if not isinstance(item, Mapping):
                self.add(path, f"expected a table, got {_kind(item)}")
                continue
            spec = self.extension(item, path)
            if spec is None:
                continue
            if spec.name in names:
                self.add(f"{path}.name", f"extension '{spec.name}' is declared twice (first at extensions[{names[spec.name]}])")
                continue
            names[spec.name] = i
            extensions.append(spec)
        return out, tuple(extensions)

    def extension(self, raw: Mapping[str, Any], path: str) -> ExtensionSpec | None:
        self.keys(raw, _EXTENSION_KEYS, path, required=("point", "name", "description"))
        point = self.text(raw, "point", path)
        if point is not None and point not in EXTENSION_POINTS:
            close = difflib.get_close_matches(point, EXTENSION_POINTS, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            self.add(f"{path}.point", f"unknown extension point '{point}' (expected one of: {_one_of(EXTENSION_POINTS)}){hint}")
            point = None
        name = self.text(raw, "name", path)
        if name is not None and not _EXTENSION_NAME.match(name):
            self.add(f"{path}.name", f"name '{name}' is not valid (lowercase letters, digits, '-' and '_', starting "
                                     "with a letter, at most 63 characters)")
            name = None
        description = self.text(raw, "description", path)
        fields: tuple[ConfigFieldSpec, ...] = ()
        if "config" in raw:
            config = self.table(raw, "config", path)
            if config is not None:
                self.keys(config, _CONFIG_KEYS, f"{path}.config")
                fields = self.config_fields(self.array(config, "fields", f"{path}.config"), f"{path}.config.fields")
        entities: list[str] = []
        if point == "record-validator":
            if "entities" not in raw:
                self.add(f"{path}.entities", "a record-validator must list the entities it validates")
            else:
                known = set(self.entities) | set(self.ctx.foreign_entity_specs)
                items = self.names(raw["entities"], f"{path}.entities", "entity names")
                if not items and isinstance(raw["entities"], list | tuple):
                    self.add(f"{path}.entities", "list at least one entity")
                for where, entity in items:
                    if entity not in known:
                        self.add(where, f"entity '{entity}' is neither this plugin's nor one of its dependencies' "
                                        f"(known: {_one_of(sorted(known)) or 'none'})")
                    else:
                        entities.append(entity)
        elif point is not None and "entities" in raw:
            self.add(f"{path}.entities", f"'entities' applies to record-validator extensions only, not {point}")
        if point is None or name is None or description is None:
            return None
        return ExtensionSpec(point=point, name=name, description=description, config_fields=fields,
                             entities=tuple(entities))

    def config_fields(self, items: list[Any], where: str) -> tuple[ConfigFieldSpec, ...]:
        """`[[config.fields]]` or an extension's config fields (the same field spec)."""
        out: list[ConfigFieldSpec] = []
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            path = _ix(where, i)
            if not isinstance(item, Mapping):
                self.add(path, f"expected a table, got {_kind(item)}")
                continue
            spec = self.config_field(item, path)
            if spec is None:
                continue
            if spec.key in seen:
                self.add(f"{path}.key", f"key '{spec.key}' is declared twice (first at {_ix(where, seen[spec.key])})")
                continue
            seen[spec.key] = i
            out.append(spec)
        return tuple(out)

    def config_field(self, raw: Mapping[str, Any], path: str) -> ConfigFieldSpec | None:
        self.keys(raw, _CONFIG_FIELD_KEYS, path, required=("key", "type"))
        key = self.text(raw, "key", path)
        if key is not None and not _NAME.match(key):
            self.add(f"{path}.key", f"key '{key}' is not valid (lowercase letters, digits and underscores, "
                                    "starting with a letter, at most 63 characters)")
            key = None
        ftype = self.text(raw, "type", path)
        if ftype is not None and ftype not in CONFIG_FIELD_TYPES:
            close = difflib.get_close_matches(ftype, CONFIG_FIELD_TYPES, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            self.add(f"{path}.type",
                     f"unknown type '{ftype}' (expected one of: {_one_of(CONFIG_FIELD_TYPES)}){hint}")
            ftype = None
        label = self.text(raw, "label", path)
        help_text = self.text(raw, "help", path)
        required = bool(self.flag(raw, "required", path))
        secret = bool(self.flag(raw, "secret", path))
        options: tuple[SelectOption, ...] = ()
        if ftype == "select":
            options = self.options(raw, path)
        elif ftype is not None and "options" in raw:
            self.add(f"{path}.options", f"'options' does not apply to {ftype} fields")
        if secret and ftype is not None and ftype not in SECRET_CONFIG_TYPES:
            self.add(f"{path}.secret", f"only {_one_of(SECRET_CONFIG_TYPES)} fields can be secret, not {ftype}")
        default: Any = None
        if "default" in raw:
            if secret:
                self.add(f"{path}.default", "a secret cannot have a default (it would be readable in plugin.toml)")
            elif ftype is not None:
                try:
                    default = config_value(ftype, raw["default"], (o.value for o in options))
                except ValueError as exc:
                    self.add(f"{path}.default", f"default is not a valid {ftype}: {exc}")
        if key is None or ftype is None:
            return None
        return ConfigFieldSpec(key=key, type=ftype, label=label or default_label(key), help=help_text,
                               required=required, default=default, secret=secret, options=options)


def _form_has_entries(form: Mapping[str, Any]) -> bool:
    """Whether a form lists any field at all (valid or not)."""
    loose = form.get("fields")
    if isinstance(loose, list | tuple) and loose:
        return True
    groups = form.get("groups")
    if not isinstance(groups, list | tuple):
        return False
    return any(
        isinstance(g, Mapping) and isinstance(g.get("fields"), list | tuple) and g["fields"] for g in groups
    )


def _has_temporal(value: Any) -> bool:
    if isinstance(value, dt.date | dt.time):
        return True
    if isinstance(value, Mapping):
        return any(_has_temporal(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_temporal(v) for v in value)
    return False
