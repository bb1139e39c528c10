"""The manifest's vocabulary: field, page, column and config types, extension points, limits, name
patterns and the keys each table of ``plugin.toml`` allows.

The parser (:mod:`app.manifest.sections`) checks manifests against these, and
:mod:`app.manifest.jsonschema` generates ``docs/plugin.schema.json`` from them, so adding a key or a type
starts here.
"""

from __future__ import annotations

import re

from app.core.i18n import N_, phrase

FIELD_TYPES: tuple[str, ...] = (
    "boolean",
    "date",
    "datetime",
    "decimal",
    "file",
    "image",
    "integer",
    "json",
    "reference",
    "select",
    "string",
    "text",
    "uuid",
)

#: Types of ``[[config.fields]]`` (plugin configuration values, not table columns).
CONFIG_FIELD_TYPES: tuple[str, ...] = (
    "string",
    "text",
    "integer",
    "decimal",
    "boolean",
    "select",
    "url",
    "email",
)
#: Config types that may be ``secret`` (stored encrypted, never shown back).
SECRET_CONFIG_TYPES: tuple[str, ...] = ("string", "text")
CONFIG_VALUE_MAX_LENGTH = 10_000

#: Field types holding uploaded files (app.records.files): their values are attachment lists the platform
#: keeps, never written as plain values.
FILE_FIELD_TYPES: tuple[str, ...] = ("file", "image")
#: Content types the host recognises from a file's first bytes (app.records.files.sniff): what
#: ``accept`` may name. ``image/*`` stands for the four image types, which are re-encoded.
IMAGE_CONTENT_TYPES: tuple[str, ...] = ("image/png", "image/jpeg", "image/gif", "image/webp")
FILE_CONTENT_TYPES: tuple[str, ...] = (
    *IMAGE_CONTENT_TYPES,
    "application/pdf",
    "application/zip",
    "application/gzip",
    "text/plain",
    "text/csv",
)
FILE_DEFAULT_MAX_SIZE = 10 * 1024 * 1024
FILE_MAX_SIZE = 50 * 1024 * 1024  # stored in the database: keep single values reasonable
FILE_MULTIPLE_MAX = 20  # files in one multiple field at most

#: Field types whose values the host never sorts, filters or groups by (long text, JSON documents,
#: files). :attr:`FieldSpec.sortable <app.manifest.model.FieldSpec.sortable>` and ``.filterable`` own
#: this rule.
UNORDERED_FIELD_TYPES: tuple[str, ...] = ("json", "text", *FILE_FIELD_TYPES)

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

#: What pages call the standard fields a manifest does not label (msgids: in the reader's language).
STANDARD_FIELD_LABELS: dict[str, str] = {
    "id": phrase(N_("Id")),
    "created_at": phrase(N_("Created")),
    "updated_at": phrase(N_("Updated")),
    "version": phrase(N_("Version")),
}

#: Standard fields that may serve as an entity's owner (they hold a user id).
OWNER_STANDARD_FIELDS: tuple[str, ...] = ("created_by", "updated_by")

#: Field types a unit field may have (a unit is compared with the member's unit, a string or uuid).
UNIT_FIELD_TYPES: tuple[str, ...] = ("string", "select", "uuid", "reference")

LIMIT_KEYS: tuple[str, ...] = (
    "deadline_ms",
    "fuel",
    "memory_mb",
    "output_bytes",
    "host_calls",
    "log_bytes",
    "notifications",
)

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

KEBAB_ID = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_IDENT = r"(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
SEMVER = re.compile(rf"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-({_IDENT}(?:\.{_IDENT})*))?$")
EVENT_NAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_*-]+){1,2}$")
PAGE_PATH = re.compile(r"^(/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+$")
_SEGMENT = r"[a-z0-9]+(?:[-_][a-z0-9]+)*"
UI_PERMISSION = re.compile(rf"^ui\.{_SEGMENT}(?:\.{_SEGMENT})+$")
DB_PERMISSION = re.compile(r"^db\.([a-z][a-z0-9_]*)\.([a-z]+)$")
ACTION_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
CONSTRAINT = re.compile(r"^\s*(>=)?\s*(\S+)\s*$")

# Allowed keys per table.
TOP_KEYS = (
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
PLUGIN_KEYS = ("id", "name", "version", "description", "author", "min_platform_version")
DEPENDENCY_KEYS = ("modules", "plugins")
PLUGIN_DEPENDENCY_KEYS = ("id", "version")
CAPABILITY_KEYS = ("database", "events", "config", "files", "messages")
SCHEMA_KEYS = ("entities",)
ENTITY_KEYS = ("name", "label", "fields", "indexes", "owner_field", "unit_field", "display_field", "children")
CHILD_KEYS = ("name", "entity", "via", "order", "fields", "label")
#: At most this many child rows of one set in one write (a form or a nested API body).
CHILD_ROWS_MAX = 500
FIELD_KEYS = (
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
    "formula",
    "rollup",
    "accept",
    "max_size",
    "multiple",
)
#: Field attributes that only make sense for some types.
TYPE_SPECIFIC: dict[str, tuple[str, ...]] = {
    "max_length": ("string",),
    "precision": ("decimal",),
    "scale": ("decimal",),
    "options": ("select",),
    "entity": ("reference",),
    "formula": ("integer", "decimal"),
    "rollup": ("integer", "decimal"),
    "accept": FILE_FIELD_TYPES,
    "max_size": FILE_FIELD_TYPES,
    "multiple": FILE_FIELD_TYPES,
}
ROLLUP_KEYS = ("entity", "via", "op", "field")
ROLLUP_OPS = ("sum", "count", "min", "max")
SEARCHABLE_TYPES = ("string", "text", "select")
OPTION_KEYS = ("value", "label")
EVENTS_KEYS = ("published", "subscribed")
UI_KEYS = ("pages", "permissions")
PAGE_KEYS = (
    "name",
    "path",
    "type",
    "entity",
    "icon",
    "menu_group",
    "columns",
    "filters",
    "actions",
    "form",
    "related",
    "board",
)
#: ``board = { field, card, limit, sort }`` on a crud page (app.manifest.sections.board).
BOARD_KEYS = ("field", "card", "limit", "sort")
BOARD_LIMIT = 100  # cards per column at most
BOARD_CARD_FIELDS = 6  # fields on a card at most
RELATED_KEYS = ("entity", "field", "label", "sort", "limit", "hidden")
RELATED_LIMIT = 100
COLUMN_KEYS = ("field", "label", "type", "width", "sortable", "hidden", "options")
COLUMN_OPTION_KEYS = ("value", "label", "color")
FILTER_KEYS = ("field", "label", "match")
#: How a text filter matches: case-insensitive substring (the default for string fields) or the whole value.
FILTER_MATCHES: tuple[str, ...] = ("contains", "exact")
#: Field types whose filters match text ("contains" unless the page says exact).
TEXT_FILTER_TYPES: tuple[str, ...] = ("string",)
ACTION_KEYS = ("name", "label", "permission")
FORM_KEYS = ("groups", "fields")
FORM_GROUP_KEYS = ("title", "fields")
FORM_FIELD_KEYS = ("field", "label", "help", "readonly")
UI_PERMISSION_KEYS = ("code", "description")
CONFIG_KEYS = ("fields",)
CONFIG_FIELD_KEYS = ("key", "type", "label", "help", "required", "default", "secret", "options")
EXTENSION_KEYS = ("point", "name", "description", "config", "entities")
#: Extension point types a plugin can implement (app.extensions; the contracts are in wit/plugin.wit).
EXTENSION_POINTS = ("condition", "user-selector", "record-validator", "auth-verifier")
EXTENSION_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
