"""Failed-login throttling, kept in the database so every worker sees the same counts."""

from __future__ import annotations

import datetime as dt
import math

from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import LoginAttempt, utcnow
from app.settings import Settings


async def retry_after(session: AsyncSession, settings: Settings, email: str, ip: str) -> int:
    """Seconds until this email or IP may try again; 0 when allowed."""
    since = utcnow() - dt.timedelta(seconds=settings.login_window_seconds)
    failures, oldest = (
        await session.execute(
            select(func.count(), func.min(LoginAttempt.created_at)).where(
                LoginAttempt.created_at >= since, LoginAttempt.succeeded.is_(False),
                or_(LoginAttempt.email == email, LoginAttempt.ip == ip))
        )
    ).one()
    if failures < settings.login_max_failures or oldest is None:
        return 0
    wait = (oldest + dt.timedelta(seconds=settings.login_window_seconds) - utcnow()).total_seconds()
    return max(1, math.ceil(wait))


async def note(session: AsyncSession, email: str, ip: str, *, succeeded: bool) -> None:
    session.add(LoginAttempt(email=email[:254], ip=ip[:64], succeeded=succeeded))
    if succeeded:
        # A successful login clears that account's failure history.
        await session.execute(delete(LoginAttempt).where(LoginAttempt.email == email, LoginAttempt.succeeded.is_(False)))
    await session.flush()
