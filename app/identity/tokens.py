"""API tokens for scripts and integrations: shown once, stored as sha256, revocable."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.audit import Actor
from app.db import commit_keeping_write_lock
from app.db.models import ApiToken, User, utcnow
from app.errors import NotFound, ValidationFailed
from app.identity.validation import text_problem

PREFIX = "pt_"
TOUCH_EVERY = dt.timedelta(seconds=60)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create(session: AsyncSession, actor: Actor, user: User, name: str) -> tuple[ApiToken, str]:
    name = name.strip() or "token"
    if problem := text_problem(name, "token name", 100):
        raise ValidationFailed({"name": problem})
    secret = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, name=name, token_hash=_hash(secret), prefix=secret[:10])
    session.add(row)
    await session.flush()
    await audit.record(session, actor, "token.create", "api_token", row.id,
                       summary=f"Created API token {name} for {user.email}", after={"name": name, "prefix": row.prefix})
    return row, secret


async def resolve(session: AsyncSession, secret: str) -> tuple[ApiToken, User] | None:
    if not secret.startswith(PREFIX):
        return None
    row = (
        await session.execute(select(ApiToken, User).join(User, User.id == ApiToken.user_id).where(ApiToken.token_hash == _hash(secret)))
    ).first()
    if row is None:
        return None
    token, user = row
    if token.revoked_at is not None or not user.is_active:
        return None
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at > TOUCH_EVERY:
        # End the read first: on SQLite a transaction that has read cannot become a writer once another
        # connection committed meanwhile (SQLITE_BUSY at once; busy_timeout does not wait that out).
        await commit_keeping_write_lock(session)
        token.last_used_at = now
        await commit_keeping_write_lock(session)
    return token, user


async def list_for(session: AsyncSession, user_id: uuid.UUID) -> list[ApiToken]:
    rows = await session.scalars(select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.created_at.desc()))
    return list(rows.all())


async def revoke(session: AsyncSession, actor: Actor, user_id: uuid.UUID, token_id: uuid.UUID) -> ApiToken:
    token = await session.scalar(select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user_id))
    if token is None:
        raise NotFound("No such token")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        await session.flush()
        await audit.record(session, actor, "token.revoke", "api_token", token.id,
                           summary=f"Revoked API token {token.name}", before={"revoked": False}, after={"revoked": True})
    return token
