"""Computed fields: ``formula`` (over the same row's numeric fields) and ``rollup`` (an aggregate over
child rows). Both are read-only to people and plugins; the record service keeps them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from app.core.i18n import N_, message_of, phrase
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
        r.add(path, N_("a field is either a formula or a rollup, not both"))
        return None, None
    what = phrase(N_("formula")) if formula is not None else phrase(N_("rollup"))
    for key, bad in (("required", required), ("unique", unique), ("default", "default" in raw)):
        if bad:
            r.add(
                f"{path}.{key}",
                N_("a %(what)s field is computed: it cannot be %(key)s (no default)", what=what, key=key)
                if key == "default"
                else N_("a %(what)s field is computed: it cannot be %(key)s", what=what, key=key),
            )
    if ftype not in NUMERIC:
        return None, None  # TYPE_SPECIFIC already reported it
    return formula, rollup


def _read_rollup(r: ManifestReader, value: Any, path: str) -> Rollup | None:
    if not isinstance(value, Mapping):
        r.add(path, N_("expected a table {entity, op, field, via}, got %(kind)s", kind=kind(value)))
        return None
    r.keys(value, ROLLUP_KEYS, path, required=("entity", "op"))
    entity = r.text(value, "entity", path)
    op = r.text(value, "op", path)
    field = r.text(value, "field", path)
    via = r.text(value, "via", path)
    if op is not None and op not in ROLLUP_OPS:
        r.add(
            f"{path}.op",
            N_("unknown rollup '%(op)s' (expected one of: %(choices)s)", op=op, choices=one_of(ROLLUP_OPS)),
        )
        return None
    if op == "count" and field is not None:
        r.add(f"{path}.field", N_("count counts rows: it takes no field"))
        return None
    if op not in (None, "count") and field is None:
        r.add(f"{path}.field", N_("%(op)s needs the child field to aggregate", op=op))
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
            r.add(at, message_of(exc))
    # A formula may read another formula's field, never (through others) its own.
    for name in reads:
        seen: set[str] = set()
        todo = list(reads[name])
        while todo:
            current = todo.pop()
            if current == name:
                r.add(
                    f"{_raw_path(path, raw_fields, name)}.formula",
                    N_("formula '%(name)s' depends on itself", name=name),
                )
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
            N_(
                "unknown entity '%(entity)s' (this plugin's entities: %(choices)s)",
                entity=rollup.entity,
                choices=one_of(sorted(r.entities)),
            ),
        )
        return None
    refs = [f.name for f in child.fields if f.type == "reference" and f.entity == parent.name]
    via = rollup.via
    if not refs:
        r.add(
            f"{at}.entity",
            N_("entity '%(name)s' has no reference field to '%(name2)s'", name=child.name, name2=parent.name),
        )
        return None
    if not via:
        if len(refs) > 1:
            r.add(
                f"{at}.via",
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
            f"{at}.via",
            N_(
                "'%(via)s' is not a reference from '%(name)s' to '%(name2)s' (expected one of: %(choices)s)",
                via=via,
                name=child.name,
                name2=parent.name,
                choices=one_of(refs),
            ),
        )
        return None
    if rollup.field is not None:
        target = next((f for f in child.fields if f.name == rollup.field), None)
        if target is None or target.type not in NUMERIC:
            what = phrase(N_("unknown field")) if target is None else N_("%(type)s field", type=target.type)
            r.add(
                f"{at}.field",
                N_(
                    "%(op)s needs an integer or decimal field of '%(name)s' (%(what)s '%(field)s')",
                    op=rollup.op,
                    name=child.name,
                    what=what,
                    field=rollup.field,
                ),
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
