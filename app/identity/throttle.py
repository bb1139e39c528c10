"""Failed-login throttling, kept in the database so every worker sees the same counts.

A sign-in (or an auto-login link) is admitted in one locked step: under a lock on its email and on its
address, the failures of the window are counted and, when under the limit, the attempt is recorded as a
failure *before* its credentials are evaluated; a success then turns it into one. Checking and
recording separately let parallel attempts all read the same count and all be evaluated (50 parallel
wrong passwords got 21 checks on PostgreSQL with a limit of 5). An attempt whose evaluation never
finishes (a crash) stays counted, which errs on the safe side.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import SQLITE_WRITE_LOCK
from app.core.models import LoginAttempt, utcnow
from app.core.settings import Settings


@dataclass(frozen=True)
class Admission:
    """The outcome of `admit`: `wait` seconds to wait (refused, nothing recorded), or 0 and the recorded
    attempt's id, to be settled once the credentials have been evaluated."""

    wait: int
    attempt_id: uuid.UUID | None = None
    email: str = ""


def _lock_key(kind: str, value: str) -> int:
    # A stable signed 64-bit key for pg_advisory_xact_lock, the same in every worker process.
    return int.from_bytes(
        hashlib.sha256(f"portal.login.{kind}:{value}".encode()).digest()[:8], "big", signed=True
    )


async def _lock(session: AsyncSession, email: str, ip: str) -> None:
    """Serialize admissions that share an email or an address until the transaction ends."""
    conn = await session.connection()
    if conn.dialect.name == "sqlite":
        # SQLite has one writer at a time: hold its write lock from before the count until the commit.
        if not (conn.sync_connection and conn.sync_connection.get_execution_options().get(SQLITE_WRITE_LOCK)):
            await session.commit()
            await session.connection(execution_options={SQLITE_WRITE_LOCK: True})
        return
    # Both keys, always in the same order, so two admissions never wait for each other crosswise.
    for key in sorted({_lock_key("email", email), _lock_key("ip", ip)}):
        await session.execute(select(func.pg_advisory_xact_lock(key)))


async def admit(session: AsyncSession, settings: Settings, email: str, ip: str) -> Admission:
    """Count this email's or address's failures in the window and, when under the limit, record this
    attempt as one, atomically. Commits (ending the caller's transaction) to release the lock, so the
    slow evaluation runs unlocked and parallel attempts for other accounts are not held up."""
    email, ip = email[:254], ip[:64]
    await _lock(session, email, ip)
    since = utcnow() - dt.timedelta(seconds=settings.login_window_seconds)
    failures, oldest = (
        await session.execute(
            select(func.count(), func.min(LoginAttempt.created_at)).where(
                LoginAttempt.created_at >= since,
                LoginAttempt.succeeded.is_(False),
                or_(LoginAttempt.email == email, LoginAttempt.ip == ip),
            )
        )
    ).one()
    if failures >= settings.login_max_failures and oldest is not None:
        await session.commit()
        wait = (oldest + dt.timedelta(seconds=settings.login_window_seconds) - utcnow()).total_seconds()
        return Admission(wait=max(1, math.ceil(wait)))
    row = LoginAttempt(email=email, ip=ip, succeeded=False)
    session.add(row)
    await session.commit()
    return Admission(wait=0, attempt_id=row.id, email=email)


async def succeeded(session: AsyncSession, admission: Admission) -> None:
    """The admitted attempt's credentials were right: it no longer counts, nor do that account's earlier
    failures. (A failure needs nothing more: `admit` recorded it as one.) Needs SQLite's write lock."""
    if admission.attempt_id is None:
        return
    await session.execute(
        update(LoginAttempt).where(LoginAttempt.id == admission.attempt_id).values(succeeded=True)
    )
    await session.execute(
        delete(LoginAttempt).where(LoginAttempt.email == admission.email, LoginAttempt.succeeded.is_(False))
    )
    await session.flush()
