"""API tokens for scripts and integrations: shown once, stored as sha256, revocable, optionally expiring
and optionally read-only (a token that only exports data should not be able to change it)."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.audit import Actor
from app.core.db import commit_keeping_write_lock
from app.core.errors import NotFound, Unauthorized, ValidationFailed
from app.core.i18n import N_
from app.core.identifiers import text_problem
from app.core.models import ApiToken, User, utcnow

PREFIX = "pt_"
TOUCH_EVERY = dt.timedelta(seconds=60)
SCOPES = {"full": N_("Full (acts as you)"), "read": N_("Read-only (GET and HEAD)")}
READ_ONLY_METHODS = frozenset({"GET", "HEAD"})
EXPIRY_CHOICES = (30, 90, 365, None)  # days offered on the token page; None = never
DEFAULT_EXPIRY_DAYS = 90
MAX_EXPIRY_DAYS = 3650


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def expiry_problem(days: int | None) -> str | None:
    if days is not None and not 1 <= days <= MAX_EXPIRY_DAYS:
        return N_("Choose between 1 and %(max_days)s days, or no expiry.", max_days=MAX_EXPIRY_DAYS)
    return None


def is_expired(token: ApiToken, now: dt.datetime | None = None) -> bool:
    return token.expires_at is not None and (now or utcnow()) >= token.expires_at


def allows(token: ApiToken, method: str) -> bool:
    """Whether the token's scope permits a request with this HTTP method."""
    return token.scope != "read" or method.upper() in READ_ONLY_METHODS


def as_json(t: ApiToken) -> dict[str, object]:
    return {
        "id": str(t.id),
        "name": t.name,
        "prefix": t.prefix,
        "scope": t.scope,
        "created_at": t.created_at.isoformat(),
        "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
        "expires_at": t.expires_at.isoformat() if t.expires_at else None,
        "expired": is_expired(t),
        "revoked": t.revoked_at is not None,
    }


async def create(
    session: AsyncSession,
    actor: Actor,
    user: User,
    name: str,
    *,
    expires_days: int | None = None,
    scope: str = "full",
    minted_by: ApiToken | None = None,
) -> tuple[ApiToken, str]:
    """A new token; `minted_by` is the token authenticating the request, when one is: a token cannot
    create one that outlives it (its expiry caps the new one's), or expiry would mean nothing."""
    name = name.strip() or "token"
    errors = {}
    if problem := text_problem(name, "token name", 100):
        errors["name"] = problem
    if problem := expiry_problem(expires_days):
        errors["expires_days"] = problem
    if scope not in SCOPES:
        errors["scope"] = N_("Choose one of: %(choices)s.", choices=", ".join(SCOPES))
    if errors:
        raise ValidationFailed(errors)
    now = utcnow()
    expires_at = now + dt.timedelta(days=expires_days) if expires_days is not None else None
    if minted_by is not None and minted_by.expires_at is not None:
        expires_at = min(expires_at or minted_by.expires_at, minted_by.expires_at)
    if minted_by is not None and minted_by.scope == "read":
        scope = "read"  # (read-only tokens cannot POST; kept narrow should that ever change)
    secret = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=_hash(secret),
        prefix=secret[:10],
        expires_at=expires_at,
        scope=scope,
    )
    session.add(row)
    await session.flush()
    await audit.record(
        session,
        actor,
        "token.create",
        "api_token",
        row.id,
        summary=f"Created API token {name} for {user.email}",
        after={
            "name": name,
            "prefix": row.prefix,
            "scope": scope,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return row, secret


async def resolve(session: AsyncSession, secret: str) -> tuple[ApiToken, User] | None:
    """The live token and its user; None for an unknown or revoked token or an inactive user. Raises
    Unauthorized for an expired one, so the client learns why rather than just "invalid"."""
    if not secret.startswith(PREFIX):
        return None
    row = (
        await session.execute(
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == _hash(secret))
        )
    ).first()
    if row is None:
        return None
    token, user = row
    if token.revoked_at is not None or not user.is_active:
        return None
    now = utcnow()
    if is_expired(token, now):
        assert token.expires_at is not None
        raise Unauthorized(
            N_(
                "This API token expired on %(expires_at)s UTC; create a new one.",
                expires_at=format(token.expires_at, "%Y-%m-%d %H:%M"),
            )
        )
    if token.last_used_at is None or now - token.last_used_at > TOUCH_EVERY:
        # End the read first: on SQLite a transaction that has read cannot become a writer once another
        # connection committed meanwhile (SQLITE_BUSY at once; busy_timeout does not wait that out).
        await commit_keeping_write_lock(session)
        token.last_used_at = now
        await commit_keeping_write_lock(session)
    return token, user


async def list_for(session: AsyncSession, user_id: uuid.UUID) -> list[ApiToken]:
    rows = await session.scalars(
        select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.created_at.desc())
    )
    return list(rows.all())


async def revoke_all_for(session: AsyncSession, actor: Actor, user: User) -> int:
    """Revoke every live token of the user (a deactivated account); how many were revoked."""
    result = await session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    revoked = int(result.rowcount or 0)  # type: ignore[attr-defined]
    if revoked:
        await audit.record(
            session,
            actor,
            "token.revoke_all",
            "user",
            user.id,
            summary=f"Revoked all {revoked} API token(s) of {user.email}",
        )
    return revoked


async def revoke(session: AsyncSession, actor: Actor, user_id: uuid.UUID, token_id: uuid.UUID) -> ApiToken:
    token = await session.scalar(select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user_id))
    if token is None:
        raise NotFound(N_("No such token"))
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        await session.flush()
        await audit.record(
            session,
            actor,
            "token.revoke",
            "api_token",
            token.id,
            summary=f"Revoked API token {token.name}",
            before={"revoked": False},
            after={"revoked": True},
        )
    return token
