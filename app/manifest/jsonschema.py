"""The JSON Schema (draft 2020-12) of ``plugin.toml``, generated from the manifest's vocabulary.

``python -m app.manifest.jsonschema > docs/plugin.schema.json`` writes the schema that editors use to
complete and check manifests (see docs/plugins.md); a unit test keeps the committed file equal to
:func:`plugin_schema`.

The key sets, types, enums and name patterns come from :mod:`app.manifest.vocabulary`: every object
here is built by :func:`_table`, which refuses a property list that differs from the vocabulary's
allowed keys, so a key added to the parser cannot be forgotten here. The schema is a structural
subset of the parser's checks: it cannot see the platform (available modules, installed plugins) or
cross-references (a column's field, a reference's entity); :func:`app.manifest.parse_manifest` stays
the authority.
"""

from __future__ import annotations

import json

from app.manifest import vocabulary as v
from app.manifest.labels import label_schema
from app.manifest.schema_parts import (
    Schema,
    _array,
    _enum,
    _flag,
    _identifier,
    _integer,
    _pattern,
    _string,
    _table,
    _text,
    _unanchored,
    _when,
    file_field_properties,
)

__all__ = ["plugin_schema", "render"]

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_label = label_schema  # a string or a table of translations (app.manifest.labels)


def _plugin() -> Schema:
    semver = _pattern(v.SEMVER)
    return _table(
        v.PLUGIN_KEYS,
        {
            "id": _string(
                "Unique on the platform; kebab-case (lowercase letters and digits in words joined by single "
                "hyphens, starting with a letter). Not the name of a base module.",
                pattern=_pattern(v.KEBAB_ID),
                maxLength=v.MAX_PLUGIN_ID_LENGTH,
            ),
            "name": _text("The plugin's name as people see it."),
            "version": _string(
                "Semantic version MAJOR.MINOR.PATCH[-prerelease]; an upgrade must increase it.",
                pattern=semver,
            ),
            "description": _string("What the plugin does."),
            "author": _string("Who wrote it."),
            "min_platform_version": _string(
                "The oldest platform version the plugin runs on.", pattern=semver
            ),
        },
        "The plugin's identity.",
        required=["id", "name", "version"],
    )


def _dependencies() -> Schema:
    plugin_id = _string("A plugin id.", pattern=_pattern(v.KEBAB_ID))
    constraint = _string(
        "A minimum version: '>=MAJOR.MINOR.PATCH' (or 'MAJOR.MINOR.PATCH'); '' or '*' for any.",
        pattern=rf"^\s*(?:\*|(?:>=)?\s*{_unanchored(v.SEMVER)})?\s*$",
    )
    return _table(
        v.DEPENDENCY_KEYS,
        {
            "modules": _array(
                _string("A base module id (auth, message, workflow, ...)."),
                "Base modules of the platform the plugin needs.",
                uniqueItems=True,
            ),
            "plugins": {
                "description": "Plugins this one needs installed: an array of ids or {id, version} tables, or "
                "a table of id = version constraint.",
                "oneOf": [
                    _array(
                        {
                            "oneOf": [
                                plugin_id,
                                _table(
                                    v.PLUGIN_DEPENDENCY_KEYS,
                                    {"id": plugin_id, "version": constraint},
                                    "A plugin and its minimum version.",
                                    required=["id"],
                                ),
                            ]
                        },
                        "Plugin ids or {id, version} tables.",
                    ),
                    {
                        "type": "object",
                        "description": "Plugin id = version constraint.",
                        "propertyNames": {"pattern": _pattern(v.KEBAB_ID)},
                        "additionalProperties": constraint,
                    },
                ],
            },
        },
        "What the plugin needs from the platform.",
    )


_CAPABILITIES = {
    "database": "The db-* host functions (records, as the acting user).",
    "events": "event-publish; needed to publish or subscribe to [events].",
    "config": "config-get: the tenant's active configuration.",
    "files": "Reserved.",
    "messages": 'notify: in-app notifications; needs the "message" base module in [dependencies] modules.',
}


def _capabilities() -> Schema:
    return _table(
        v.CAPABILITY_KEYS,
        {key: _flag(_CAPABILITIES[key]) for key in v.CAPABILITY_KEYS},
        "Capabilities: the host API groups the plugin's WebAssembly may call.",
    )


def _select_options() -> Schema:
    value = _string("The stored value.", pattern=r"\S", maxLength=v.SELECT_VALUE_MAX_LENGTH)
    return _array(
        {
            "oneOf": [
                value,
                _table(
                    v.OPTION_KEYS,
                    {"value": value, "label": _label("Shown instead of the value.")},
                    "An option.",
                    required=["value"],
                ),
            ]
        },
        "The allowed values: strings or {value, label} tables.",
        minItems=1,
    )


def _field() -> Schema:
    properties = {
        "name": _identifier(
            "The column name (lowercase identifier); not a standard field.", forbidden=v.STANDARD_FIELDS
        ),
        "type": _enum(v.FIELD_TYPES, "The field's type."),
        "label": _label("Shown in forms and lists; default: the name, title-cased."),
        "help": _label("Help text under the form input (or a table of translations)."),
        "required": _flag("A value is required."),
        "unique": _flag("Unique within a tenant (not for json fields)."),
        "nullable": _flag("Whether the column accepts null; default: not required."),
        "default": {
            "description": 'The default value, of the field\'s type ("today" for dates, "now" for datetimes).'
        },
        "max_length": _integer("string fields: the maximum length (default 255).", 1, v.STRING_MAX_LENGTH),
        "precision": _integer(
            "decimal fields: the total number of digits (default 18).", 1, v.DECIMAL_MAX_PRECISION
        ),
        "scale": _integer(
            "decimal fields: the digits after the point (default 2).", 0, v.DECIMAL_MAX_PRECISION
        ),
        "options": _select_options(),
        "entity": _string(
            "reference fields: the entity pointed to (this plugin's or a dependency's).",
            pattern=_pattern(v.NAME),
        ),
        "searchable": _flag(f"Included in the list search ({', '.join(v.SEARCHABLE_TYPES)} fields)."),
        "formula": _string(
            "integer/decimal fields: computed from this row's numeric fields, e.g. 'round(quantity * unit_price, 2)' "
            "(+ - * / %, comparisons, and/or/not, x if c else y, round, abs, min, max)."
        ),
        "rollup": _table(
            v.ROLLUP_KEYS,
            {
                "entity": _string("The child entity (this plugin's) that references this one."),
                "op": _enum(v.ROLLUP_OPS, "The aggregate over the child rows."),
                "field": _string("The child's integer/decimal field (not for count)."),
                "via": _string("The child's reference field to this entity (needed when it has several)."),
            },
            "integer/decimal fields: kept equal to an aggregate over the live child rows.",
            required=["entity", "op"],
        ),
        **file_field_properties(),
    }
    rules: list[Schema] = [
        {"if": {"required": [attr]}, "then": {"properties": {"type": {"enum": list(types)}}}}
        for attr, types in v.TYPE_SPECIFIC.items()
    ]
    rules += [
        {"if": _when("type", "select"), "then": {"required": ["options"]}},
        {"if": _when("type", "reference"), "then": {"required": ["entity"]}},
        {
            "if": _when("searchable", True),
            "then": {"properties": {"type": {"enum": list(v.SEARCHABLE_TYPES)}}},
        },
    ]
    return _table(
        v.FIELD_KEYS,
        properties,
        "A field: a column of the entity's table.",
        required=["name", "type"],
        allOf=rules,
    )


def _entity() -> Schema:
    field_name = _string("A field name.", pattern=_pattern(v.NAME))
    return _table(
        v.ENTITY_KEYS,
        {
            "name": _identifier(
                "The entity's name: its table is plugin_<name>, its permissions db.<name>.<operation>.",
                max_length=v.MAX_ENTITY_NAME_LENGTH,
                forbidden=v.RESERVED_ENTITY_NAMES,
            ),
            "label": _label("Shown in menus and titles; default: the name, title-cased."),
            "fields": _array({"$ref": "#/$defs/field"}, "The entity's fields.", minItems=1),
            "indexes": _array(
                _array(field_name, "The indexed fields, in order.", minItems=1),
                "Indexes (tenant_id is prepended).",
            ),
            "owner_field": _string(
                "The field holding the user who owns a row (a uuid or reference field, or created_by / "
                "updated_by); default created_by.",
                pattern=_pattern(v.NAME),
            ),
            "unit_field": _string(
                "The field naming a row's unit for `unit` data scopes (a string, select, uuid or reference field).",
                pattern=_pattern(v.NAME),
            ),
            "display_field": _string(
                "Shown for references to this entity; default: the first string field.",
                pattern=_pattern(v.NAME),
            ),
            "children": _array(
                _table(
                    v.CHILD_KEYS,
                    {
                        "name": _string(
                            "The set's key in the API's JSON and the form ('lines'); not a field name.",
                            pattern=_pattern(v.NAME),
                        ),
                        "entity": _string("The child entity (this plugin's) that references this one."),
                        "via": _string(
                            "The child's reference field to this entity (needed when it has several)."
                        ),
                        "order": _string(
                            "An integer field of the child keeping the rows' order; rows can then be reordered.",
                            pattern=_pattern(v.NAME),
                        ),
                        "fields": _array(
                            field_name,
                            "The child fields each inline row shows (computed ones read-only); default: all "
                            "but the reference and the order field.",
                        ),
                        "label": _label("The inline rows' heading; default: the child entity's label."),
                    },
                    "A child set: rows of another entity edited with this one, in one transaction.",
                    required=["name", "entity"],
                ),
                "Child rows the generated form edits inline and the APIs read and write nested.",
            ),
        },
        "An entity: a table with generated pages, API and permissions.",
        required=["name", "fields"],
    )


def _events() -> Schema:
    name = _string(
        "<plugin>.<entity>.<action> or <module>.<event>: two or three dot-separated parts.",
        pattern=_pattern(v.EVENT_NAME),
    )
    return _table(
        v.EVENTS_KEYS,
        {
            "published": _array(
                {**name, "not": {"pattern": r"\*"}},
                "Events the plugin publishes (no wildcards).",
                uniqueItems=True,
            ),
            "subscribed": _array(
                name, "Events delivered to the plugin; '*' stands for one whole part.", uniqueItems=True
            ),
        },
        "Events (needs events = true under [permissions]).",
    )


def _page() -> Schema:
    field_ref = _string("A field of the page's entity.")
    column = _table(
        v.COLUMN_KEYS,
        {
            "field": field_ref,
            "label": _label("The column header."),
            "type": _enum(v.COLUMN_TYPES, "How the values are shown."),
            "width": _integer("Width in pixels.", 1, 2000),
            "sortable": _flag(
                "Whether people may sort by it (default true; json and text fields never are)."
            ),
            "hidden": _flag("Leave the column out."),
            "options": _array(
                _table(
                    v.COLUMN_OPTION_KEYS,
                    {
                        "value": _text("A value."),
                        "label": _label("Shown instead."),
                        "color": _text("A color."),
                    },
                    "How one value is shown.",
                    required=["value"],
                ),
                "Labels and colors of values (status and select columns).",
            ),
        },
        "A list column.",
        required=["field"],
    )
    filter_ = _table(
        v.FILTER_KEYS,
        {
            "field": field_ref,
            "label": _label("The filter's label."),
            "match": _enum(
                v.FILTER_MATCHES,
                "string fields: contains (case-insensitive substring, the default) or exact (the whole value).",
            ),
        },
        "A list filter.",
        required=["field"],
    )
    action = _table(
        v.ACTION_KEYS,
        {
            "name": _string("The action's name.", pattern=_pattern(v.ACTION_NAME)),
            "label": _label("The button's label."),
            "permission": _string("A declared ui.* permission or db.<entity>.<operation>."),
        },
        "A custom action.",
        required=["name"],
    )
    form_field = {
        "oneOf": [
            field_ref,
            _table(
                v.FORM_FIELD_KEYS,
                {
                    "field": field_ref,
                    "label": _label("The input's label."),
                    "help": _label("Help text (or a table of translations)."),
                    "readonly": _flag("Shown but not editable."),
                },
                "A form field.",
                required=["field"],
            ),
        ]
    }
    form_fields = _array(form_field, "Fields: names or {field, label, help, readonly} tables.")
    form = _table(
        v.FORM_KEYS,
        {
            "groups": _array(
                _table(
                    v.FORM_GROUP_KEYS,
                    {"title": _label("The group's title."), "fields": form_fields},
                    "A group of fields.",
                    required=["fields"],
                ),
                "Groups of fields.",
            ),
            "fields": form_fields,
        },
        "The create/edit form; it must include every required field without a default.",
        anyOf=[{"required": ["groups"]}, {"required": ["fields"]}],
    )
    related = _table(
        v.RELATED_KEYS,
        {
            "entity": _string("An entity with a reference field to this page's entity."),
            "field": _string("That reference field (needed when the entity has several to this one)."),
            "label": _label("The list's heading (default: the entity's label)."),
            "sort": _string("A sortable field of the related entity, '-' first for descending."),
            "limit": {
                "type": "integer",
                "minimum": 1,
                "maximum": v.RELATED_LIMIT,
                "description": "Rows shown.",
            },
            "hidden": {"type": "boolean", "description": "Do not show this list."},
        },
        "A list of the rows that reference the record.",
        required=["entity"],
    )
    board = _table(
        v.BOARD_KEYS,
        {
            "field": _string("A select field of the page's entity: one column per option, one for empty."),
            "card": _array(
                field_ref,
                "Fields shown on each card (default: the entity's display field); created_at and "
                "updated_at may be shown too.",
                minItems=1,
                maxItems=v.BOARD_CARD_FIELDS,
                uniqueItems=True,
            ),
            "limit": {
                "type": "integer",
                "minimum": 1,
                "maximum": v.BOARD_LIMIT,
                "description": "Cards per column before 'Show more' (default 20).",
            },
            "sort": _string(
                "The cards' order: a sortable field, '-' first for descending (default -updated_at)."
            ),
        },
        "crud pages: a board (kanban) of the rows by a select field; moving a card sets the field.",
        required=["field"],
    )
    crud_only = ("columns", "filters", "actions", "form", "related", "board")
    return _table(
        v.PAGE_KEYS,
        {
            "name": _label("The page's title and menu entry."),
            "path": _string("The page's URL path, starting with '/'.", pattern=_pattern(v.PAGE_PATH)),
            "type": _enum(
                v.PAGE_TYPES, "crud: generated list and forms of an entity; dashboard; custom (WebAssembly)."
            ),
            "entity": _string("crud pages: the entity (this plugin's); dashboards: any known entity."),
            "icon": _text("An icon name."),
            "menu_group": _label("The menu group the page appears in."),
            "columns": _array({"oneOf": [field_ref, column]}, "crud pages: the list's columns."),
            "filters": _array(
                {"oneOf": [field_ref, filter_]}, "crud pages: the list's filters (not json fields)."
            ),
            "actions": _array(
                {"oneOf": [_enum(v.BUILTIN_ACTIONS, "A built-in action."), action]},
                "crud pages: built-in actions and custom {name, label, permission} ones.",
            ),
            "form": form,
            "related": _array(related, "crud pages: the record page's lists of rows that reference it."),
            "board": board,
        },
        "A page in the tenant's menu.",
        required=["name", "path", "type"],
        allOf=[
            {"if": _when("type", "crud"), "then": {"required": ["entity"]}},
            {
                "if": _when("type", [t for t in v.PAGE_TYPES if t != "crud"]),
                "then": {"properties": dict.fromkeys(crud_only, False)},
            },
        ],
    )


def _ui() -> Schema:
    permission = _table(
        v.UI_PERMISSION_KEYS,
        {
            "code": _string("ui.<plugin id>.<element>.", pattern=_pattern(v.UI_PERMISSION)),
            "description": _label("What the permission allows, for the role editor."),
        },
        "A permission the plugin's pages check.",
        required=["code", "description"],
    )
    return _table(
        v.UI_KEYS,
        {
            "pages": _array({"$ref": "#/$defs/page"}, "The plugin's pages."),
            "permissions": _array(permission, "Permissions for UI elements (ui.<plugin>.<element>)."),
        },
        "Pages and UI permissions.",
    )


def _config_field() -> Schema:
    return _table(
        v.CONFIG_FIELD_KEYS,
        {
            "key": _string("The setting's key (lowercase identifier).", pattern=_pattern(v.NAME)),
            "type": _enum(v.CONFIG_FIELD_TYPES, "The value's type."),
            "label": _label("Shown in the configuration form; default: the key, title-cased."),
            "help": _label("Help text (or a table of translations)."),
            "required": _flag("A value is required."),
            "default": {
                "type": ["string", "integer", "number", "boolean"],
                "description": "The value used when a configuration leaves the key out (never for secrets).",
            },
            "secret": _flag(
                f"Stored encrypted and never shown back ({', '.join(v.SECRET_CONFIG_TYPES)} fields)."
            ),
            "options": _select_options(),
        },
        "A setting tenant admins fill in.",
        required=["key", "type"],
        allOf=[
            {"if": _when("type", "select"), "then": {"required": ["options"]}},
            {
                "if": _when("secret", True),
                "then": {"properties": {"type": {"enum": list(v.SECRET_CONFIG_TYPES)}, "default": False}},
            },
        ],
    )


def _config_table(description: str) -> Schema:
    return _table(
        v.CONFIG_KEYS, {"fields": _array({"$ref": "#/$defs/configField"}, "The settings.")}, description
    )


def _extension() -> Schema:
    return _table(
        v.EXTENSION_KEYS,
        {
            "point": _enum(v.EXTENSION_POINTS, "The extension point implemented."),
            "name": _string("Unique in the plugin.", pattern=_pattern(v.EXTENSION_NAME)),
            "description": _text("What it does, for administrators."),
            "config": _config_table("The settings of each named configuration of this extension."),
            "entities": _array(
                _string("An entity name.", pattern=_pattern(v.NAME)),
                "record-validator only: the entities it validates.",
                minItems=1,
            ),
        },
        "An implementation of an extension point in the plugin's component.",
        required=["point", "name", "description"],
        allOf=[
            {
                "if": _when("point", "record-validator"),
                "then": {"required": ["entities"]},
                "else": {"properties": {"entities": False}},
            }
        ],
    )


def plugin_schema() -> Schema:
    """The JSON Schema of a ``plugin.toml`` (as a dict)."""
    top = _table(
        v.TOP_KEYS,
        {
            "plugin": _plugin(),
            "dependencies": _dependencies(),
            "permissions": _capabilities(),
            "schema": _table(
                v.SCHEMA_KEYS,
                {"entities": _array({"$ref": "#/$defs/entity"}, "The plugin's entities.")},
                "The plugin's data model.",
            ),
            "events": _events(),
            "ui": _ui(),
            "limits": _table(
                v.LIMIT_KEYS,
                {
                    key: _integer(f"Per-call limit: {key} (within the platform's maximum).", 1)
                    for key in v.LIMIT_KEYS
                },
                "Limits of each call into the plugin's WebAssembly (see docs/operators.md).",
            ),
            "config": _config_table("The plugin's configuration settings ([[config.fields]])."),
            "extensions": _array({"$ref": "#/$defs/extension"}, "Extension point implementations."),
        },
        "A Portal plugin manifest (plugin.toml). Generated by `python -m app.manifest.jsonschema`; the "
        "platform's parser also checks what a schema cannot (base modules, installed plugins, fields named "
        "by pages).",
        required=["plugin"],
    )
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "Portal plugin manifest (plugin.toml)",
        **top,
        "$defs": {
            "entity": _entity(),
            "field": _field(),
            "page": _page(),
            "configField": _config_field(),
            "extension": _extension(),
        },
    }


def render() -> str:
    """The schema as the text of ``docs/plugin.schema.json``."""
    return json.dumps(plugin_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(render(), end="")
