"""First-start set-up, part of the composition root: the system tenant, the base permission registry
(every module's permissions) and the first admin."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.access import roles
from app.access.permissions import register_permissions
from app.audit import Actor
from app.core.models import Membership, Role, Tenant
from app.core.settings import SYSTEM_TENANT_SLUG, Settings
from app.identity import directory

SYSTEM_UUID = directory.SYSTEM_UUID


@dataclass(frozen=True)
class FirstAdmin:
    email: str
    password: str | None  # set only when generated now; shown once


async def ensure_base(session: AsyncSession, settings: Settings) -> FirstAdmin | None:
    from app.installs.reserved import base_permissions

    await register_permissions(session, base_permissions(), authoritative=True)
    system = await session.get(Tenant, SYSTEM_UUID)
    actor = Actor.system()
    if system is None:
        system = await directory.create_tenant(
            session, actor, SYSTEM_TENANT_SLUG, "Platform", tenant_id=SYSTEM_UUID
        )
    has_member = await session.scalar(
        select(Membership.id).where(Membership.tenant_id == SYSTEM_UUID).limit(1)
    )
    if has_member:
        return None
    email = settings.admin_email or "admin@localhost"
    generated = None
    password = settings.admin_password
    if not password:
        generated = password = secrets.token_urlsafe(12) + "-7a"
    user = await directory.find_user(session, email)
    if user is None:
        user = await directory.create_user(session, actor, email, password, "Platform admin")
    admin_role = await session.scalar(
        select(Role).where(Role.tenant_id == SYSTEM_UUID, Role.builtin == roles.ADMIN)
    )
    assert admin_role is not None
    await directory.add_member(session, actor, SYSTEM_UUID, user, admin_role)
    return FirstAdmin(email=user.email, password=generated)
