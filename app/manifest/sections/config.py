"""``[events]``, ``[[config.fields]]`` and ``[[extensions]]`` (whose ``config`` uses the same field spec)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.core.i18n import N_, phrase
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
            for item_path, name in r.names(section[key], f"events.{key}", phrase(N_("event names"))):
                if not EVENT_NAME.match(name):
                    r.add(
                        item_path,
                        N_(
                            "event name '%(name)s' is not valid (two or three dot-separated parts, e.g. 'inventory.stock.low' or 'workflow.completed')",
                            name=name,
                        ),
                    )
                elif key == "published" and "*" in name:
                    r.add(item_path, N_("published event '%(name)s' cannot contain a wildcard", name=name))
                elif any("*" in part and part != "*" for part in name.split(".")):
                    r.add(
                        item_path,
                        N_(
                            "'%(name)s': a wildcard must be a whole part ('*' stands for one dot-separated part, e.g. 'crm.customer.*')",
                            name=name,
                        ),
                    )
                elif name in names:
                    r.add(item_path, N_("event '%(name)s' is listed twice", name=name))
                else:
                    names.append(name)
        lists[key] = tuple(names)
    if (lists["published"] or lists["subscribed"]) and not capabilities.events:
        r.add(
            "permissions.events",
            N_("the plugin publishes or subscribes to events but does not request events = true"),
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
            r.add(path, N_("expected a table, got %(kind)s", kind=kind(item)))
            continue
        spec = read_extension(r, item, path)
        if spec is None:
            continue
        if spec.name in names:
            r.add(
                f"{path}.name",
                N_(
                    "extension '%(name)s' is declared twice (first at extensions[%(names)s])",
                    name=spec.name,
                    names=names[spec.name],
                ),
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
        hint = N_("; did you mean '%(close)s'?", close=close) if close else ""
        r.add(
            f"{path}.point",
            N_(
                "unknown extension point '%(point)s' (expected one of: %(choices)s)%(hint)s",
                point=point,
                choices=one_of(EXTENSION_POINTS),
                hint=hint,
            ),
        )
        point = None
    name = r.text(raw, "name", path)
    if name is not None and not EXTENSION_NAME.match(name):
        r.add(
            f"{path}.name",
            N_(
                "name '%(name)s' is not valid (lowercase letters, digits, '-' and '_', starting with a letter, at most 63 characters)",
                name=name,
            ),
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
            r.add(f"{path}.entities", N_("a record-validator must list the entities it validates"))
        else:
            known = set(r.entities) | set(r.ctx.foreign_entity_specs)
            items = r.names(raw["entities"], f"{path}.entities", phrase(N_("entity names")))
            if not items and isinstance(raw["entities"], list | tuple):
                r.add(f"{path}.entities", N_("list at least one entity"))
            for where, entity in items:
                if entity not in known:
                    r.add(
                        where,
                        N_(
                            "entity '%(entity)s' is neither this plugin's nor one of its dependencies' (known: %(value)s)",
                            entity=entity,
                            value=one_of(sorted(known)) or phrase(N_("none")),
                        ),
                    )
                else:
                    entities.append(entity)
    elif point is not None and "entities" in raw:
        r.add(
            f"{path}.entities",
            N_("'entities' applies to record-validator extensions only, not %(point)s", point=point),
        )
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
            r.add(path, N_("expected a table, got %(kind)s", kind=kind(item)))
            continue
        spec = read_config_field(r, item, path)
        if spec is None:
            continue
        if spec.key in seen:
            r.add(
                f"{path}.key",
                N_(
                    "key '%(key)s' is declared twice (first at %(ix)s)",
                    key=spec.key,
                    ix=ix(where, seen[spec.key]),
                ),
            )
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
            N_(
                "key '%(key)s' is not valid (lowercase letters, digits and underscores, starting with a letter, at most 63 characters)",
                key=key,
            ),
        )
        key = None
    ftype = r.text(raw, "type", path)
    if ftype is not None and ftype not in CONFIG_FIELD_TYPES:
        close = suggest(ftype, CONFIG_FIELD_TYPES)
        hint = N_("; did you mean '%(close)s'?", close=close) if close else ""
        r.add(
            f"{path}.type",
            N_(
                "unknown type '%(ftype)s' (expected one of: %(choices)s)%(hint)s",
                ftype=ftype,
                choices=one_of(CONFIG_FIELD_TYPES),
                hint=hint,
            ),
        )
        ftype = None
    label = r.label(raw, "label", path)
    help_text = r.label(raw, "help", path)
    required = bool(r.flag(raw, "required", path))
    secret = bool(r.flag(raw, "secret", path))
    options: tuple[SelectOption, ...] = ()
    if ftype == "select":
        options = read_options(r, raw, path)
    elif ftype is not None and "options" in raw:
        r.add(f"{path}.options", N_("'options' does not apply to %(ftype)s fields", ftype=ftype))
    if secret and ftype is not None and ftype not in SECRET_CONFIG_TYPES:
        r.add(
            f"{path}.secret",
            N_(
                "only %(choices)s fields can be secret, not %(ftype)s",
                choices=one_of(SECRET_CONFIG_TYPES),
                ftype=ftype,
            ),
        )
    default: Any = None
    if "default" in raw:
        if secret:
            r.add(
                f"{path}.default", N_("a secret cannot have a default (it would be readable in plugin.toml)")
            )
        elif ftype is not None:
            try:
                default = config_value(ftype, raw["default"], (o.value for o in options))
            except ValueError as exc:
                r.add(
                    f"{path}.default", N_("default is not a valid %(ftype)s: %(exc)s", ftype=ftype, exc=exc)
                )
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
