"""Audit trail: one row per change, with who, where, what and before/after values."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.models import AuditEntry


@dataclass(frozen=True)
class Actor:
    user_id: uuid.UUID | None
    email: str
    ip: str = ""

    @classmethod
    def system(cls) -> Actor:
        return cls(None, "system")


def diff(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Keep only the keys that changed (both sides), so audit rows stay readable."""
    if before is None or after is None:
        return before, after
    keys = [k for k in after if before.get(k) != after.get(k)] + [k for k in before if k not in after]
    return {k: before.get(k) for k in keys}, {k: after.get(k) for k in keys}


def _values(
    actor: Actor,
    action: str,
    target_type: str,
    target_id: Any,
    tenant_id: uuid.UUID | None,
    summary: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> dict[str, Any]:
    b, a = diff(before, after)
    return {
        "tenant_id": tenant_id,
        "actor_id": actor.user_id,
        "actor_email": actor.email,
        "action": action,
        "target_type": target_type,
        "target_id": str(target_id),
        "summary": summary,
        "before": b,
        "after": a,
        "ip": actor.ip,
    }


TABLE = cast(sa.Table, AuditEntry.__table__)


def entry(
    actor: Actor,
    action: str,
    target_type: str,
    target_id: Any = "",
    *,
    tenant_id: uuid.UUID | None = None,
    summary: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An audit row's every column (id and time included), for a caller that writes it in a statement of
    its own: the record service sends it with the change's event row (app.events.emit's `along`)."""
    return {
        **_values(actor, action, target_type, target_id, tenant_id, summary, before, after),
        "id": uuid.uuid4(),
        "created_at": dt.datetime.now(dt.UTC),
    }


async def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: Any = "",
    *,
    tenant_id: uuid.UUID | None = None,
    summary: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Add an audit entry to the session (written with the caller's transaction)."""
    session.add(
        AuditEntry(**_values(actor, action, target_type, target_id, tenant_id, summary, before, after))
    )


async def write(
    session: AsyncSession,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: Any = "",
    *,
    tenant_id: uuid.UUID | None = None,
    summary: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """`record`, written at once with one Core INSERT instead of an ORM object flushed at commit: the
    record service's hot path (one audit row per record change) skips the unit of work."""
    await session.execute(
        _INSERT, _values(actor, action, target_type, target_id, tenant_id, summary, before, after)
    )


# One statement object, run with parameters: compiled once (id and created_at come from the column defaults).
_INSERT = sa.insert(AuditEntry.__table__)  # type: ignore[arg-type]
