"""A record write as one PostgreSQL statement: the record service's insert and update on PostgreSQL.

One INSERT (or UPDATE) with data-modifying CTEs does what the generic path does in several round trips:

    WITH ref_<field> AS (SELECT id FROM <target> WHERE <tenant, data scope> AND deleted_at IS NULL
                         AND id = :ref),                          -- per reference field set
         taken_<field> AS (SELECT id FROM <table> WHERE ... AND <field> = :v AND id <> :id),  -- update
         w AS (INSERT INTO <table> (...) SELECT :values WHERE EXISTS (SELECT 1 FROM ref_...)
               ON CONFLICT DO NOTHING RETURNING id),              -- or UPDATE ... WHERE version = :v
         a AS (INSERT INTO audit_log (...) SELECT :audit FROM w),
         e AS (INSERT INTO event_log (...) SELECT :event FROM w)
    SELECT (SELECT count(*) FROM w), EXISTS (SELECT 1 FROM ref_...), EXISTS (SELECT 1 FROM taken_...)

The row is written, audited and its event recorded together, or nothing is written and the flags say
why: a reference not found (no such row in the tenant, or outside the writer's data scope), a unique value
taken (the unique indexes refuse an insert: ON CONFLICT DO NOTHING; an update checks in `taken_`), or
else a version that moved on. The caller turns that into the same errors as the generic path (SQLite).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import dml as pg_dml

from app.audit import TABLE as AUDIT
from app.core.models import EventRecord
from app.plugins.runtime import EntityRef

EVENTS = cast(sa.Table, EventRecord.__table__)


class _Insert(postgresql.Insert):
    """The dialect's INSERT opts out of SQLAlchemy's compiled cache; this one is only ever built as
    `INSERT ... SELECT ... ON CONFLICT DO NOTHING RETURNING id` (no conflict target), so it may cache."""

    inherit_cache = True


class _DoNothing(pg_dml.OnConflictDoNothing):
    _traverse_internals: list[Any] = []  # no conflict target: nothing varies
    inherit_cache = True


@dataclass(frozen=True)
class Reference:
    """A reference field's value to check in the statement: `visible` are the target's tenant and
    data-scope conditions (RecordReads._visible)."""

    field: str
    target: EntityRef
    visible: Sequence[sa.ColumnElement[bool]]
    value: Any


@dataclass(frozen=True)
class Outcome:
    written: bool
    missing: list[str]  # reference fields whose row was not found
    taken: list[str]  # unique fields whose value another live row holds (update)


def _values(table: sa.Table, row: Mapping[str, Any], prefix: str) -> list[Any]:
    return [sa.bindparam(f"{prefix}{k}", v, type_=table.c[k].type) for k, v in row.items()]


def _ref_ctes(refs: Sequence[Reference]) -> list[tuple[Reference, Any]]:
    out = []
    for ref in refs:
        t = ref.target.table
        stmt = sa.select(t.c.id).where(
            *ref.visible,
            t.c.deleted_at.is_(None),
            t.c.id == sa.bindparam(f"r_{ref.field}", ref.value, type_=t.c.id.type),
        )
        out.append((ref, stmt.cte(f"ref_{ref.field}")))
    return out


def _journal(written: Any, audit: Mapping[str, Any], event: Mapping[str, Any]) -> list[Any]:
    """The audit and event rows, one of each per row `written` returns (none when nothing was)."""
    return [
        sa.insert(AUDIT)
        .from_select(list(audit), sa.select(*_values(AUDIT, audit, "a_")).select_from(written))
        .cte("a"),
        sa.insert(EVENTS)
        .from_select(list(event), sa.select(*_values(EVENTS, event, "e_")).select_from(written))
        .cte("e"),
    ]


def _exists(cte: Any) -> Any:
    return sa.exists(sa.select(sa.literal(1)).select_from(cte))


async def _run(db: Any, stmt: Any, missing: list[str], taken: list[str]) -> Outcome:
    result = (await db.execute(stmt)).one()
    flags = list(result[1:])
    found = flags[: len(missing)]
    clashes = flags[len(missing) :]
    return Outcome(
        bool(result[0]),
        [name for name, ok in zip(missing, found, strict=True) if not ok],
        [name for name, hit in zip(taken, clashes, strict=True) if hit],
    )


async def insert(
    db: Any,
    entity: EntityRef,
    row: Mapping[str, Any],
    refs: Sequence[Reference],
    audit: Mapping[str, Any],
    event: Mapping[str, Any],
) -> Outcome:
    """Insert `row` unless a reference is not found or a unique index refuses it, with its audit and
    event rows: one statement."""
    t = entity.table
    ctes = _ref_ctes(refs)
    source = sa.select(*_values(t, row, "v_"))
    if ctes:
        source = source.where(*(_exists(cte) for _, cte in ctes))
    ins = _Insert(t).from_select(list(row), source).returning(t.c.id)
    ins._post_values_clause = _DoNothing()  # ON CONFLICT DO NOTHING: every unique index, no target
    written = ins.cte("w")
    final = sa.select(
        sa.select(sa.func.count()).select_from(written).scalar_subquery(), *(_exists(c) for _, c in ctes)
    )
    for cte in _journal(written, audit, event):
        final = final.add_cte(cte)
    return await _run(db, final, [r.field for r, _ in ctes], [])


async def update(
    db: Any,
    entity: EntityRef,
    tenant_id: Any,
    key: Mapping[str, Any],
    changes: Mapping[str, Any],
    refs: Sequence[Reference],
    unique: Mapping[str, Any],
    audit: Mapping[str, Any],
    event: Mapping[str, Any],
) -> Outcome:
    """Apply `changes` to the live row `key` (id, version) holds unless the version moved on, a reference
    is not found or a unique value is taken, with its audit and event rows: one statement."""
    t = entity.table
    ctes = _ref_ctes(refs)
    record_id = sa.bindparam("k_id", key["id"], type_=t.c.id.type)
    taken = [
        (
            name,
            sa.select(t.c.id)
            .where(
                t.c.tenant_id == tenant_id,
                t.c.deleted_at.is_(None),
                t.c[name] == sa.bindparam(f"u_{name}", value, type_=t.c[name].type),
                t.c.id != record_id,
            )
            .limit(1)
            .cte(f"taken_{name}"),
        )
        for name, value in unique.items()
    ]
    upd = (
        sa.update(t)
        .where(
            t.c.id == record_id,
            t.c.tenant_id == tenant_id,
            t.c.version == sa.bindparam("k_version", key["version"], type_=t.c.version.type),
            t.c.deleted_at.is_(None),
            *(_exists(cte) for _, cte in ctes),
            *(~_exists(cte) for _, cte in taken),
        )
        .values({k: sa.bindparam(f"v_{k}", v, type_=t.c[k].type) for k, v in changes.items()})
        .returning(t.c.id)
    )
    written = upd.cte("w")
    final = sa.select(
        sa.select(sa.func.count()).select_from(written).scalar_subquery(),
        *(_exists(c) for _, c in ctes),
        *(_exists(c) for _, c in taken),
    )
    for cte in _journal(written, audit, event):
        final = final.add_cte(cte)
    return await _run(db, final, [r.field for r, _ in ctes], [name for name, _ in taken])
