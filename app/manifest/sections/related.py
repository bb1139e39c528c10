"""``related`` on a crud page: which lists of referencing rows the record page shows, in what order and
how many. Without it every entity that references the page's entity gets a list with the defaults."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.core.i18n import N_, phrase
from app.core.validation import ix, kind, one_of
from app.manifest.model import EntitySpec, FieldSpec
from app.manifest.reader import ManifestReader
from app.manifest.vocabulary import RELATED_KEYS, RELATED_LIMIT, STANDARD_FIELDS

DEFAULT_LIMIT = 10
SORTABLE_STANDARD = ("created_at", "updated_at")


def references_to(child: EntitySpec, parent: str) -> list[FieldSpec]:
    """The reference fields of `child` that point at the entity called `parent`."""
    return [f for f in child.fields if f.type == "reference" and f.entity == parent]


def read_related(r: ManifestReader, value: Any, path: str, entity: EntitySpec) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list | tuple):
        r.add(path, N_("expected an array of related lists, got %(kind)s", kind=kind(value)))
        return ()
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for i, item in enumerate(value):
        item_path = ix(path, i)
        if not isinstance(item, Mapping):
            r.add(item_path, N_("expected a table with an entity, got %(kind)s", kind=kind(item)))
            continue
        r.keys(item, RELATED_KEYS, item_path, required=("entity",))
        read = _read_item(r, item, item_path, entity)
        if read is None:
            continue
        key = (read["entity"], read["field"])
        if key in seen:
            r.add(
                item_path,
                N_(
                    "the related list %(read)s.%(read2)s is listed twice",
                    read=read["entity"],
                    read2=read["field"],
                ),
            )
            continue
        seen.add(key)
        out.append(read)
    return tuple(out)


def _read_item(
    r: ManifestReader, item: Mapping[str, Any], path: str, parent: EntitySpec
) -> dict[str, Any] | None:
    name = r.text(item, "entity", path)
    label = r.label(item, "label", path)
    sort = r.text(item, "sort", path)
    limit = r.integer(item, "limit", path, 1, RELATED_LIMIT)
    hidden = r.flag(item, "hidden", path)
    field_name = r.text(item, "field", path)
    if name is None:
        return None
    child = r.entities.get(name) or r.ctx.foreign_entity_specs.get(name)
    if child is None:
        known = sorted({*r.entities, *r.ctx.foreign_entity_specs})
        r.add(
            f"{path}.entity",
            N_(
                "unknown entity '%(name)s' (known entities: %(value)s)",
                name=name,
                value=one_of(known) or phrase(N_("none")),
            ),
        )
        return None
    refs = references_to(child, parent.name)
    if not refs:
        r.add(
            f"{path}.entity",
            N_("entity '%(name)s' has no reference field to '%(name2)s'", name=name, name2=parent.name),
        )
        return None
    if field_name is None:
        if len(refs) > 1:
            names = one_of([f.name for f in refs])
            r.add(
                path,
                N_(
                    "entity '%(name)s' references '%(name2)s' in several fields (%(names)s): name the field",
                    name=name,
                    name2=parent.name,
                    names=names,
                ),
            )
            return None
        field_name = refs[0].name
    elif field_name not in {f.name for f in refs}:
        r.add(
            f"{path}.field",
            N_(
                "'%(field_name)s' is not a reference from '%(name)s' to '%(name2)s' (expected one of: %(choices)s)",
                field_name=field_name,
                name=name,
                name2=parent.name,
                choices=one_of([f.name for f in refs]),
            ),
        )
        return None
    if sort is not None and not _sortable(child, sort.removeprefix("-")):
        r.add(
            f"{path}.sort",
            N_(
                "cannot sort '%(name)s' by '%(removeprefix)s' (json, text or unknown)",
                name=name,
                removeprefix=sort.removeprefix("-"),
            ),
        )
        sort = None
    return {
        "entity": name,
        "field": field_name,
        "label": label,
        "sort": sort,
        "limit": limit or DEFAULT_LIMIT,
        "hidden": bool(hidden),
    }


def _sortable(child: EntitySpec, name: str) -> bool:
    if name in STANDARD_FIELDS:
        return name in SORTABLE_STANDARD
    return child.has_field(name) and child.field(name).sortable
