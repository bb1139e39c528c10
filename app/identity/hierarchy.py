"""Reporting lines within a tenant (a member's manager) and members' units.

Any depth; a manager must be a member of the same tenant; cycles are refused. Every change bumps the
tenant's `hierarchy_version`, so data scopes cached in any worker are recomputed at once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app import audit
from app.access.scopes import bump_hierarchy_version, normalize_unit, subtree_select
from app.audit import Actor
from app.core.errors import NotFound, ValidationFailed
from app.core.i18n import N_
from app.core.identifiers import normalize_email, text_problem
from app.core.models import Membership, User

MAX_CHAIN = 10_000  # a guard for walking up; real chains are far shorter


@dataclass(frozen=True)
class Reporting:
    user_id: uuid.UUID
    email: str
    manager_id: uuid.UUID | None
    manager_email: str | None
    unit: str | None


async def _membership(session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID) -> Membership:
    m = await session.scalar(
        sa.select(Membership).where(Membership.tenant_id == tenant_id, Membership.user_id == user_id)
    )
    if m is None:
        raise NotFound(N_("That user is not a member of this tenant"))
    return m


async def resolve_member(session: AsyncSession, tenant_id: uuid.UUID, ref: str, field: str) -> User:
    """A member of the tenant by email or user id; a clear error on the named field otherwise."""
    ref = ref.strip()
    if len(ref) > 254 or any(ord(ch) < 32 for ch in ref):
        raise ValidationFailed({field: N_("Enter the email or user id of a member of this tenant.")})
    try:
        cond = User.id == uuid.UUID(ref)
    except ValueError:
        cond = User.email == normalize_email(ref)
    # One query, one message: whether an outsider's email has an account elsewhere is not told here.
    user = await session.scalar(
        sa.select(User)
        .where(cond)
        .join(Membership, (Membership.user_id == User.id) & (Membership.tenant_id == tenant_id))
    )
    if user is None:
        raise ValidationFailed(
            {field: N_("%(ref)s is not a member of this tenant; a manager must be one.", ref=repr(ref))}
        )
    return user


async def chain_above(session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID) -> list[uuid.UUID]:
    """The managers above a member, nearest first (stops on a cycle); one indexed lookup per level."""
    out: list[uuid.UUID] = []
    current: uuid.UUID | None = user_id
    seen = {user_id}
    while current is not None and len(out) < MAX_CHAIN:
        current = await session.scalar(
            sa.select(Membership.manager_id).where(
                Membership.tenant_id == tenant_id, Membership.user_id == current
            )
        )
        if current is None or current in seen:
            break
        seen.add(current)
        out.append(current)
    return out


async def _emails(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    rows = (await session.execute(sa.select(User.id, User.email).where(User.id.in_(ids)))).all()
    return {uid: email for uid, email in rows}


async def set_manager(
    session: AsyncSession, actor: Actor, tenant_id: uuid.UUID, user_id: uuid.UUID, manager_ref: str | None
) -> Membership:
    """Set (or, with an empty ref, clear) who a member reports to. Refuses cycles and non-members."""
    member = await _membership(session, tenant_id, user_id)
    manager: User | None = None
    if manager_ref and manager_ref.strip():
        manager = await resolve_member(session, tenant_id, manager_ref, "manager")
    if (manager.id if manager else None) == member.manager_id:
        return member
    # Lock (PostgreSQL) and invalidate first, so a concurrent move is checked against this one.
    await bump_hierarchy_version(session, tenant_id)
    emails = await _emails(
        session,
        [user_id, *([manager.id] if manager else []), *([member.manager_id] if member.manager_id else [])],
    )
    if manager is not None:
        if manager.id == user_id:
            raise ValidationFailed({"manager": N_("A member cannot be their own manager.")})
        below = set((await session.scalars(subtree_select(tenant_id, user_id))).all())
        if manager.id in below:
            path = [manager.id]
            for above in await chain_above(session, tenant_id, manager.id):
                path.append(above)
                if above == user_id:
                    break
            names = await _emails(session, path)
            chain = " → ".join(names.get(p, str(p)) for p in path)
            raise ValidationFailed(
                {
                    "manager": (
                        N_(
                            "%(emails)s already reports to %(emails2)s (%(chain)s); making them their manager would create a cycle.",
                            emails=emails[manager.id],
                            emails2=emails[user_id],
                            chain=chain,
                        )
                    )
                }
            )
    before = emails.get(member.manager_id) if member.manager_id else None
    member.manager_id = manager.id if manager else None
    await session.flush()
    after = manager.email if manager else None
    await audit.record(
        session,
        actor,
        "member.manager",
        "tenant_user",
        user_id,
        tenant_id=tenant_id,
        summary=(
            f"{emails[user_id]} now reports to {after}" if after else f"{emails[user_id]} reports to no one"
        ),
        before={"manager": before},
        after={"manager": after},
    )
    return member


async def set_unit(
    session: AsyncSession, actor: Actor, tenant_id: uuid.UUID, user_id: uuid.UUID, unit: str | None
) -> Membership:
    member = await _membership(session, tenant_id, user_id)
    if unit and (problem := text_problem(unit, "unit", 100, required=False)):
        raise ValidationFailed({"unit": problem})
    value = normalize_unit(unit)
    if value == member.unit:
        return member
    before = member.unit
    member.unit = value
    await session.flush()
    await bump_hierarchy_version(session, tenant_id)
    user = await session.get(User, user_id)
    await audit.record(
        session,
        actor,
        "member.unit",
        "tenant_user",
        user_id,
        tenant_id=tenant_id,
        summary=f"Unit of {user.email if user else user_id} set to {value or 'none'}",
        before={"unit": before},
        after={"unit": value},
    )
    return member


async def detach(session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID) -> int:
    """Before a member leaves: their reports move up to the leaver's own manager. Returns how many moved."""
    member = await _membership(session, tenant_id, user_id)
    moved = (
        cast(
            sa.CursorResult[Any],
            await session.execute(
                sa.update(Membership)
                .where(Membership.tenant_id == tenant_id, Membership.manager_id == user_id)
                .values(manager_id=member.manager_id)
            ),
        ).rowcount
        or 0
    )
    await bump_hierarchy_version(session, tenant_id)
    return int(moved)


async def reporting_of(
    session: AsyncSession, tenant_id: uuid.UUID, user_ids: list[uuid.UUID]
) -> dict[uuid.UUID, Reporting]:
    """Manager and unit of the given members (for member lists)."""
    if not user_ids:
        return {}
    manager = aliased(User)
    rows = (
        await session.execute(
            sa.select(Membership.user_id, User.email, Membership.manager_id, manager.email, Membership.unit)
            .join(User, User.id == Membership.user_id)
            .outerjoin(manager, manager.id == Membership.manager_id)
            .where(Membership.tenant_id == tenant_id, Membership.user_id.in_(user_ids))
        )
    ).all()
    return {r[0]: Reporting(*r) for r in rows}
