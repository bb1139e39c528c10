"""Bulk delete as one batch, and its undo: every row of a batch gets the same `deleted_at`, so the batch
is named by that instant (with the user who deleted it) and "Undo" can restore exactly those rows later,
without carrying their ids around. Both go row by row through `RecordService.delete`/`restore`: tenant,
permission, data scope, unique check, version, audit entry and event, as for a single row."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from app.plugins.runtime import EntityRef
from app.records.service import RecordService

MAX_BATCH = 500


async def delete_batch(svc: RecordService, entity: EntityRef, ids: Iterable[str]) -> tuple[int, dt.datetime]:
    """Soft-delete `ids` (all or nothing is the caller's transaction); returns (count, the batch's instant)."""
    at = dt.datetime.now(dt.UTC)
    count = 0
    for rid in ids:
        await svc.delete(entity, rid, at=at)
        count += 1
    return count, at


def batch_token(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat()


def parse_token(token: str) -> dt.datetime | None:
    try:
        at = dt.datetime.fromisoformat(token[:40])
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


async def restore_batch(svc: RecordService, entity: EntityRef, at: dt.datetime) -> int:
    """Restore the rows this user deleted in the batch at `at` that are still deleted and visible to them.
    A row whose unique value a live row took meanwhile raises Conflict (the caller rolls back)."""
    svc.require(entity, "delete")
    t = entity.table
    stmt = (
        (await svc._base(entity, deleted=True))  # tenant, data scope, deleted rows only
        .with_only_columns(t.c.id)
        .where(t.c.deleted_at == at, t.c.updated_by == svc.actor.user_id)
        .order_by(t.c.id)
        .limit(MAX_BATCH)
    )
    ids = (await svc.db.execute(stmt)).scalars().all()
    for rid in ids:
        await svc.restore(entity, rid)
    return len(ids)
