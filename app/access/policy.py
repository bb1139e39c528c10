"""Casbin policy storage and evaluation.

Grants are Casbin `p` lines (role, tenant, permission pattern) kept in `casbin_rule` through the
pycasbin async SQLAlchemy adapter, inside the caller's transaction. Role assignment lives in
`tenant_users` (exactly one role per tenant); enforcers get the matching `g` lines from there.
The hot path does not call Casbin per request: app.access.cache compiles a user's lines once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import casbin
from casbin_async_sqlalchemy_adapter.adapter import Adapter, Filter
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.models import CasbinRule, Membership, Tenant
from app.core.settings import SYSTEM_TENANT_ID

DIRECTORY_CHANGED_KEY = "portal_directory_changed"
MODEL_PATH = Path(__file__).resolve().parents[2] / "policies" / "model.conf"


def role_subject(role_id: uuid.UUID | str) -> str:
    return f"role:{role_id}"


def user_subject(user_id: uuid.UUID | str) -> str:
    return f"user:{user_id}"


def adapter_for(session: AsyncSession) -> Adapter:
    """The maintained pycasbin adapter, bound to the caller's session and our CasbinRule table."""
    return Adapter(session.bind, db_class=CasbinRule, db_session=session)


async def grants_of_roles(session: AsyncSession, role_ids: Iterable[uuid.UUID]) -> list[tuple[str, str, str]]:
    subjects = [role_subject(r) for r in role_ids]
    if not subjects:
        return []
    rows = await session.execute(
        select(CasbinRule.v0, CasbinRule.v1, CasbinRule.v2)
        .where(CasbinRule.ptype == "p", CasbinRule.v0.in_(subjects))
        .order_by(CasbinRule.v2)
    )
    return [(str(a), str(b), str(c)) for a, b, c in rows.all()]


async def bump_policy_version(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    """Invalidate every worker's cached permission sets for this tenant (checked per request)."""
    await session.execute(
        update(Tenant).where(Tenant.id == tenant_id).values(policy_version=Tenant.policy_version + 1)
    )


async def bump_directory_version(session: AsyncSession) -> None:
    """Invalidate every worker's cached tenant switchers: a tenant, a membership or a role name changed
    somewhere (one counter on the system tenant's row, which every tenant request reads anyway)."""
    # This session must not fill the caches from its own uncommitted view (it may still roll back).
    session.info[DIRECTORY_CHANGED_KEY] = True
    await session.execute(
        update(Tenant)
        .where(Tenant.id == uuid.UUID(SYSTEM_TENANT_ID))
        .values(directory_version=Tenant.directory_version + 1)
        .execution_options(synchronize_session=False)
    )


async def add_grants(
    session: AsyncSession, tenant_id: uuid.UUID, role_id: uuid.UUID, patterns: Iterable[str]
) -> None:
    rules = [[role_subject(role_id), str(tenant_id), p] for p in patterns]
    if rules:
        await adapter_for(session).add_policies("p", "p", rules)
        await bump_policy_version(session, tenant_id)


async def remove_grants(
    session: AsyncSession, tenant_id: uuid.UUID, role_id: uuid.UUID, patterns: Iterable[str]
) -> None:
    rules = [[role_subject(role_id), str(tenant_id), p] for p in patterns]
    if rules:
        await adapter_for(session).remove_policies("p", "p", rules)
        await bump_policy_version(session, tenant_id)


async def drop_role_grants(session: AsyncSession, tenant_id: uuid.UUID, role_id: uuid.UUID) -> None:
    await session.execute(
        delete(CasbinRule).where(CasbinRule.ptype == "p", CasbinRule.v0 == role_subject(role_id))
    )
    await bump_policy_version(session, tenant_id)


@dataclass(frozen=True)
class Explanation:
    allowed: bool
    rule: tuple[str, ...] | None  # the Casbin policy line that matched


async def build_enforcer(
    session: AsyncSession, user_id: uuid.UUID, tenant_id: uuid.UUID
) -> casbin.AsyncEnforcer:
    """A Casbin enforcer holding exactly the lines that can matter for one user in one tenant."""
    domains = sorted({str(tenant_id), SYSTEM_TENANT_ID})
    members = (
        await session.execute(
            select(Membership.role_id, Membership.tenant_id).where(
                Membership.user_id == user_id, Membership.tenant_id.in_([uuid.UUID(d) for d in domains])
            )
        )
    ).all()
    flt = Filter()
    flt.ptype = ["p"]
    flt.v0 = [role_subject(r) for r, _ in members] or ["role:none"]
    flt.v1 = domains
    enforcer = casbin.AsyncEnforcer(str(MODEL_PATH), adapter_for(session))
    await enforcer.load_filtered_policy(flt)
    for role_id, dom in members:
        enforcer.get_model().add_policy("g", "g", [user_subject(user_id), role_subject(role_id), str(dom)])
    enforcer.build_role_links()
    return enforcer


async def explain(
    session: AsyncSession, user_id: uuid.UUID, tenant_id: uuid.UUID, permission: str, *, platform: bool
) -> Explanation:
    enforcer = await build_enforcer(session, user_id, tenant_id)
    domain = SYSTEM_TENANT_ID if platform else str(tenant_id)
    allowed, rule = enforcer.enforce_ex(user_subject(user_id), domain, permission)
    return Explanation(bool(allowed), tuple(rule) if rule else None)


__all__ = [
    "Explanation",
    "adapter_for",
    "add_grants",
    "build_enforcer",
    "bump_policy_version",
    "drop_role_grants",
    "explain",
    "grants_of_roles",
    "remove_grants",
    "role_subject",
    "user_subject",
]
