"""Computed fields: ``formula`` (over the same row's numeric fields) and ``rollup`` (an aggregate over
child rows). Both are read-only to people and plugins; the record service keeps them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from app.core.validation import ix, kind, one_of
from app.manifest.formula import FormulaError, compile_formula
from app.manifest.model import EntitySpec, FieldSpec, Rollup
from app.manifest.reader import ManifestReader
from app.manifest.vocabulary import ROLLUP_KEYS, ROLLUP_OPS

NUMERIC = ("integer", "decimal")


def read_computed(
    r: ManifestReader, raw: Mapping[str, Any], path: str, ftype: str, *, required: bool, unique: bool
) -> tuple[str | None, Rollup | None]:
    """The field's own ``formula``/``rollup`` keys (what they refer to is checked once all are read)."""
    formula = r.text(raw, "formula", path)
    rollup = _read_rollup(r, raw["rollup"], f"{path}.rollup") if "rollup" in raw else None
    if formula is None and rollup is None:
        return None, None
    if formula is not None and rollup is not None:
        r.add(path, "a field is either a formula or a rollup, not both")
        return None, None
    what = "formula" if formula is not None else "rollup"
    for key, bad in (("required", required), ("unique", unique), ("default", "default" in raw)):
        if bad:
            r.add(
                f"{path}.{key}",
                f"a {what} field is computed: it cannot be {key}"
                + (" (no default)" if key == "default" else ""),
            )
    if ftype not in NUMERIC:
        return None, None  # TYPE_SPECIFIC already reported it
    return formula, rollup


def _read_rollup(r: ManifestReader, value: Any, path: str) -> Rollup | None:
    if not isinstance(value, Mapping):
        r.add(path, f"expected a table {{entity, op, field, via}}, got {kind(value)}")
        return None
    r.keys(value, ROLLUP_KEYS, path, required=("entity", "op"))
    entity = r.text(value, "entity", path)
    op = r.text(value, "op", path)
    field = r.text(value, "field", path)
    via = r.text(value, "via", path)
    if op is not None and op not in ROLLUP_OPS:
        r.add(f"{path}.op", f"unknown rollup '{op}' (expected one of: {one_of(ROLLUP_OPS)})")
        return None
    if op == "count" and field is not None:
        r.add(f"{path}.field", "count counts rows: it takes no field")
        return None
    if op not in (None, "count") and field is None:
        r.add(f"{path}.field", f"{op} needs the child field to aggregate")
        return None
    if entity is None or op is None:
        return None
    return Rollup(entity, via or "", op, field)


def check_formulas(r: ManifestReader, path: str, raw_fields: Sequence[Any], fields: list[FieldSpec]) -> None:
    """Each formula compiles over the entity's numeric fields, and formulas do not depend on each other
    in a circle."""
    numeric = {f.name for f in fields if f.type in NUMERIC}
    reads: dict[str, frozenset[str]] = {}
    for f in fields:
        if f.formula is None:
            continue
        at = f"{_raw_path(path, raw_fields, f.name)}.formula"
        try:
            reads[f.name] = compile_formula(f.formula, numeric - {f.name}).names
        except FormulaError as exc:
            r.add(at, str(exc))
    # A formula may read another formula's field, never (through others) its own.
    for name in reads:
        seen: set[str] = set()
        todo = list(reads[name])
        while todo:
            current = todo.pop()
            if current == name:
                r.add(f"{_raw_path(path, raw_fields, name)}.formula", f"formula '{name}' depends on itself")
                break
            if current not in seen:
                seen.add(current)
                todo.extend(reads.get(current, ()))


def check_rollups(r: ManifestReader, raw_entities: Sequence[Any], specs: list[EntitySpec]) -> None:
    """Each rollup names an entity of this plugin that references this one (filling in ``via``) and a
    numeric child field; entities in `specs` and ``r.entities`` are replaced with the resolved fields."""
    for i, entity in enumerate(specs):
        if not any(f.rollup for f in entity.fields):
            continue
        path = _entity_path(raw_entities, entity.name)
        raw_fields = raw_entities[_index(path)].get("fields", ()) if path else ()
        fields = []
        for f in entity.fields:
            if f.rollup is not None:
                at = f"{_raw_path(f'{path}.fields', raw_fields, f.name)}.rollup" if path else f.name
                rollup = _resolve(r, at, entity, f.rollup)
                f = dataclasses.replace(f, rollup=rollup)
            fields.append(f)
        specs[i] = dataclasses.replace(entity, fields=tuple(fields))
        r.entities[entity.name] = specs[i]


def _resolve(r: ManifestReader, at: str, parent: EntitySpec, rollup: Rollup) -> Rollup | None:
    child = r.entities.get(rollup.entity)
    if child is None:
        r.add(
            f"{at}.entity",
            f"unknown entity '{rollup.entity}' (this plugin's entities: {one_of(sorted(r.entities))})",
        )
        return None
    refs = [f.name for f in child.fields if f.type == "reference" and f.entity == parent.name]
    via = rollup.via
    if not refs:
        r.add(f"{at}.entity", f"entity '{child.name}' has no reference field to '{parent.name}'")
        return None
    if not via:
        if len(refs) > 1:
            r.add(
                f"{at}.via",
                f"'{child.name}' references '{parent.name}' in several fields ({one_of(refs)}): name one",
            )
            return None
        via = refs[0]
    elif via not in refs:
        r.add(
            f"{at}.via",
            f"'{via}' is not a reference from '{child.name}' to '{parent.name}' (expected one of: {one_of(refs)})",
        )
        return None
    if rollup.field is not None:
        target = next((f for f in child.fields if f.name == rollup.field), None)
        if target is None or target.type not in NUMERIC:
            what = "unknown field" if target is None else f"{target.type} field"
            r.add(
                f"{at}.field",
                f"{rollup.op} needs an integer or decimal field of '{child.name}' ({what} '{rollup.field}')",
            )
            return None
    return dataclasses.replace(rollup, via=via)


def _raw_path(path: str, raw_fields: Sequence[Any], name: str) -> str:
    for j, raw in enumerate(raw_fields):
        if isinstance(raw, Mapping) and raw.get("name") == name:
            return ix(path if path.endswith(".fields") else f"{path}.fields", j)
    return path


def _entity_path(raw_entities: Sequence[Any], name: str) -> str | None:
    for i, raw in enumerate(raw_entities):
        if isinstance(raw, Mapping) and raw.get("name") == name:
            return ix("schema.entities", i)
    return None


def _index(path: str) -> int:
    return int(path.rsplit("[", 1)[1].rstrip("]"))
