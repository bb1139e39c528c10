"""Server-side browser sessions in the database, shared by every worker process.

The cookie holds a random token; only its sha256 is stored. Login always issues a new token
(rotation). A session ends after `session_idle_seconds` without requests or
`session_absolute_seconds` after login, whichever comes first.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from typing import Any

from sqlalchemy import Select, bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import commit_keeping_write_lock
from app.core.models import User, WebSession, utcnow
from app.core.settings import Settings

COOKIE = "portal_session"
TOUCH_EVERY = dt.timedelta(seconds=60)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def start(
    session: AsyncSession, settings: Settings, user: User, *, old_token: str | None, ip: str, user_agent: str
) -> str:
    if old_token:
        await end(session, old_token)
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        WebSession(
            token_hash=token_hash(token),
            user_id=user.id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + dt.timedelta(seconds=settings.session_absolute_seconds),
            ip=ip[:64],
            user_agent=user_agent[:300],
        )
    )
    user.last_login_at = now
    await session.flush()
    return token


def lookup() -> Select[Any]:
    """The session row (by the `token_hash` parameter) and its user; callers may add columns (the
    request's tenant rides along). Built once by each caller and run with parameters."""
    return (
        select(WebSession, User)
        .join(User, User.id == WebSession.user_id)
        .where(WebSession.token_hash == bindparam("token_hash", type_=WebSession.token_hash.type))
    )


_LOOKUP = lookup()


async def resolve(session: AsyncSession, settings: Settings, token: str) -> tuple[WebSession, User] | None:
    row = (await session.execute(_LOOKUP, {"token_hash": token_hash(token)})).first()
    if row is None:
        return None
    return await check(session, settings, row[0], row[1])


async def check(
    session: AsyncSession, settings: Settings, ws: WebSession, user: User
) -> tuple[WebSession, User] | None:
    """The session and user when the session is still valid (ended ones are deleted), touching it at
    most once a minute."""
    now = utcnow()
    idle_limit = ws.last_seen_at + dt.timedelta(seconds=settings.session_idle_seconds)
    expired = now >= ws.expires_at or now >= idle_limit or not user.is_active
    touch = now - ws.last_seen_at > TOUCH_EVERY
    if expired or touch:
        # End the read before writing: on SQLite a transaction that has read cannot become a writer once
        # another connection (say, an event delivery) committed meanwhile; busy_timeout does not help.
        await commit_keeping_write_lock(session)
    if expired:
        await session.delete(ws)
        await commit_keeping_write_lock(session)
        return None
    if touch:
        # Written at most once a minute so most requests stay read-only.
        ws.last_seen_at = now
        await commit_keeping_write_lock(session)
    return ws, user


async def end(session: AsyncSession, token: str) -> None:
    await session.execute(delete(WebSession).where(WebSession.token_hash == token_hash(token)))


async def end_all_for(session: AsyncSession, user_id: uuid.UUID, *, keep_token: str | None = None) -> int:
    """End every session of the user, except `keep_token`'s (the browser that changed its own password
    stays signed in); how many ended. Sessions are rows read on every request, so this takes effect in
    every worker at the next request."""
    stmt = delete(WebSession).where(WebSession.user_id == user_id)
    if keep_token:
        stmt = stmt.where(WebSession.token_hash != token_hash(keep_token))
    result = await session.execute(stmt)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
