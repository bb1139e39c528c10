""""Can USER do PERMISSION in TENANT, and why?" — answered by Casbin's enforce_ex."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.access import policy
from app.access.cache import compute_access
from app.access.permissions import PERMISSION_RE
from app.db.models import Permission, Role, Tenant, User
from app.errors import ValidationFailed
from app.identity import directory
from app.settings import SYSTEM_TENANT_ID


@dataclass(frozen=True)
class ExplainResult:
    user: User
    tenant: Tenant
    permission: str
    registered: bool
    platform_scoped: bool
    allowed: bool
    rule: tuple[str, ...] | None
    role_name: str | None
    rule_tenant: str | None
    reason: str
    effective: list[str]


async def explain_permission(session: AsyncSession, tenant: Tenant, user_ref: str, permission: str) -> ExplainResult:
    errors: dict[str, str] = {}
    user = await directory.find_user(session, user_ref) if user_ref else None
    if user is None:
        errors["user"] = f"No user with the email {user_ref!r}." if user_ref else "Enter a user's email."
    permission = permission.strip()
    if not PERMISSION_RE.match(permission):
        errors["permission"] = "Enter a permission such as db.roles.select or ui.admin.menu."
    if errors:
        raise ValidationFailed(errors)
    assert user is not None
    perm_row = await session.scalar(select(Permission).where(Permission.code == permission))
    platform = perm_row is not None and perm_row.scope == "platform"
    found = await policy.explain(session, user.id, tenant.id, permission, platform=platform)
    access = await compute_access(session, user.id, tenant.id)
    codes = (await session.scalars(select(Permission.code))).all()
    role_name = rule_tenant = None
    if found.rule:
        role = await session.get(Role, uuid.UUID(found.rule[0].removeprefix("role:")))
        role_name = role.name if role else found.rule[0]
        rule_tenant = "the system tenant (applies in every tenant)" if found.rule[1] == SYSTEM_TENANT_ID else tenant.slug
    if found.allowed and found.rule:
        how = "exactly" if found.rule[2] == permission else f"through the wildcard '{found.rule[2]}'"
        reason = f"Allowed: role {role_name} in {rule_tenant} grants it {how} (policy line: p, {', '.join(found.rule)})."
    elif not access.is_member and not access.is_platform_member:
        reason = f"Denied: {user.email} is not a member of {tenant.slug}."
    elif platform:
        reason = (f"Denied: {permission} is a platform permission; only a role in the system tenant can grant it, "
                  "and none of this user's roles there does.")
    else:
        held = ", ".join(filter(None, [access.role_name, access.system_role_name])) or "none"
        reason = f"Denied: no policy line of the user's roles ({held}) matches {permission}."
    return ExplainResult(user=user, tenant=tenant, permission=permission, registered=perm_row is not None,
                         platform_scoped=platform, allowed=found.allowed, rule=found.rule, role_name=role_name,
                         rule_tenant=rule_tenant, reason=reason, effective=access.permissions.effective(codes))
