"""Per-worker cache of compiled permission sets, invalidated by the tenants' policy versions.

Every request already loads its tenant row and the system tenant row; their `policy_version`
values form the cache key, so a grant made through one worker is seen by all others on their
next request, with no extra query.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.permissions import Grant, PermissionSet, platform_codes
from app.access.policy import grants_of_roles
from app.core.models import Membership, Role
from app.core.settings import SYSTEM_TENANT_ID

SYSTEM_UUID = uuid.UUID(SYSTEM_TENANT_ID)


@dataclass(frozen=True)
class Access:
    """What a user holds in one tenant: their role there (if a member) and their permissions."""

    role_id: uuid.UUID | None
    role_name: str | None
    system_role_name: str | None
    permissions: PermissionSet
    role_builtin: str | None = None  # 'admin' for tenant Admins (they bypass data scopes)
    system_role_builtin: str | None = None  # 'admin' for platform admins

    @property
    def bypasses_scopes(self) -> bool:
        """Tenant Admins and platform admins see every row regardless of data scopes."""
        return "admin" in (self.role_builtin, self.system_role_builtin)

    @property
    def is_member(self) -> bool:
        return self.role_id is not None

    @property
    def is_platform_member(self) -> bool:
        return self.system_role_name is not None


async def compute_access(session: AsyncSession, user_id: uuid.UUID, tenant_id: uuid.UUID) -> Access:
    rows = (
        await session.execute(
            select(Membership.tenant_id, Role.id, Role.name, Role.builtin)
            .join(Role, Role.id == Membership.role_id)
            .where(Membership.user_id == user_id, Membership.tenant_id.in_({tenant_id, SYSTEM_UUID}))
        )
    ).all()
    roles = {t: (rid, name) for t, rid, name, _ in rows}
    builtin = {t: b for t, _, _, b in rows}
    lines = await grants_of_roles(session, [rid for rid, _ in roles.values()])
    names = {f"role:{rid}": name for rid, name in roles.values()}
    tenant_role = roles.get(tenant_id)
    system_role = roles.get(SYSTEM_UUID)

    def grants_in(domain: uuid.UUID) -> tuple[Grant, ...]:
        role = roles.get(domain)
        if role is None:
            return ()
        subject = f"role:{role[0]}"
        return tuple(
            Grant(obj, sub.removeprefix("role:"), names[sub], dom)
            for sub, dom, obj in lines
            if sub == subject and dom == str(domain)
        )

    perms = PermissionSet(
        tenant_grants=grants_in(tenant_id) if tenant_id != SYSTEM_UUID else (),
        system_grants=grants_in(SYSTEM_UUID),
        platform_codes=await platform_codes(session),
    )
    return Access(
        role_id=tenant_role[0] if tenant_role else None,
        role_name=tenant_role[1] if tenant_role else None,
        system_role_name=system_role[1] if system_role else None,
        permissions=perms,
        role_builtin=builtin.get(tenant_id),
        system_role_builtin=builtin.get(SYSTEM_UUID),
    )


class PermissionCache:
    """Per worker: each (user, tenant)'s Access under the tenant's and the system tenant's policy versions.
    Invalidation is by those versions (bumped by every grant, role or membership change, read with every
    request), never by clearing: a clear() in one worker would not reach the others."""

    def __init__(self, max_entries: int = 20_000) -> None:
        self._entries: OrderedDict[tuple[uuid.UUID, uuid.UUID], tuple[tuple[int, int], Access]] = (
            OrderedDict()
        )
        self._max = max_entries
        self.rebuilds = 0

    async def access(
        self, session: AsyncSession, user_id: uuid.UUID, tenant_id: uuid.UUID, versions: tuple[int, int]
    ) -> Access:
        key = (user_id, tenant_id)
        hit = self._entries.get(key)
        if hit is not None and hit[0] == versions:
            self._entries.move_to_end(key)
            return hit[1]
        access = await compute_access(session, user_id, tenant_id)
        self.rebuilds += 1
        self._entries[key] = (versions, access)
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return access
