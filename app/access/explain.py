""" "Can USER do PERMISSION in TENANT, and why?" — answered by Casbin's enforce_ex."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.access import policy, scopes
from app.access.cache import compute_access
from app.access.permissions import PERMISSION_RE
from app.core.errors import NotFound, ValidationFailed
from app.core.identifiers import normalize_email
from app.core.models import Membership, Permission, Role, Tenant, User
from app.core.settings import SYSTEM_TENANT_ID
from app.plugins import runtime


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
    scope: ScopeExplanation | None = None  # for db.<entity>.<op> of an entity enabled in the tenant


@dataclass(frozen=True)
class ScopeExplanation:
    """Which rows of an entity the user's data scope admits, and why."""

    entity: str
    rule: str  # e.g. "subtree within their unit"; "all" when bypassing
    source: str  # e.g. "role Sales default scope"
    owners: list[str]  # emails of the users whose rows are admitted (subtree/own), nearest first
    unit: str | None  # the member's unit when the rule narrows by unit
    reason: str

    def as_json(self) -> dict[str, object]:
        return {
            "entity": self.entity,
            "rule": self.rule,
            "source": self.source,
            "owners": self.owners,
            "unit": self.unit,
            "reason": self.reason,
        }


MAX_NAMED_OWNERS = 20


async def explain_scope(
    session: AsyncSession, tenant: Tenant, user: User, entity: Any, bypass: bool
) -> ScopeExplanation:
    if bypass:
        return ScopeExplanation(
            entity.name,
            "all",
            "Admins bypass data scopes",
            [],
            None,
            f"All rows of {tenant.slug}: {user.email} is an administrator, who bypass data scopes.",
        )
    data = await scopes.load_user_data(session, tenant.id, user.id)
    rule, source = data.rule_for(entity.name)
    spec = entity.spec
    owners: list[uuid.UUID] = []
    users: dict[uuid.UUID, User] = {}
    if rule.kind == "all":
        what = f"all rows of {tenant.slug}"
    else:
        owners = (
            [user.id] if rule.kind == "own" else await scopes.subordinate_ids(session, tenant.id, user.id)
        )
        users = {u.id: u for u in (await session.scalars(select(User).where(User.id.in_(owners)))).all()}
        names = [users[o].display_name if o in users else str(o) for o in owners[:MAX_NAMED_OWNERS]]
        more = f" and {len(owners) - MAX_NAMED_OWNERS} more" if len(owners) > MAX_NAMED_OWNERS else ""
        count = f"{len(owners)} user{'s' if len(owners) != 1 else ''}"
        owner_field = f" by {spec.owner_column}" if spec.owner_column != "created_by" else ""
        what = (
            f"rows owned{owner_field} by {user.display_name} only"
            if rule.kind == "own"
            else f"rows owned{owner_field} by the subtree of {user.display_name}: {', '.join(names)}{more} ({count})"
        )
    unit = None
    if rule.by_unit and spec.unit_field:
        unit = data.unit
        what += (
            f", and only those whose {spec.unit_field} is {unit!r} ({user.display_name}'s unit)"
            if unit
            else f", but {user.display_name} has no unit, so no rows at all"
        )
    elif rule.by_unit:
        what += f" (the unit narrowing does not apply: {entity.name} names no unit_field)"
    return ScopeExplanation(
        entity.name,
        rule.label,
        source,
        [users[o].email for o in owners if o in users],
        unit,
        f"{what[0].upper()}{what[1:]} — from {source}.",
    )


NOT_A_MEMBER = "No member of this tenant has that email or id."


async def _find_subject(session: AsyncSession, tenant: Tenant, ref: str, any_user: bool) -> User | None:
    """The user to explain: a member of the tenant, by email or id; anyone only for platform admins.

    One query either way, so an account that exists elsewhere and one that does not exist at all get
    the same answer in the same time: a tenant admin must not learn which emails have accounts here.
    """
    ref = ref.strip()
    if len(ref) > 254 or any(ord(ch) < 32 for ch in ref):
        return None
    try:
        cond = User.id == uuid.UUID(ref)
    except ValueError:
        cond = User.email == normalize_email(ref)
    stmt = select(User).where(cond)
    if not any_user:
        stmt = stmt.join(Membership, (Membership.user_id == User.id) & (Membership.tenant_id == tenant.id))
    # Bound first: returned directly, the call loses its overload's type (mypy picks the Any one).
    found = await session.scalar(stmt)
    return found


async def explain_permission(
    session: AsyncSession, tenant: Tenant, user_ref: str, permission: str, *, any_user: bool = False
) -> ExplainResult:
    """Why `user_ref` may or may not do `permission` in `tenant`. Only members of the tenant are
    explained (NotFound for anyone else, existing or not) unless `any_user` (the asker is platform staff)."""
    permission = permission.strip()
    errors: dict[str, str] = {}
    if not user_ref.strip():
        errors["user"] = "Enter the email or id of a member of this tenant."
    if not PERMISSION_RE.match(permission):
        errors["permission"] = "Enter a permission such as db.roles.select or ui.admin.menu."
    if errors:
        raise ValidationFailed(errors)
    user = await _find_subject(session, tenant, user_ref, any_user)
    if user is None:
        raise NotFound(NOT_A_MEMBER)
    perm_row = await session.scalar(select(Permission).where(Permission.code == permission))
    platform = perm_row is not None and perm_row.scope == "platform"
    found = await policy.explain(session, user.id, tenant.id, permission, platform=platform)
    access = await compute_access(session, user.id, tenant.id)
    codes = (await session.scalars(select(Permission.code))).all()
    role_name = rule_tenant = None
    if found.rule:
        role = await session.get(Role, uuid.UUID(found.rule[0].removeprefix("role:")))
        role_name = role.name if role else found.rule[0]
        rule_tenant = (
            "the system tenant (applies in every tenant)"
            if found.rule[1] == SYSTEM_TENANT_ID
            else tenant.slug
        )
    if found.allowed and found.rule:
        how = "exactly" if found.rule[2] == permission else f"through the wildcard '{found.rule[2]}'"
        reason = f"Allowed: role {role_name} in {rule_tenant} grants it {how} (policy line: p, {', '.join(found.rule)})."
    elif not access.is_member and not access.is_platform_member:
        reason = f"Denied: {user.email} is not a member of {tenant.slug}."
    elif platform:
        reason = (
            f"Denied: {permission} is a platform permission; only a role in the system tenant can grant it, "
            "and none of this user's roles there does."
        )
    else:
        held = ", ".join(filter(None, [access.role_name, access.system_role_name])) or "none"
        reason = f"Denied: no policy line of the user's roles ({held}) matches {permission}."
    scope = None
    parts = permission.split(".")
    if parts[0] == "db" and len(parts) == 3:
        entity = runtime.find_entity(await runtime.enabled_for(session, tenant.id), parts[1])
        if entity is not None:
            scope = await explain_scope(session, tenant, user, entity, access.bypasses_scopes)
    return ExplainResult(
        user=user,
        tenant=tenant,
        permission=permission,
        registered=perm_row is not None,
        platform_scoped=platform,
        allowed=found.allowed,
        rule=found.rule,
        role_name=role_name,
        rule_tenant=rule_tenant,
        reason=reason,
        effective=access.permissions.effective(codes),
        scope=scope,
    )
