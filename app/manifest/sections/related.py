"""``related`` on a crud page: which lists of referencing rows the record page shows, in what order and
how many. Without it every entity that references the page's entity gets a list with the defaults."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
        r.add(path, f"expected an array of related lists, got {kind(value)}")
        return ()
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for i, item in enumerate(value):
        item_path = ix(path, i)
        if not isinstance(item, Mapping):
            r.add(item_path, f"expected a table with an entity, got {kind(item)}")
            continue
        r.keys(item, RELATED_KEYS, item_path, required=("entity",))
        read = _read_item(r, item, item_path, entity)
        if read is None:
            continue
        key = (read["entity"], read["field"])
        if key in seen:
            r.add(item_path, f"the related list {read['entity']}.{read['field']} is listed twice")
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
        r.add(f"{path}.entity", f"unknown entity '{name}' (known entities: {one_of(known) or 'none'})")
        return None
    refs = references_to(child, parent.name)
    if not refs:
        r.add(f"{path}.entity", f"entity '{name}' has no reference field to '{parent.name}'")
        return None
    if field_name is None:
        if len(refs) > 1:
            names = one_of([f.name for f in refs])
            r.add(
                path,
                f"entity '{name}' references '{parent.name}' in several fields ({names}): name the field",
            )
            return None
        field_name = refs[0].name
    elif field_name not in {f.name for f in refs}:
        r.add(
            f"{path}.field",
            f"'{field_name}' is not a reference from '{name}' to '{parent.name}' "
            f"(expected one of: {one_of([f.name for f in refs])})",
        )
        return None
    if sort is not None and not _sortable(child, sort.removeprefix("-")):
        r.add(f"{path}.sort", f"cannot sort '{name}' by '{sort.removeprefix('-')}' (json, text or unknown)")
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
