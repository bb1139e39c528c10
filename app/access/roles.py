"""Roles of a tenant and their grants (the role–permission matrix)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.access import policy
from app.access.permissions import is_valid_grant
from app.audit import Actor
from app.core.errors import Conflict, ConflictingValues, NotFound, ValidationFailed
from app.core.i18n import N_
from app.core.identifiers import text_problem
from app.core.models import Membership, Role

ADMIN, MEMBER = "admin", "member"


async def create_default_roles(session: AsyncSession, tenant_id: uuid.UUID) -> tuple[Role, Role]:
    """Every tenant starts with Admin (everything, including permissions registered later) and Member."""
    admin = Role(
        tenant_id=tenant_id, name="Admin", description=N_("All permissions in this tenant"), builtin=ADMIN
    )
    member = Role(
        tenant_id=tenant_id,
        name="Member",
        description=N_("Read-only access to business data"),
        builtin=MEMBER,
    )
    session.add_all([admin, member])
    await session.flush()
    await policy.add_grants(session, tenant_id, admin.id, ["*"])
    return admin, member


async def list_roles(session: AsyncSession, tenant_id: uuid.UUID) -> list[tuple[Role, int]]:
    counts = (
        select(Membership.role_id, func.count().label("n"))
        .where(Membership.tenant_id == tenant_id)
        .group_by(Membership.role_id)
    ).subquery()
    rows = await session.execute(
        select(Role, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.role_id == Role.id)
        .where(Role.tenant_id == tenant_id)
        .order_by(Role.builtin.is_(None), Role.name)
    )
    return [(r, int(n)) for r, n in rows.all()]


@functools.cache
def _roles_statement() -> Any:
    tenant_id: Any = bindparam("tenant_id")
    return select(Role).where(Role.tenant_id == tenant_id).order_by(Role.builtin.is_(None), Role.name)


async def tenant_roles(session: AsyncSession, tenant_id: uuid.UUID) -> list[Role]:
    """The tenant's roles in `list_roles`' order, without their member counts (a role picker's options):
    one statement built once, run with the tenant's id."""
    return list((await session.scalars(_roles_statement(), {"tenant_id": tenant_id})).all())


async def get_role(session: AsyncSession, tenant_id: uuid.UUID, role_ref: uuid.UUID | str) -> Role:
    if isinstance(role_ref, str) and ("\x00" in role_ref or len(role_ref) > 200):
        raise NotFound(N_("No such role in this tenant"))
    try:
        rid = role_ref if isinstance(role_ref, uuid.UUID) else uuid.UUID(str(role_ref))
        role = await session.scalar(select(Role).where(Role.tenant_id == tenant_id, Role.id == rid))
    except ValueError:
        role = await session.scalar(
            select(Role).where(Role.tenant_id == tenant_id, Role.name == str(role_ref))
        )
    if role is None:
        raise NotFound(N_("No role %(role_ref)s in this tenant", role_ref=repr(role_ref)))
    return role


async def _check_name(
    session: AsyncSession, tenant_id: uuid.UUID, name: str, exclude: uuid.UUID | None = None
) -> str:
    name = name.strip()
    problem = text_problem(name, "role name", 100)
    if problem:
        raise ValidationFailed({"name": problem})
    # SQLite's lower() folds ASCII only: the exact comparison catches a non-ASCII name given twice.
    same = (func.lower(Role.name) == name.lower()) | (Role.name == name)
    clash = await session.scalar(
        select(Role.id).where(Role.tenant_id == tenant_id, same, Role.id != exclude)
        if exclude
        else select(Role.id).where(Role.tenant_id == tenant_id, same)
    )
    if clash:
        raise ConflictingValues(
            {"name": N_("A role named '%(name)s' already exists in this tenant.", name=name)}
        )
    return name


async def create_role(
    session: AsyncSession, actor: Actor, tenant_id: uuid.UUID, name: str, description: str = ""
) -> Role:
    name = await _check_name(session, tenant_id, name)
    if problem := text_problem(description, "description", 500, required=False):
        raise ValidationFailed({"description": problem})
    role = Role(tenant_id=tenant_id, name=name, description=description.strip())
    session.add(role)
    await session.flush()
    await audit.record(
        session,
        actor,
        "role.create",
        "role",
        role.id,
        tenant_id=tenant_id,
        summary=f"Created role {name}",
        after={"name": name, "description": role.description},
    )
    return role


async def update_role(session: AsyncSession, actor: Actor, role: Role, name: str, description: str) -> Role:
    before = {"name": role.name, "description": role.description}
    new_name = await _check_name(session, role.tenant_id, name, exclude=role.id)
    if problem := text_problem(description, "description", 500, required=False):
        raise ValidationFailed({"description": problem})
    role.name, role.description = new_name, description.strip()
    await session.flush()
    await policy.bump_policy_version(session, role.tenant_id)  # cached Access carries role names
    await policy.bump_directory_version(session)  # so do cached tenant switchers
    await audit.record(
        session,
        actor,
        "role.update",
        "role",
        role.id,
        tenant_id=role.tenant_id,
        summary=f"Updated role {new_name}",
        before=before,
        after={"name": role.name, "description": role.description},
    )
    return role


async def delete_role(session: AsyncSession, actor: Actor, role: Role) -> None:
    if role.builtin:
        raise Conflict(N_("The built-in role %(name)s cannot be deleted", name=role.name))
    assigned = await session.scalar(
        select(func.count()).select_from(Membership).where(Membership.role_id == role.id)
    )
    if assigned:
        raise Conflict(
            N_(
                "Role %(name)s is still assigned to %(n)s member(s); change their role first",
                name=role.name,
                n=assigned,
            )
        )
    grants = [p for _, _, p in await policy.grants_of_roles(session, [role.id])]
    await policy.drop_role_grants(session, role.tenant_id, role.id)
    await session.delete(role)
    await session.flush()
    await audit.record(
        session,
        actor,
        "role.delete",
        "role",
        role.id,
        tenant_id=role.tenant_id,
        summary=f"Deleted role {role.name}",
        before={"name": role.name, "grants": grants},
    )


async def role_grants(session: AsyncSession, role: Role) -> list[str]:
    return [p for _, _, p in await policy.grants_of_roles(session, [role.id])]


async def set_role_grants(
    session: AsyncSession, actor: Actor, role: Role, patterns: Iterable[str]
) -> tuple[list[str], list[str]]:
    """Make the role grant exactly `patterns`; returns (added, removed).

    The built-in Admin role keeps `*`: without it every Admin of the tenant would lose everything at once,
    which the last-Admin rules (app.identity.directory) exist to prevent."""
    wanted = sorted({p.strip() for p in patterns if p.strip()})
    bad = [p for p in wanted if not is_valid_grant(p)]
    if bad:
        raise ValidationFailed(
            {
                "permissions": N_(
                    "Not a permission or wildcard: %(patterns)s. A wildcard may only end a grant: "
                    "db.purchase_order.*, db.*, ui.*, plugin:* or *.",
                    patterns=", ".join(bad[:5]),
                )
            }
        )
    current = set(await role_grants(session, role))
    if role.builtin == ADMIN and "*" in current and "*" not in wanted:
        raise ValidationFailed(
            {
                "permissions": N_(
                    "The built-in role %(name)s always grants everything (*): it is how a tenant keeps "
                    "an administrator. Give members who should have less another role.",
                    name=role.name,
                )
            }
        )
    added = [p for p in wanted if p not in current]
    removed = sorted(current - set(wanted))
    await policy.add_grants(session, role.tenant_id, role.id, added)
    await policy.remove_grants(session, role.tenant_id, role.id, removed)
    if added or removed:
        await audit.record(
            session,
            actor,
            "role.grants",
            "role",
            role.id,
            tenant_id=role.tenant_id,
            summary=f"Changed grants of {role.name}: +{len(added)} -{len(removed)}",
            before={"grants": sorted(current)},
            after={"grants": wanted},
        )
    return added, removed


async def grant(session: AsyncSession, actor: Actor, role: Role, patterns: Iterable[str]) -> list[str]:
    current = set(await role_grants(session, role))
    added, _ = await set_role_grants(session, actor, role, current | set(patterns))
    return added


async def revoke(session: AsyncSession, actor: Actor, role: Role, patterns: Iterable[str]) -> list[str]:
    current = set(await role_grants(session, role))
    _, removed = await set_role_grants(session, actor, role, current - set(patterns))
    return removed
