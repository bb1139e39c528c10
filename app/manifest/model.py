"""The parsed manifest: frozen dataclasses that the rest of the platform reads.

:func:`app.manifest.parse_manifest` builds them, with every value checked and normalised (defaults filled
in), so readers never see raw TOML.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.manifest.vocabulary import (
    DB_OPERATIONS,
    FILE_FIELD_TYPES,
    STANDARD_FIELDS,
    TABLE_PREFIX,
    UNORDERED_FIELD_TYPES,
)


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
class Rollup:
    """A parent field kept equal to an aggregate over its child rows (``op`` of the child's ``field``
    over the live rows of ``entity`` whose reference ``via`` points at the parent)."""

    entity: str
    via: str
    op: str  # sum | count | min | max
    field: str | None = None  # None for count


@dataclass(frozen=True)
class ChildSpec:
    """Child rows edited with their parent (an entity's ``children``): the parent's generated form shows
    them as inline rows, the JSON API and the host API read (``expand``) and write them nested under
    ``name``, all in the parent's transaction."""

    name: str  # the key in the API's JSON and the form (``lines``)
    entity: str  # the child entity (this plugin's)
    via: str  # the child's reference field to the parent
    label: str  # the inline table's heading (default: the child entity's label)
    fields: tuple[str, ...]  # the child fields each inline row edits or shows, in order
    order: str | None = None  # an integer field of the child keeping the rows' order (1, 2, ...)


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
    formula: str | None = None  # a row formula over this entity's numeric fields (app.manifest.formula)
    rollup: Rollup | None = None
    #: file/image fields: the content types allowed (() = any the host recognises), the size limit in
    #: bytes, and whether the field holds several files
    accept: tuple[str, ...] = ()
    max_size: int | None = None
    multiple: bool = False

    @property
    def is_file(self) -> bool:
        """A file or image field: its value is the list of its attachments (app.records.files)."""
        return self.type in FILE_FIELD_TYPES

    @property
    def computed(self) -> bool:
        """Kept by the platform (formula, rollup, or a file field's attachment list): never written
        as a plain value by forms and the API."""
        return self.formula is not None or self.rollup is not None or self.is_file

    @property
    def has_default(self) -> bool:
        return self.default is not None

    @property
    def sortable(self) -> bool:
        """Whether lists may be sorted (and grouped) by this field: not json, text or files."""
        return self.type not in UNORDERED_FIELD_TYPES

    @property
    def filterable(self) -> bool:
        """Whether lists may be filtered on this field: not json, text or files."""
        return self.type not in UNORDERED_FIELD_TYPES

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
    #: Child rows edited with this entity (``children``), in the manifest's order.
    children: tuple[ChildSpec, ...] = ()

    def child(self, name: str) -> ChildSpec | None:
        """The child set called ``name`` (``lines``), or None."""
        return next((c for c in self.children if c.name == name), None)

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

    @property
    def has_computed(self) -> bool:
        """Whether any field is a formula or a rollup (the record service then keeps them)."""
        return any(f.computed for f in self.fields)

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
    #: crud pages: how the record page lists rows of other entities that reference it
    #: ({entity, field, label, sort, limit, hidden}); ``None``: every such list, defaults.
    related: tuple[dict[str, Any], ...] | None = None
    #: crud pages: a board of the rows by a select field ({field, card, limit, sort}); ``None``: no board.
    board: dict[str, Any] | None = None


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
