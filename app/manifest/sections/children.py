"""``children`` of an entity: child rows edited with their parent (inline rows of the parent's form,
nested rows in the JSON and host APIs). Checked once every entity of the plugin is read: the child must
be one of them and reference the parent."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from app.core.validation import ix, kind, one_of
from app.manifest.model import ChildSpec, EntitySpec
from app.manifest.reader import ManifestReader
from app.manifest.sections.related import references_to
from app.manifest.vocabulary import CHILD_KEYS, STANDARD_FIELDS


def check_children(r: ManifestReader, raw_entities: Sequence[Any], specs: list[EntitySpec]) -> None:
    """Read each entity's ``children``; entities in `specs` and ``r.entities`` get the resolved sets."""
    for i, entity in enumerate(specs):
        path, raw = _raw_entity(raw_entities, entity.name)
        if raw is None or "children" not in raw:
            continue
        children = read_children(r, raw["children"], f"{path}.children", entity)
        specs[i] = dataclasses.replace(entity, children=children)
        r.entities[entity.name] = specs[i]


def read_children(r: ManifestReader, value: Any, path: str, parent: EntitySpec) -> tuple[ChildSpec, ...]:
    if not isinstance(value, list | tuple):
        r.add(path, f"expected an array of child sets {{name, entity, ...}}, got {kind(value)}")
        return ()
    out: list[ChildSpec] = []
    seen: dict[str, str] = {}
    for i, item in enumerate(value):
        item_path = ix(path, i)
        if not isinstance(item, Mapping):
            r.add(
                item_path, f"expected a table {{name, entity, via, order, fields, label}}, got {kind(item)}"
            )
            continue
        r.keys(item, CHILD_KEYS, item_path, required=("name", "entity"))
        child = _read_child(r, item, item_path, parent)
        if child is None:
            continue
        if child.name in seen:
            r.add(
                f"{item_path}.name",
                f"child set '{child.name}' is declared twice (first at {seen[child.name]})",
            )
            continue
        seen[child.name] = item_path
        out.append(child)
    return tuple(out)


def _read_child(
    r: ManifestReader, item: Mapping[str, Any], path: str, parent: EntitySpec
) -> ChildSpec | None:
    name = r.text(item, "name", path)
    entity_name = r.text(item, "entity", path)
    via = r.text(item, "via", path)
    order = r.text(item, "order", path)
    label = r.label(item, "label", path)
    ok = True
    if name is not None:
        if not r.identifier(name, f"{path}.name", "child set"):
            ok = False
        elif parent.has_field(name) or name in STANDARD_FIELDS:
            # The API's JSON carries the set next to the parent's fields: the key must be free.
            r.add(f"{path}.name", f"'{name}' is a field of '{parent.name}'; name the child set differently")
            ok = False
    if entity_name is None or name is None:
        return None
    child = r.entities.get(entity_name)
    if child is None:
        r.add(
            f"{path}.entity",
            f"unknown entity '{entity_name}' (this plugin's entities: {one_of(sorted(r.entities)) or 'none'})",
        )
        return None
    if child.name == parent.name:
        r.add(f"{path}.entity", f"'{parent.name}' cannot be a child of itself")
        return None
    refs = [f.name for f in references_to(child, parent.name)]
    if not refs:
        r.add(f"{path}.entity", f"entity '{child.name}' has no reference field to '{parent.name}'")
        return None
    if via is None:
        if len(refs) > 1:
            r.add(
                f"{path}.via",
                f"'{child.name}' references '{parent.name}' in several fields ({one_of(refs)}): name one",
            )
            return None
        via = refs[0]
    elif via not in refs:
        r.add(
            f"{path}.via",
            f"'{via}' is not a reference from '{child.name}' to '{parent.name}' (expected one of: {one_of(refs)})",
        )
        return None
    if order is not None:
        target = next((f for f in child.fields if f.name == order), None)
        if target is None or target.type != "integer" or target.computed or target.unique:
            if target is None:
                what = "unknown field"
            elif target.type != "integer":
                what = f"{target.type} field"
            else:
                what = "computed field" if target.computed else "unique field"
            r.add(
                f"{path}.order",
                f"the order field must be an integer field of '{child.name}' that people could type "
                f"({what} '{order}')",
            )
            ok = False
    fields = _read_fields(r, item, path, child, via, order)
    if fields is None or not ok:
        return None
    return ChildSpec(
        name=name, entity=child.name, via=via, label=label or child.label, fields=fields, order=order
    )


def _read_fields(
    r: ManifestReader, item: Mapping[str, Any], path: str, child: EntitySpec, via: str, order: str | None
) -> tuple[str, ...] | None:
    if "fields" not in item:
        return tuple(f.name for f in child.fields if f.name not in (via, order))
    out: list[str] = []
    ok = True
    for at, name in r.names(item["fields"], f"{path}.fields", "field names"):
        if not child.has_field(name):
            r.add(at, f"unknown field '{name}' in entity '{child.name}'")
            ok = False
        elif name == via:
            r.add(at, f"'{name}' is the reference to the parent: every row gets it from the parent")
            ok = False
        elif name == order:
            r.add(at, f"'{name}' is the order field: the rows' order sets it")
            ok = False
        elif name in out:
            r.add(at, f"field '{name}' is listed twice")
            ok = False
        else:
            out.append(name)
    if isinstance(item["fields"], list | tuple) and not item["fields"]:
        r.add(f"{path}.fields", "an inline row needs at least one field")
        return None
    missing = [
        f.name
        for f in child.fields
        if f.required and not f.has_default and f.name not in out and f.name not in (via, order)
    ]
    if ok and missing:
        r.add(
            f"{path}.fields",
            f"the rows leave out required field{'s' if len(missing) > 1 else ''} "
            f"{one_of(repr(m) for m in missing)} (rows could not be added)",
        )
        return None
    return tuple(out) if ok else None


def _raw_entity(raw_entities: Sequence[Any], name: str) -> tuple[str, Mapping[str, Any] | None]:
    for i, raw in enumerate(raw_entities):
        if isinstance(raw, Mapping) and raw.get("name") == name:
            return ix("schema.entities", i), raw
    return "", None
