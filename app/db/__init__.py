"""Database: base models, engine configuration, migrations."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

# Execution option: begin this connection's SQLite transaction IMMEDIATE (take the write lock first).
# Work that reads and then writes while others may write too (write requests, event deliveries,
# background guest calls) uses it, so it waits for the other writer instead of failing when that one
# commits between its reads and its writes (SQLite refuses a write from a stale read snapshot).
SQLITE_WRITE_LOCK = "portal_sqlite_write_lock"


async def commit_keeping_write_lock(session: AsyncSession) -> None:
    """Commit mid-request (a session or token touch) without losing SQLITE_WRITE_LOCK: the request's
    next transaction begins IMMEDIATE again when this one did, instead of as a plain deferred one."""
    conn = await session.connection()
    locked = bool(
        conn.sync_connection and conn.sync_connection.get_execution_options().get(SQLITE_WRITE_LOCK)
    )
    await session.commit()
    if locked:
        await session.connection(execution_options={SQLITE_WRITE_LOCK: True})
