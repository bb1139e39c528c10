"""Many rows written at once by the record service's rules: what an import batch (app.records.importer)
does instead of a RecordService.insert or update per row.

Every row still goes through the same checks as a single write, in Python: permission (checked by the
caller once), parsing, computed fields, the app's validators, the writer's data scope, insert hooks. The
references were resolved by the importer (one query per reference column, within the tenant and the
writer's scope). What costs round trips is done per batch instead of per row:

- creates: one multi-row `INSERT ... ON CONFLICT DO NOTHING RETURNING id` (a row a unique index refuses
  is not returned: it is refused with the taken value named), then the audit rows and the event rows,
  one multi-row INSERT each;
- updates: one query per unique field for values other live rows hold, one UPDATE for the batch with
  the version checked per row (PostgreSQL: `UPDATE ... FROM (VALUES ...)` returning the ids written; a
  row changed meanwhile is refused as stale. SQLite: one executemany, under the write lock the import
  holds, so no row can have changed), then the audit and event rows;
- rollups of parents touched by the batch: refreshed once per parent, not per row.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from app.audit import TABLE as AUDIT
from app.core.errors import ValidationFailed
from app.core.models import EventRecord
from app.events import prepare, recorded_in
from app.plugins.runtime import EntityRef
from app.records import computed

if TYPE_CHECKING:
    from app.records.service import RecordService

EVENTS = cast(sa.Table, EventRecord.__table__)
MAX_PARAMETERS = 30_000  # per statement: below SQLite's 32,766 and PostgreSQL's 65,535
Errors = dict[int, dict[str, str]]


def _chunks(rows: Sequence[Mapping[str, Any]], width: int) -> Iterable[Sequence[Mapping[str, Any]]]:
    size = max(1, MAX_PARAMETERS // max(1, width))
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


async def _insert_many(svc: RecordService, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Executemany of one compiled INSERT: SQLAlchemy sends it as multi-row INSERTs ("insertmanyvalues")
    on PostgreSQL, executemany on SQLite. (`.values([...])` would compile a new statement per batch.)"""
    if rows:
        await svc.db.execute(sa.insert(table), list(rows))


async def _journal(svc: RecordService, entity: EntityRef, changes: Sequence[tuple[Any, ...]]) -> None:
    """The audit rows and events of the rows written: one multi-row INSERT each (per column set)."""
    entries, events = [], []
    for journal in changes:
        entry, event = svc._journal_rows(entity, *journal)
        entries.append(entry)
        events.append(await prepare(svc.db, event))
    await _insert_many(svc, AUDIT, entries)
    await _insert_many(svc, EVENTS, [p.params for p in events])
    for prepared in events:
        recorded_in(svc.db, prepared)


async def _refresh_parents(
    svc: RecordService, entity: EntityRef, rows: Iterable[Mapping[str, Any] | None]
) -> None:
    """Each parent row the batch touched, once (computed.refresh_parents reads the `via` fields)."""
    refs = [f.name for f in entity.spec.fields if f.type == "reference"]
    if not refs:
        return
    seen = {tuple(row.get(name) for name in refs) for row in rows if row is not None}
    for values in sorted(seen, key=str):
        await computed.refresh_parents(svc, entity, None, dict(zip(refs, values, strict=True)))


async def _checked(
    svc: RecordService, entity: EntityRef, row: dict[str, Any], before: dict[str, Any] | None
) -> None:
    for check in svc.hooks.validate:
        await check(svc, entity, row, before)
    await svc._check_in_scope(entity, row)


async def insert(
    svc: RecordService, entity: EntityRef, rows: Sequence[tuple[int, Mapping[str, Any]]]
) -> tuple[int, Errors]:
    """Create `rows` ((number, values as given)): returns how many were created and the refused rows."""
    errors: Errors = {}
    ready: dict[uuid.UUID, tuple[int, dict[str, Any], dict[str, Any]]] = {}
    now = dt.datetime.now(dt.UTC)
    for number, data in rows:
        try:
            values = await svc._check_values(entity, data, creating=True, unique=False, references=False)
            if entity.spec.has_computed:
                values |= computed.initial_rollups(entity.spec)
                values |= computed.evaluate(entity.spec, values)
            row = {
                **values,
                "id": uuid.uuid4(),
                "tenant_id": svc.tenant_id,
                "created_at": now,
                "updated_at": now,
                "created_by": svc.actor.user_id,
                "updated_by": svc.actor.user_id,
                "deleted_at": None,
                "version": 1,
            }
            await _checked(svc, entity, row, None)
        except ValidationFailed as exc:
            errors[number] = exc.errors
            continue
        ready[row["id"]] = (number, values, row)
    written: set[uuid.UUID] = set()
    # One statement per column set (rows leaving optional fields out have fewer columns).
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for _, _, row in ready.values():
        groups.setdefault(tuple(row), []).append(row)
    for group in groups.values():
        # ON CONFLICT DO NOTHING RETURNING id, as executemany: multi-row INSERTs of one compiled statement
        result = await svc.db.execute(svc._insert_unless_taken(entity), group)
        written.update(result.scalars().all())
    for rid, (number, values, _) in ready.items():
        if rid not in written:  # a unique index refused it: say which value is taken
            clash = await svc._check_unique(entity, values, None)
            errors[number] = clash or {"": f"A conflicting {entity.spec.label} exists"}
    created = [row for rid, (_, _, row) in ready.items() if rid in written]
    await _refresh_parents(svc, entity, created)
    await _journal(svc, entity, [_created(entity, row) for row in created])
    for row in created:
        for hook in svc.hooks.insert:
            await hook(svc, entity, row)
    return len(created), errors


def _created(entity: EntityRef, row: dict[str, Any]) -> tuple[Any, ...]:
    label = row.get(entity.spec.display_field, row["id"])
    return ("create", "created", row, None, row, f"Created {entity.spec.label} {label}")


async def update(
    svc: RecordService, entity: EntityRef, rows: Sequence[tuple[int, dict[str, Any], Mapping[str, Any]]]
) -> tuple[int, Errors]:
    """Apply changes to existing rows ((number, the row as read in this transaction, values as given)):
    returns how many were updated and the refused rows."""
    errors: Errors = {}
    ready: list[tuple[int, dict[str, Any], dict[str, Any], dict[str, Any]]] = []
    now = dt.datetime.now(dt.UTC)
    for number, before, data in rows:
        try:
            values = await svc._check_values(
                entity, data, creating=False, record_id=before["id"], unique=False, references=False
            )
            if entity.spec.has_computed:
                values |= computed.evaluate(entity.spec, {**before, **values})
            changes = {
                **values,
                "updated_at": now,
                "updated_by": svc.actor.user_id,
                "version": before["version"] + 1,
            }
            await _checked(svc, entity, {**before, **changes}, before)
        except ValidationFailed as exc:
            errors[number] = exc.errors
            continue
        ready.append((number, before, values, changes))
    ready = await _free_unique(svc, entity, ready, errors)
    groups: dict[tuple[str, ...], list[tuple[int, dict[str, Any], dict[str, Any]]]] = {}
    for number, before, _, changes in ready:
        groups.setdefault(tuple(changes), []).append((number, before, changes))
    written: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for columns, group in groups.items():
        done = await _update_group(svc, entity, list(columns), group)
        for number, before, changes in group:
            if before["id"] in done:
                written.append((before, {**before, **changes}))
            else:
                errors[number] = {"": "The record was changed by someone else meanwhile; nothing was saved"}
    await _refresh_parents(svc, entity, [b for b, _ in written] + [a for _, a in written])
    await _journal(
        svc,
        entity,
        [
            (
                "update",
                "updated",
                after,
                before,
                after,
                f"Edited {entity.spec.label} {after.get(entity.spec.display_field, before['id'])}",
            )
            for before, after in written
        ],
    )
    return len(written), errors


async def _free_unique(
    svc: RecordService,
    entity: EntityRef,
    ready: list[tuple[int, dict[str, Any], dict[str, Any], dict[str, Any]]],
    errors: Errors,
) -> list[tuple[int, dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """Refuse the rows whose new unique value another live row holds: one query per unique field."""
    from app.records.service import _taken

    t = entity.table
    for spec in entity.spec.fields:
        if not spec.unique:
            continue
        wanted = {
            values[spec.name]
            for _, before, values, _ in ready
            if values.get(spec.name) is not None and values[spec.name] != before.get(spec.name)
        }
        if not wanted:
            continue
        holders = {
            value: rid
            for rid, value in (
                await svc.db.execute(
                    sa.select(t.c.id, t.c[spec.name]).where(
                        t.c.tenant_id == svc.tenant_id, t.c.deleted_at.is_(None), t.c[spec.name].in_(wanted)
                    )
                )
            ).all()
        }
        kept = []
        for item in ready:
            number, before, values, _ = item
            holder = holders.get(values.get(spec.name))
            if holder is not None and holder != before["id"]:
                errors.setdefault(number, {})[spec.name] = _taken(entity, spec.name, values[spec.name])
            else:
                kept.append(item)
        ready = kept
    return ready


async def _update_group(
    svc: RecordService,
    entity: EntityRef,
    columns: list[str],
    group: list[tuple[int, dict[str, Any], dict[str, Any]]],
) -> set[uuid.UUID]:
    """Rows of one column set; returns the ids written (the others changed since they were read)."""
    t = entity.table
    done: set[uuid.UUID] = set()
    if svc.db.get_bind().dialect.name != "postgresql":
        stmt = (
            sa.update(t)
            .where(
                t.c.id == sa.bindparam("k_id"),
                t.c.tenant_id == svc.tenant_id,
                t.c.version == sa.bindparam("k_version"),
                t.c.deleted_at.is_(None),
            )
            .values({c: sa.bindparam(f"b_{c}") for c in columns})
        )
        params = [
            {"k_id": before["id"], "k_version": before["version"], **{f"b_{c}": ch[c] for c in columns}}
            for _, before, ch in group
        ]
        await svc.db.execute(stmt, params)
        # executemany gives no rowcount per row: the rows now at their new version are those written
        # (the import holds SQLite's write lock, so all of them).
        new = {before["id"]: before["version"] + 1 for _, before, _ in group}
        found = await svc.db.execute(sa.select(t.c.id, t.c.version).where(t.c.id.in_(new)))
        return {rid for rid, version in found.all() if new.get(rid) == version}
    names = ["k_id", "k_version", *columns]
    types = [t.c.id.type, t.c.version.type, *(t.c[c].type for c in columns)]
    rows = [(before["id"], before["version"], *(ch[c] for c in columns)) for _, before, ch in group]
    if not any(isinstance(ty, sa.JSON) for ty in types):
        # FROM unnest(:ids, :versions, :col, ...): one array parameter per column, so the statement
        # is the same for every batch of this column set (compiled once).
        arrays = [
            sa.bindparam(f"a_{n}", [r[i] for r in rows], type_=postgresql.ARRAY(ty))
            for i, (n, ty) in enumerate(zip(names, types, strict=True))
        ]
        data: Any = (
            sa.func.unnest(*arrays)
            .table_valued(*(sa.column(n, ty) for n, ty in zip(names, types, strict=True)))
            .render_derived(name="v")
        )
        parts = [rows]
        keys: Any = sa.any_(arrays[0])
    else:  # JSON values: a VALUES list (an array of json would need per-value casts)
        size = max(1, MAX_PARAMETERS // len(names))
        parts = [rows[i : i + size] for i in range(0, len(rows), size)]
        data = keys = None
    for part in parts:
        source = data
        if source is None:
            source = sa.values(
                *(sa.column(n, ty) for n, ty in zip(names, types, strict=True)), name="v"
            ).data(part)
        # The ids again, as a condition on the primary key: the plan reads the batch's rows by their
        # index whatever the table's statistics say (right after a bulk load they may say "empty",
        # and a nested loop over every row of the tenant for each row of the batch took ~8 s/batch).
        ids = t.c.id == keys if keys is not None else t.c.id.in_([r[0] for r in part])
        stmt = (
            sa.update(t)
            .where(
                ids,
                t.c.id == source.c.k_id,
                t.c.version == source.c.k_version,
                t.c.tenant_id == svc.tenant_id,
                t.c.deleted_at.is_(None),
            )
            .values({c: sa.cast(source.c[c], t.c[c].type) for c in columns})  # a NULL in VALUES is text
            .returning(t.c.id)
        )
        done.update((await svc.db.execute(stmt)).scalars().all())
    return done
