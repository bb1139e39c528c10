"""``[events]``, ``[[config.fields]]`` and ``[[extensions]]`` (whose ``config`` uses the same field spec)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.core.validation import ix, kind, one_of, suggest
from app.manifest.model import (
    Capabilities,
    ConfigFieldSpec,
    EventsSpec,
    ExtensionSpec,
    SelectOption,
    default_label,
)
from app.manifest.reader import ManifestReader
from app.manifest.sections.entities import read_options
from app.manifest.values import config_value
from app.manifest.vocabulary import (
    CONFIG_FIELD_KEYS,
    CONFIG_FIELD_TYPES,
    CONFIG_KEYS,
    EVENT_NAME,
    EVENTS_KEYS,
    EXTENSION_KEYS,
    EXTENSION_NAME,
    EXTENSION_POINTS,
    NAME,
    SECRET_CONFIG_TYPES,
)


def read_events(r: ManifestReader, capabilities: Capabilities) -> EventsSpec:
    section = r.table(r.data, "events", "")
    if section is None:
        return EventsSpec()
    r.keys(section, EVENTS_KEYS, "events")
    lists: dict[str, tuple[str, ...]] = {}
    for key in EVENTS_KEYS:
        names: list[str] = []
        if key in section:
            for item_path, name in r.names(section[key], f"events.{key}", "event names"):
                if not EVENT_NAME.match(name):
                    r.add(
                        item_path,
                        f"event name '{name}' is not valid (two or three dot-separated parts, "
                        "e.g. 'inventory.stock.low' or 'workflow.completed')",
                    )
                elif key == "published" and "*" in name:
                    r.add(item_path, f"published event '{name}' cannot contain a wildcard")
                elif any("*" in part and part != "*" for part in name.split(".")):
                    r.add(
                        item_path,
                        f"'{name}': a wildcard must be a whole part ('*' stands for one "
                        "dot-separated part, e.g. 'crm.customer.*')",
                    )
                elif name in names:
                    r.add(item_path, f"event '{name}' is listed twice")
                else:
                    names.append(name)
        lists[key] = tuple(names)
    if (lists["published"] or lists["subscribed"]) and not capabilities.events:
        r.add(
            "permissions.events",
            "the plugin publishes or subscribes to events but does not request events = true",
        )
    return EventsSpec(published=lists["published"], subscribed=lists["subscribed"])


def read_config_and_extensions(
    r: ManifestReader,
) -> tuple[tuple[ConfigFieldSpec, ...], tuple[ExtensionSpec, ...]]:
    config = r.table(r.data, "config", "")
    out: tuple[ConfigFieldSpec, ...] = ()
    if config is not None:
        r.keys(config, CONFIG_KEYS, "config")
        out = read_config_fields(r, r.array(config, "fields", "config"), "config.fields")
    extensions: list[ExtensionSpec] = []
    names: dict[str, int] = {}
    for i, item in enumerate(r.array(r.data, "extensions", "")):
        path = ix("extensions", i)
        if not isinstance(item, Mapping):
            r.add(path, f"expected a table, got {kind(item)}")
            continue
        spec = read_extension(r, item, path)
        if spec is None:
            continue
        if spec.name in names:
            r.add(
                f"{path}.name",
                f"extension '{spec.name}' is declared twice (first at extensions[{names[spec.name]}])",
            )
            continue
        names[spec.name] = i
        extensions.append(spec)
    return out, tuple(extensions)


def read_extension(r: ManifestReader, raw: Mapping[str, Any], path: str) -> ExtensionSpec | None:
    r.keys(raw, EXTENSION_KEYS, path, required=("point", "name", "description"))
    point = r.text(raw, "point", path)
    if point is not None and point not in EXTENSION_POINTS:
        close = suggest(point, EXTENSION_POINTS)
        hint = f"; did you mean '{close}'?" if close else ""
        r.add(
            f"{path}.point",
            f"unknown extension point '{point}' (expected one of: {one_of(EXTENSION_POINTS)}){hint}",
        )
        point = None
    name = r.text(raw, "name", path)
    if name is not None and not EXTENSION_NAME.match(name):
        r.add(
            f"{path}.name",
            f"name '{name}' is not valid (lowercase letters, digits, '-' and '_', starting "
            "with a letter, at most 63 characters)",
        )
        name = None
    description = r.text(raw, "description", path)
    fields: tuple[ConfigFieldSpec, ...] = ()
    if "config" in raw:
        config = r.table(raw, "config", path)
        if config is not None:
            r.keys(config, CONFIG_KEYS, f"{path}.config")
            fields = read_config_fields(
                r, r.array(config, "fields", f"{path}.config"), f"{path}.config.fields"
            )
    entities: list[str] = []
    if point == "record-validator":
        if "entities" not in raw:
            r.add(f"{path}.entities", "a record-validator must list the entities it validates")
        else:
            known = set(r.entities) | set(r.ctx.foreign_entity_specs)
            items = r.names(raw["entities"], f"{path}.entities", "entity names")
            if not items and isinstance(raw["entities"], list | tuple):
                r.add(f"{path}.entities", "list at least one entity")
            for where, entity in items:
                if entity not in known:
                    r.add(
                        where,
                        f"entity '{entity}' is neither this plugin's nor one of its dependencies' "
                        f"(known: {one_of(sorted(known)) or 'none'})",
                    )
                else:
                    entities.append(entity)
    elif point is not None and "entities" in raw:
        r.add(f"{path}.entities", f"'entities' applies to record-validator extensions only, not {point}")
    if point is None or name is None or description is None:
        return None
    return ExtensionSpec(
        point=point, name=name, description=description, config_fields=fields, entities=tuple(entities)
    )


def read_config_fields(r: ManifestReader, items: list[Any], where: str) -> tuple[ConfigFieldSpec, ...]:
    """`[[config.fields]]` or an extension's config fields (the same field spec)."""
    out: list[ConfigFieldSpec] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        path = ix(where, i)
        if not isinstance(item, Mapping):
            r.add(path, f"expected a table, got {kind(item)}")
            continue
        spec = read_config_field(r, item, path)
        if spec is None:
            continue
        if spec.key in seen:
            r.add(f"{path}.key", f"key '{spec.key}' is declared twice (first at {ix(where, seen[spec.key])})")
            continue
        seen[spec.key] = i
        out.append(spec)
    return tuple(out)


def read_config_field(r: ManifestReader, raw: Mapping[str, Any], path: str) -> ConfigFieldSpec | None:
    r.keys(raw, CONFIG_FIELD_KEYS, path, required=("key", "type"))
    key = r.text(raw, "key", path)
    if key is not None and not NAME.match(key):
        r.add(
            f"{path}.key",
            f"key '{key}' is not valid (lowercase letters, digits and underscores, "
            "starting with a letter, at most 63 characters)",
        )
        key = None
    ftype = r.text(raw, "type", path)
    if ftype is not None and ftype not in CONFIG_FIELD_TYPES:
        close = suggest(ftype, CONFIG_FIELD_TYPES)
        hint = f"; did you mean '{close}'?" if close else ""
        r.add(f"{path}.type", f"unknown type '{ftype}' (expected one of: {one_of(CONFIG_FIELD_TYPES)}){hint}")
        ftype = None
    label = r.label(raw, "label", path)
    help_text = r.text(raw, "help", path)
    required = bool(r.flag(raw, "required", path))
    secret = bool(r.flag(raw, "secret", path))
    options: tuple[SelectOption, ...] = ()
    if ftype == "select":
        options = read_options(r, raw, path)
    elif ftype is not None and "options" in raw:
        r.add(f"{path}.options", f"'options' does not apply to {ftype} fields")
    if secret and ftype is not None and ftype not in SECRET_CONFIG_TYPES:
        r.add(f"{path}.secret", f"only {one_of(SECRET_CONFIG_TYPES)} fields can be secret, not {ftype}")
    default: Any = None
    if "default" in raw:
        if secret:
            r.add(f"{path}.default", "a secret cannot have a default (it would be readable in plugin.toml)")
        elif ftype is not None:
            try:
                default = config_value(ftype, raw["default"], (o.value for o in options))
            except ValueError as exc:
                r.add(f"{path}.default", f"default is not a valid {ftype}: {exc}")
    if key is None or ftype is None:
        return None
    return ConfigFieldSpec(
        key=key,
        type=ftype,
        label=label or default_label(key),
        help=help_text,
        required=required,
        default=default,
        secret=secret,
        options=options,
    )
