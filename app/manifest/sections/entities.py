"""``[[schema.entities]]``: entities, their fields (types, defaults, select options, references) and
indexes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.core.i18n import N_, phrase
from app.core.validation import ix, kind, one_of
from app.manifest.model import EntitySpec, FieldSpec, SelectOption, default_label
from app.manifest.reader import ManifestReader
from app.manifest.sections.children import check_children
from app.manifest.sections.computed import check_formulas, check_rollups, read_computed
from app.manifest.sections.files import read_file_keys
from app.manifest.values import field_default
from app.manifest.vocabulary import (
    DECIMAL_DEFAULT_PRECISION,
    DECIMAL_DEFAULT_SCALE,
    DECIMAL_MAX_PRECISION,
    ENTITY_KEYS,
    FIELD_KEYS,
    FIELD_TYPES,
    MAX_ENTITY_NAME_LENGTH,
    OPTION_KEYS,
    OWNER_STANDARD_FIELDS,
    RESERVED_ENTITY_NAMES,
    SCHEMA_KEYS,
    SEARCHABLE_TYPES,
    SELECT_VALUE_MAX_LENGTH,
    STANDARD_FIELDS,
    STRING_DEFAULT_LENGTH,
    STRING_MAX_LENGTH,
    TABLE_PREFIX,
    TYPE_SPECIFIC,
    UNIT_FIELD_TYPES,
)


def read_schema(r: ManifestReader) -> tuple[EntitySpec, ...]:
    section = r.table(r.data, "schema", "")
    if section is None:
        return ()
    r.keys(section, SCHEMA_KEYS, "schema")
    raw_entities = r.array(section, "entities", "schema")
    # Names first: references may point at entities declared further down.
    local_names = {
        e["name"] for e in raw_entities if isinstance(e, Mapping) and isinstance(e.get("name"), str)
    }
    specs: list[EntitySpec] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_entities):
        path = ix("schema.entities", i)
        if not isinstance(raw, Mapping):
            r.add(path, N_("expected a table, got %(kind)s", kind=kind(raw)))
            continue
        spec = read_entity(r, raw, path, local_names)
        if spec is None:
            continue
        if spec.name in seen:
            r.add(
                f"{path}.name",
                N_(
                    "entity '%(name)s' is declared twice (first at schema.entities[%(index)s])",
                    name=spec.name,
                    index=seen[spec.name],
                ),
            )
            continue
        seen[spec.name] = i
        specs.append(spec)
        r.entities[spec.name] = spec
    check_rollups(r, raw_entities, specs)
    check_children(r, raw_entities, specs)
    return tuple(specs)


def check_entity_name(r: ManifestReader, name: str, path: str) -> None:
    """The rules for an entity's name (it names the table ``plugin_<name>`` and the ``db.<name>.*``
    permissions); ``path`` is the name's own path (``schema.entities[0].name``)."""
    if not r.identifier(name, path, phrase(N_("entity"))):
        return
    if len(name) > MAX_ENTITY_NAME_LENGTH:
        r.add(
            path,
            N_(
                "entity name is %(length)s characters long (at most %(max_entity_name_length)s, so that '%(table_prefix)s%(name)s' fits in 63)",
                length=len(name),
                max_entity_name_length=MAX_ENTITY_NAME_LENGTH,
                table_prefix=TABLE_PREFIX,
                name=name,
            ),
        )
    if name in RESERVED_ENTITY_NAMES:
        r.add(
            path,
            N_(
                "entity name '%(name)s' is reserved: the host uses table '%(table_prefix)s%(name)s'",
                name=name,
                table_prefix=TABLE_PREFIX,
            ),
        )
    elif clash := r.ctx.entity_name_clash(name):
        r.add(path, clash)
    owner = r.ctx.foreign_entities.get(name)
    if owner is not None and owner != r.plugin_id:
        r.add(path, N_("entity '%(name)s' is already provided by plugin '%(owner)s'", name=name, owner=owner))


def read_entity(
    r: ManifestReader, raw: Mapping[str, Any], path: str, local_names: set[str]
) -> EntitySpec | None:
    r.keys(raw, ENTITY_KEYS, path, required=("name", "fields"))
    name = r.text(raw, "name", path)
    if name is None:
        return None
    check_entity_name(r, name, f"{path}.name")
    label = r.label(raw, "label", path) or default_label(name)

    fields: list[FieldSpec] = []
    seen: dict[str, int] = {}
    raw_fields = r.array(raw, "fields", path)
    if "fields" in raw and isinstance(raw["fields"], list | tuple) and not raw_fields:
        r.add(f"{path}.fields", N_("an entity needs at least one field"))
    for j, raw_field in enumerate(raw_fields):
        field_path = ix(f"{path}.fields", j)
        if not isinstance(raw_field, Mapping):
            r.add(field_path, N_("expected a table, got %(kind)s", kind=kind(raw_field)))
            continue
        spec = read_field(r, raw_field, field_path, local_names)
        if spec is None:
            continue
        if spec.name in seen:
            r.add(
                f"{field_path}.name",
                N_(
                    "field '%(name)s' is declared twice (first at fields[%(index)s])",
                    name=spec.name,
                    index=seen[spec.name],
                ),
            )
            continue
        seen[spec.name] = j
        fields.append(spec)
    by_name = {f.name: f for f in fields}
    check_formulas(r, path, raw_fields, fields)

    indexes = read_indexes(r, raw, path, by_name)

    owner_field = r.text(raw, "owner_field", path)
    if owner_field is not None:
        target = by_name.get(owner_field)
        if target is None and owner_field not in OWNER_STANDARD_FIELDS:
            r.add(f"{path}.owner_field", N_("unknown field '%(owner_field)s'", owner_field=owner_field))
            owner_field = None
        elif target is not None and target.type not in ("uuid", "reference"):
            r.add(
                f"{path}.owner_field",
                N_(
                    "owner field '%(owner_field)s' must be a uuid or reference field, not %(type)s",
                    owner_field=owner_field,
                    type=target.type,
                ),
            )

    unit_field = r.text(raw, "unit_field", path)
    if unit_field is not None:
        target = by_name.get(unit_field)
        if target is None:
            r.add(f"{path}.unit_field", N_("unknown field '%(unit_field)s'", unit_field=unit_field))
            unit_field = None
        elif target.type not in UNIT_FIELD_TYPES:
            r.add(
                f"{path}.unit_field",
                N_(
                    "unit field '%(unit_field)s' must be a %(unit_field_types)s field, not %(type)s",
                    unit_field=unit_field,
                    unit_field_types=" or ".join(UNIT_FIELD_TYPES),
                    type=target.type,
                ),
            )
            unit_field = None

    display_field = r.text(raw, "display_field", path)
    if display_field is not None:
        if display_field not in by_name and display_field not in STANDARD_FIELDS:
            r.add(
                f"{path}.display_field", N_("unknown field '%(display_field)s'", display_field=display_field)
            )
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


def read_indexes(
    r: ManifestReader, raw: Mapping[str, Any], path: str, fields: Mapping[str, FieldSpec]
) -> tuple[tuple[str, ...], ...]:
    out: list[tuple[str, ...]] = []
    for i, item in enumerate(r.array(raw, "indexes", path)):
        index_path = ix(f"{path}.indexes", i)
        if not isinstance(item, list | tuple):
            r.add(index_path, N_("expected an array of field names, got %(kind)s", kind=kind(item)))
            continue
        if not item:
            r.add(index_path, N_("an index needs at least one field"))
            continue
        columns: list[str] = []
        ok = True
        for col_path, column in r.names(item, index_path, phrase(N_("field names"))):
            known = fields.get(column)
            if known is None and column not in STANDARD_FIELDS:
                r.add(col_path, N_("unknown field '%(column)s'", column=column))
                ok = False
            elif known is not None and not known.sortable and known.type != "text":
                r.add(
                    col_path,
                    N_("%(type)s field '%(column)s' cannot be indexed", type=known.type, column=column),
                )
                ok = False
            elif column in columns:
                r.add(col_path, N_("field '%(column)s' appears twice in this index", column=column))
                ok = False
            columns.append(column)
        if len(columns) != len(item):
            ok = False
        key = tuple(columns)
        if ok and key in out:
            r.add(index_path, N_("duplicate index on (%(key)s)", key=", ".join(key)))
            continue
        if ok:
            out.append(key)
    return tuple(out)


def read_field(
    r: ManifestReader, raw: Mapping[str, Any], path: str, local_names: set[str]
) -> FieldSpec | None:
    r.keys(raw, FIELD_KEYS, path, required=("name", "type"))
    name = r.text(raw, "name", path)
    if name is None:
        return None
    if name in STANDARD_FIELDS:
        r.add(
            f"{path}.name",
            N_(
                "'%(name)s' is a standard field the host adds to every table (%(choices)s); choose another name",
                name=name,
                choices=one_of(STANDARD_FIELDS),
            ),
        )
    else:
        r.identifier(name, f"{path}.name", phrase(N_("field")))

    ftype = r.text(raw, "type", path) or ""
    if ftype and ftype not in FIELD_TYPES:
        r.add(
            f"{path}.type",
            N_(
                "unknown type '%(ftype)s' (expected one of: %(choices)s)",
                ftype=ftype,
                choices=one_of(FIELD_TYPES),
            ),
        )
        ftype = ""
    if ftype:
        for attr, types in TYPE_SPECIFIC.items():
            if attr in raw and ftype not in types:
                r.add(
                    f"{path}.{attr}",
                    N_("'%(attr)s' does not apply to %(ftype)s fields", attr=attr, ftype=ftype),
                )

    label = r.label(raw, "label", path) or default_label(name)
    help_text = r.label(raw, "help", path)
    required = bool(r.flag(raw, "required", path))
    unique = bool(r.flag(raw, "unique", path))
    if unique and ftype == "json":
        r.add(f"{path}.unique", N_("json fields cannot be unique"))
    explicit_nullable = r.flag(raw, "nullable", path)

    max_length: int | None = None
    precision: int | None = None
    scale: int | None = None
    options: tuple[SelectOption, ...] = ()
    target: str | None = None
    if ftype == "string":
        max_length = r.integer(raw, "max_length", path, 1, STRING_MAX_LENGTH) or STRING_DEFAULT_LENGTH
    elif ftype == "decimal":
        precision = r.integer(raw, "precision", path, 1, DECIMAL_MAX_PRECISION) or DECIMAL_DEFAULT_PRECISION
        scale_value = r.integer(raw, "scale", path, 0, DECIMAL_MAX_PRECISION)
        if scale_value is None:
            scale = min(DECIMAL_DEFAULT_SCALE, precision)
        elif scale_value > precision:
            r.add(
                f"{path}.scale",
                N_(
                    "scale %(scale_value)s is larger than precision %(precision)s",
                    scale_value=scale_value,
                    precision=precision,
                ),
            )
            scale = precision
        else:
            scale = scale_value
    elif ftype == "select":
        options = read_options(r, raw, path)
    elif ftype == "reference":
        target = read_reference(r, raw, path, local_names)

    searchable_flag = r.flag(raw, "searchable", path)
    if searchable_flag and ftype and ftype not in SEARCHABLE_TYPES:
        r.add(
            f"{path}.searchable",
            N_("only %(choices)s fields can be searchable", choices=one_of(SEARCHABLE_TYPES)),
        )
    searchable = searchable_flag if searchable_flag is not None else ftype in ("string", "text")

    default: Any = None
    if "default" in raw and ftype:
        default = field_default(
            r.issues, raw["default"], f"{path}.default", ftype, max_length, precision, scale, options
        )

    if required and explicit_nullable is True:
        r.add(
            f"{path}.nullable", N_("a required field cannot be nullable (required = true, nullable = true)")
        )
    if explicit_nullable is False and not required and "default" not in raw:
        r.add(f"{path}.nullable", N_("nullable = false needs required = true or a default"))
    nullable = explicit_nullable if explicit_nullable is not None else not required

    formula, rollup = read_computed(r, raw, path, ftype, required=required, unique=unique)
    accept, max_size, multiple = read_file_keys(r, raw, path, ftype)
    if accept or max_size:  # files: no plain value (read_file_keys reported the keys given)
        required = unique = searchable = False
        default, nullable = None, True

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
        formula=formula,
        rollup=rollup,
        accept=accept,
        max_size=max_size,
        multiple=multiple,
    )


def read_options(r: ManifestReader, raw: Mapping[str, Any], path: str) -> tuple[SelectOption, ...]:
    if "options" not in raw:
        r.add(f"{path}.options", N_("select fields need options"))
        return ()
    items = r.array(raw, "options", path)
    if not items and isinstance(raw["options"], list | tuple):
        r.add(f"{path}.options", N_("select fields need at least one option"))
    out: list[SelectOption] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        item_path = ix(f"{path}.options", i)
        value: str | None
        if isinstance(item, str):
            value, label = item, item
        elif isinstance(item, Mapping):
            r.keys(item, OPTION_KEYS, item_path, required=("value",))
            value = r.text(item, "value", item_path)
            if value is None:
                continue
            label = r.label(item, "label", item_path) or value
        else:
            r.add(item_path, N_("expected a string or a table {value, label}, got %(kind)s", kind=kind(item)))
            continue
        if not value.strip():
            r.add(item_path, N_("option value must not be empty"))
            continue
        if len(value) > SELECT_VALUE_MAX_LENGTH:
            r.add(
                item_path,
                N_(
                    "option value is longer than %(select_value_max_length)s characters",
                    select_value_max_length=SELECT_VALUE_MAX_LENGTH,
                ),
            )
            continue
        if value in seen:
            r.add(item_path, N_("option '%(value)s' is listed twice", value=value))
            continue
        seen.add(value)
        out.append(SelectOption(value, label))
    return tuple(out)


def read_reference(r: ManifestReader, raw: Mapping[str, Any], path: str, local_names: set[str]) -> str | None:
    if "entity" not in raw:
        r.add(f"{path}.entity", N_("reference fields need the name of the entity they point to"))
        return None
    target = r.text(raw, "entity", path)
    if target is None:
        return None
    if target not in local_names and target not in r.ctx.foreign_entity_specs:
        known = sorted(local_names | set(r.ctx.foreign_entity_specs))
        r.add(
            f"{path}.entity",
            N_(
                "unknown entity '%(target)s' (known: %(value)s)",
                target=target,
                value=one_of(known) or phrase(N_("none")),
            ),
        )
    return target
