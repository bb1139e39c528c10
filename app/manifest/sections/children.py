"""``children`` of an entity: child rows edited with their parent (inline rows of the parent's form,
nested rows in the JSON and host APIs). Checked once every entity of the plugin is read: the child must
be one of them and reference the parent."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from app.core.i18n import N_, phrase
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
        r.add(path, N_("expected an array of child sets {name, entity, ...}, got %(kind)s", kind=kind(value)))
        return ()
    out: list[ChildSpec] = []
    seen: dict[str, str] = {}
    for i, item in enumerate(value):
        item_path = ix(path, i)
        if not isinstance(item, Mapping):
            r.add(
                item_path,
                N_(
                    "expected a table {name, entity, via, order, fields, label}, got %(kind)s",
                    kind=kind(item),
                ),
            )
            continue
        r.keys(item, CHILD_KEYS, item_path, required=("name", "entity"))
        child = _read_child(r, item, item_path, parent)
        if child is None:
            continue
        if child.name in seen:
            r.add(
                f"{item_path}.name",
                N_(
                    "child set '%(name)s' is declared twice (first at %(index)s)",
                    name=child.name,
                    index=seen[child.name],
                ),
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
        if not r.identifier(name, f"{path}.name", phrase(N_("child set"))):
            ok = False
        elif parent.has_field(name) or name in STANDARD_FIELDS:
            # The API's JSON carries the set next to the parent's fields: the key must be free.
            r.add(
                f"{path}.name",
                N_(
                    "'%(name)s' is a field of '%(name2)s'; name the child set differently",
                    name=name,
                    name2=parent.name,
                ),
            )
            ok = False
    if entity_name is None or name is None:
        return None
    child = r.entities.get(entity_name)
    if child is None:
        r.add(
            f"{path}.entity",
            N_(
                "unknown entity '%(entity_name)s' (this plugin's entities: %(value)s)",
                entity_name=entity_name,
                value=one_of(sorted(r.entities)) or phrase(N_("none")),
            ),
        )
        return None
    if child.name == parent.name:
        r.add(f"{path}.entity", N_("'%(name)s' cannot be a child of itself", name=parent.name))
        return None
    refs = [f.name for f in references_to(child, parent.name)]
    if not refs:
        r.add(
            f"{path}.entity",
            N_("entity '%(name)s' has no reference field to '%(name2)s'", name=child.name, name2=parent.name),
        )
        return None
    if via is None:
        if len(refs) > 1:
            r.add(
                f"{path}.via",
                N_(
                    "'%(name)s' references '%(name2)s' in several fields (%(choices)s): name one",
                    name=child.name,
                    name2=parent.name,
                    choices=one_of(refs),
                ),
            )
            return None
        via = refs[0]
    elif via not in refs:
        r.add(
            f"{path}.via",
            N_(
                "'%(via)s' is not a reference from '%(name)s' to '%(name2)s' (expected one of: %(choices)s)",
                via=via,
                name=child.name,
                name2=parent.name,
                choices=one_of(refs),
            ),
        )
        return None
    if order is not None:
        target = next((f for f in child.fields if f.name == order), None)
        if target is None or target.type != "integer" or target.computed or target.unique:
            if target is None:
                what: str = phrase(N_("unknown field"))
            elif target.type != "integer":
                what = N_("%(type)s field", type=target.type)
            else:
                what = phrase(N_("computed field")) if target.computed else phrase(N_("unique field"))
            r.add(
                f"{path}.order",
                N_(
                    "the order field must be an integer field of '%(name)s' that people could type (%(what)s '%(order)s')",
                    name=child.name,
                    what=what,
                    order=order,
                ),
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
    for at, name in r.names(item["fields"], f"{path}.fields", phrase(N_("field names"))):
        if not child.has_field(name):
            r.add(at, N_("unknown field '%(name)s' in entity '%(name2)s'", name=name, name2=child.name))
            ok = False
        elif name == via:
            r.add(
                at,
                N_("'%(name)s' is the reference to the parent: every row gets it from the parent", name=name),
            )
            ok = False
        elif name == order:
            r.add(at, N_("'%(name)s' is the order field: the rows' order sets it", name=name))
            ok = False
        elif name in out:
            r.add(at, N_("field '%(name)s' is listed twice", name=name))
            ok = False
        else:
            out.append(name)
    if isinstance(item["fields"], list | tuple) and not item["fields"]:
        r.add(f"{path}.fields", N_("an inline row needs at least one field"))
        return None
    missing = [
        f.name
        for f in child.fields
        if f.required and not f.has_default and f.name not in out and f.name not in (via, order)
    ]
    if ok and missing:
        r.add(
            f"{path}.fields",
            (
                N_(
                    "the rows leave out required fields %(choices)s (rows could not be added)",
                    choices=one_of(repr(m) for m in missing),
                )
                if len(missing) > 1
                else N_(
                    "the rows leave out required field %(choices)s (rows could not be added)",
                    choices=one_of(repr(m) for m in missing),
                )
            ),
        )
        return None
    return tuple(out) if ok else None


def _raw_entity(raw_entities: Sequence[Any], name: str) -> tuple[str, Mapping[str, Any] | None]:
    for i, raw in enumerate(raw_entities):
        if isinstance(raw, Mapping) and raw.get("name") == name:
            return ix("schema.entities", i), raw
    return "", None
