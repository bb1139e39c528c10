"""Computed fields, kept by the record service in the transaction of the write that changes them.

- Row formulas (`formula = "quantity * unit_price"`) are evaluated on every insert and update, in the
  order their dependencies need, and stored like typed values (rounded to the field's scale).
- Rollups (`rollup = { entity = "line", op = "sum", field = "amount" }`) are recomputed whenever a
  child row is inserted, changed, moved to another parent, deleted or restored: the parent row is
  locked first (`SELECT … FOR UPDATE`), then the aggregate is read in a new statement, so concurrent
  child writes queue on the parent and each sees the others' committed rows (no lost update under
  PostgreSQL's read committed; SQLite serialises writers anyway). Then the parent's formulas that read
  a rollup are evaluated again.

Rollup maintenance changes derived values only: it does not bump the parent's version (an open edit form
of the parent stays valid), nor write audit rows or events of its own.
"""

from __future__ import annotations

import decimal
import functools
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from app.manifest import EntitySpec, FieldSpec
from app.manifest.formula import Formula, compile_formula

if TYPE_CHECKING:
    from app.plugins.runtime import EntityRef
    from app.records.service import RecordService

NUMERIC = ("integer", "decimal")


@functools.lru_cache(maxsize=512)
def _compiled(source: str, fields: frozenset[str]) -> Formula:
    return compile_formula(source, fields)  # checked when the manifest was parsed


def formulas(spec: EntitySpec) -> list[tuple[FieldSpec, Formula]]:
    """The entity's formula fields in evaluation order (a formula after those it reads)."""
    numeric = frozenset(f.name for f in spec.fields if f.type in NUMERIC)
    pending = {f.name: (f, _compiled(f.formula, numeric - {f.name})) for f in spec.fields if f.formula}
    ordered: list[tuple[FieldSpec, Formula]] = []
    while pending:
        ready = [n for n, (_, fx) in pending.items() if not (fx.names & pending.keys())]
        for name in ready or list(pending):  # no cycles (the manifest refuses them); never loop forever
            ordered.append(pending.pop(name))
    return ordered


def stored(spec: FieldSpec, value: Decimal | None) -> int | Decimal | None:
    """A computed value as the column holds it: integers truncated toward zero, decimals at their scale."""
    if value is None:
        return None
    if spec.type == "integer":
        return int(value)
    scale = spec.scale if spec.scale is not None else 2
    try:
        return value.quantize(Decimal(1).scaleb(-scale), rounding=decimal.ROUND_HALF_UP)
    except decimal.InvalidOperation:
        return None


def evaluate(spec: EntitySpec, row: Mapping[str, Any]) -> dict[str, Any]:
    """The formula fields' values for `row` (later formulas see earlier results)."""
    current = dict(row)
    out: dict[str, Any] = {}
    for fspec, formula in formulas(spec):
        out[fspec.name] = current[fspec.name] = stored(fspec, formula(current))
    return out


def initial_rollups(spec: EntitySpec) -> dict[str, Any]:
    """A new parent has no children: counts and sums are 0, min and max empty."""
    return {
        f.name: (0 if f.rollup.op in ("count", "sum") else None) for f in spec.fields if f.rollup is not None
    }


async def refresh_parents(
    svc: RecordService, child: EntityRef, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> None:
    """Recompute the rollups over `child` of every parent row the write touched (old and new parent)."""
    parents = await _parents_of(svc, child)
    for parent, fields in parents:
        groups: dict[str, list[FieldSpec]] = {}
        for f in fields:
            groups.setdefault(f.rollup.via, []).append(f)  # type: ignore[union-attr]
        for via, group in groups.items():
            ids = {row.get(via) for row in (before, after) if row is not None} - {None}
            for parent_id in sorted(ids, key=str):  # a fixed order: two movers never lock crosswise
                await _refresh(svc, parent, child, via, group, parent_id)


async def _parents_of(svc: RecordService, child: EntityRef) -> list[tuple[EntityRef, list[FieldSpec]]]:
    from app.plugins import runtime

    out = []
    for plugin in await runtime.enabled_for(svc.db, svc.tenant_id):
        if plugin.id != child.plugin_id:
            continue  # rollups name entities of their own plugin
        for ref in plugin.entities.values():
            fields = [f for f in ref.spec.fields if f.rollup is not None and f.rollup.entity == child.name]
            if fields:
                out.append((ref, fields))
    return out


async def _refresh(
    svc: RecordService, parent: EntityRef, child: EntityRef, via: str, fields: list[FieldSpec], parent_id: Any
) -> None:
    p, c = parent.table, child.table
    pid = parent_id if isinstance(parent_id, uuid.UUID) else uuid.UUID(str(parent_id))
    # 1. Lock the parent: concurrent child writes of the same parent wait here for each other.
    locked = (
        await svc.db.execute(
            sa.select(p).where(p.c.id == pid, p.c.tenant_id == svc.tenant_id).with_for_update()
        )
    ).first()
    if locked is None:
        return
    # 2. A new statement, so it sees every child write committed before the lock was granted.
    aggregates: list[sa.ColumnElement[Any]] = []
    for f in fields:
        rollup = f.rollup
        assert rollup is not None
        if rollup.op == "count":
            aggregates.append(sa.func.count(c.c.id))
        else:
            column = c.c[rollup.field or ""]
            agg = getattr(sa.func, rollup.op)(column)
            aggregates.append(sa.func.coalesce(agg, 0) if rollup.op == "sum" else agg)
    values = (
        await svc.db.execute(
            sa.select(*aggregates).where(
                c.c[via] == pid, c.c.tenant_id == svc.tenant_id, c.c.deleted_at.is_(None)
            )
        )
    ).one()
    changes = {
        f.name: stored(f, None if v is None else Decimal(str(v))) for f, v in zip(fields, values, strict=True)
    }
    # 3. The parent's formulas may read a rollup (a total with tax).
    changes |= evaluate(parent.spec, {**locked._mapping, **changes})
    current = dict(locked._mapping)
    if all(current.get(k) == v for k, v in changes.items()):
        return
    await svc.db.execute(sa.update(p).where(p.c.id == pid, p.c.tenant_id == svc.tenant_id).values(**changes))
