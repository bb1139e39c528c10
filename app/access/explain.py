""" "Can USER do PERMISSION in TENANT, and why?" — answered by Casbin's enforce_ex."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.access import policy, scopes
from app.access.cache import compute_access
from app.access.matrix import Describer
from app.access.permissions import PERMISSION_RE, pattern_matches
from app.core.errors import NotFound, ValidationFailed
from app.core.i18n import N_, Msg
from app.core.identifiers import normalize_email
from app.core.models import CasbinRule, Membership, Permission, Role, Tenant, User
from app.core.settings import SYSTEM_TENANT_ID
from app.plugins import runtime


@dataclass(frozen=True)
class RoleGrant:
    """A role and the grant of it that covers the permission asked about."""

    role_id: uuid.UUID
    role_name: str
    pattern: str
    platform: bool  # a role of the system tenant: its grants count in every tenant


@dataclass(frozen=True)
class ExplainResult:
    user: User
    tenant: Tenant
    permission: str
    registered: bool
    platform_scoped: bool
    allowed: bool
    rule: tuple[str, ...] | None  # the Casbin policy line that matched (the API shows it; pages do not)
    role_name: str | None
    reason: str  # a Msg: the answer in words, with role names (pages translate it)
    effective: list[str]
    description: Any = None  # what the permission allows (a msgid, Msg or Label), None when unregistered
    granted_by: RoleGrant | None = None
    would_grant: list[RoleGrant] = field(default_factory=list)  # when denied: roles that grant it
    # Only when allowed, for db.<entity>.<op> of an entity enabled in the tenant: rows do not matter otherwise.
    scope: ScopeExplanation | None = None


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
        return {  # messages as their English text
            "entity": self.entity,
            "rule": str(self.rule),
            "source": str(self.source),
            "owners": self.owners,
            "unit": self.unit,
            "reason": str(self.reason),
        }


MAX_NAMED_OWNERS = 20


async def explain_scope(
    session: AsyncSession, tenant: Tenant, user: User, entity: Any, bypass: bool
) -> ScopeExplanation:
    """Which rows the user's data scope admits. Texts are messages (`N_` with parameters): English as
    strings (the API), in the reader's language on the explain page."""
    if bypass:
        return ScopeExplanation(
            entity.name,
            "all",
            N_("Admins bypass data scopes"),
            [],
            None,
            N_(
                "All rows of %(tenant)s: %(user)s is an administrator, who bypass data scopes.",
                tenant=tenant.slug,
                user=user.email,
            ),
        )
    data = await scopes.load_user_data(session, tenant.id, user.id)
    rule, source = data.rule_for(entity.name)
    spec = entity.spec
    owners: list[uuid.UUID] = []
    users: dict[uuid.UUID, User] = {}
    who = user.display_name
    what: str
    if rule.kind == "all":
        what = N_("All rows of %(tenant)s", tenant=tenant.slug)
    else:
        owners = (
            [user.id] if rule.kind == "own" else await scopes.subordinate_ids(session, tenant.id, user.id)
        )
        users = {u.id: u for u in (await session.scalars(select(User).where(User.id.in_(owners)))).all()}
        names: str = ", ".join(
            users[o].display_name if o in users else str(o) for o in owners[:MAX_NAMED_OWNERS]
        )
        if len(owners) > MAX_NAMED_OWNERS:
            names = N_("%(names)s and %(n)s more", names=names, n=len(owners) - MAX_NAMED_OWNERS)
        count = N_("1 user") if len(owners) == 1 else N_("%(n)s users", n=len(owners))
        by_field = spec.owner_column != "created_by"
        if rule.kind == "own":
            what = (
                N_("Rows whose %(field)s is %(user)s", field=spec.owner_column, user=who)
                if by_field
                else N_("Rows owned by %(user)s only", user=who)
            )
        else:
            what = (
                N_(
                    "Rows whose %(field)s is in the subtree of %(user)s: %(names)s (%(count)s)",
                    field=spec.owner_column,
                    user=who,
                    names=names,
                    count=count,
                )
                if by_field
                else N_(
                    "Rows owned by the subtree of %(user)s: %(names)s (%(count)s)",
                    user=who,
                    names=names,
                    count=count,
                )
            )
    unit = None
    if rule.by_unit and spec.unit_field:
        unit = data.unit
        what = (
            N_(
                "%(what)s, and only those whose %(field)s is '%(unit)s' (%(user)s's unit)",
                what=what,
                field=spec.unit_field,
                unit=unit,
                user=who,
            )
            if unit
            else N_("%(what)s, but %(user)s has no unit, so no rows at all", what=what, user=who)
        )
    elif rule.by_unit:
        what = N_(
            "%(what)s (the unit narrowing does not apply: %(entity)s names no unit_field)",
            what=what,
            entity=entity.name,
        )
    label = N_("%(kind)s within their unit", kind=Msg(rule.kind, {})) if rule.by_unit else rule.kind
    return ScopeExplanation(
        entity.name,
        label,
        source,
        [users[o].email for o in owners if o in users],
        unit,
        N_("%(what)s — from %(source)s.", what=what, source=source),
    )


NOT_A_MEMBER = N_("No member of this tenant has that name, email or id.")
# What a permission lets someone do, to complete "<user> may …": a plugin entity's operations in words,
# anything else by its description.
ENTITY_ACTIONS: dict[str, str] = {
    "select": N_("view %(entity)s records"),
    "insert": N_("create %(entity)s records"),
    "update": N_("edit %(entity)s records"),
    "delete": N_("delete %(entity)s records"),
}


async def find_subject(session: AsyncSession, tenant: Tenant, ref: str, any_user: bool) -> User | None:
    """The user to explain: a member of the tenant by email, id or display name; by email or id anyone
    only for platform admins (`any_user`).

    An email or id costs one query either way, so an account that exists elsewhere and one that does not
    exist at all get the same answer in the same time: a tenant admin must not learn which emails have
    accounts here. Names are looked up among the tenant's members only, and must name exactly one.
    """
    ref = ref.strip()
    if not ref or len(ref) > 254 or any(ord(ch) < 32 for ch in ref):
        return None
    member = (Membership.user_id == User.id) & (Membership.tenant_id == tenant.id)
    cond: ColumnElement[bool] | None
    try:
        cond = User.id == uuid.UUID(ref)
    except ValueError:
        cond = User.email == normalize_email(ref) if "@" in ref else None
    if cond is None:
        named = (
            await session.scalars(
                select(User)
                .join(Membership, member)
                .where(func.lower(User.display_name) == ref.lower())
                .limit(2)
            )
        ).all()
        if len(named) > 1:
            raise ValidationFailed(
                {
                    "user": N_(
                        "Several members are called %(name)s: pick one from the list or enter the email.",
                        name=ref,
                    )
                }
            )
        return named[0] if named else None
    stmt = select(User).where(cond)
    if not any_user:
        stmt = stmt.join(Membership, member)
    # Bound first: returned directly, the call loses its overload's type (mypy picks the Any one).
    found = await session.scalar(stmt)
    return found


async def roles_granting(session: AsyncSession, domain: str, permission: str) -> list[RoleGrant]:
    """The roles of the tenant `domain` (a tenant id) whose grants cover `permission`, custom roles first."""
    lines = (
        await session.execute(
            select(CasbinRule.v0, CasbinRule.v2).where(CasbinRule.ptype == "p", CasbinRule.v1 == domain)
        )
    ).all()
    covering: dict[uuid.UUID, str] = {}
    for subject, pattern in lines:
        if subject and pattern and pattern_matches(pattern, permission):
            rid = uuid.UUID(subject.removeprefix("role:"))
            if rid not in covering or pattern == permission:  # the exact grant names it best
                covering[rid] = pattern
    if not covering:
        return []
    found = (await session.scalars(select(Role).where(Role.id.in_(list(covering))))).all()
    found = sorted(found, key=lambda r: (r.builtin is not None, r.name.lower()))
    return [RoleGrant(r.id, r.name, covering[r.id], domain == SYSTEM_TENANT_ID) for r in found]


def action_of(permission: str, description: Any, describe: Describer) -> str:
    """`permission` as what "<user> may …" goes on with."""
    parts = permission.split(".")
    if len(parts) == 3 and parts[0] == "db" and parts[2] in ENTITY_ACTIONS and parts[1] in describe.specs:
        return N_(ENTITY_ACTIONS[parts[2]], entity=describe.label(parts[1]))
    if description is None:
        return N_("use %(permission)s", permission=permission)
    return N_("use “%(description)s”", description=description)


async def explain_permission(
    session: AsyncSession, tenant: Tenant, user_ref: str, permission: str, *, any_user: bool = False
) -> ExplainResult:
    """Why `user_ref` may or may not do `permission` in `tenant`, in words with role names. Only members of
    the tenant are explained (NotFound for anyone else, existing or not) unless `any_user` (the asker is
    platform staff)."""
    permission = permission.strip()
    errors: dict[str, str] = {}
    if not user_ref.strip():
        errors["user"] = N_("Enter the name or email of a member of this tenant.")
    if not PERMISSION_RE.match(permission):
        errors["permission"] = N_("Enter a permission such as db.roles.select or ui.admin.explain.")
    if errors:
        raise ValidationFailed(errors)
    user = await find_subject(session, tenant, user_ref, any_user)
    if user is None:
        raise NotFound(NOT_A_MEMBER)
    perm_row = await session.scalar(select(Permission).where(Permission.code == permission))
    platform = perm_row is not None and perm_row.scope == "platform"
    found = await policy.explain(session, user.id, tenant.id, permission, platform=platform)
    access = await compute_access(session, user.id, tenant.id)
    codes = (await session.scalars(select(Permission.code))).all()
    plugins = await runtime.enabled_for(session, tenant.id)
    describe = Describer(plugins)
    description = describe(perm_row) if perm_row is not None else None
    action = action_of(permission, description, describe)
    who = user.display_name or user.email
    granted_by = None
    would_grant: list[RoleGrant] = []
    if found.allowed and found.rule:
        role = await session.get(Role, uuid.UUID(found.rule[0].removeprefix("role:")))
        # Casbin names the first line that matched; the role's most specific one says it best (and
        # does not depend on the order the lines were stored in): the exact grant, else the longest.
        lines = await policy.grants_of_roles(session, [role.id] if role else [])
        covering = [p for _, d, p in lines if d == found.rule[1] and pattern_matches(p, permission)]
        granted_by = RoleGrant(
            role.id if role else uuid.UUID(int=0),
            role.name if role else found.rule[0],
            max(covering, key=lambda p: (p == permission, len(p)), default=found.rule[2]),
            found.rule[1] == SYSTEM_TENANT_ID,
        )
        params = {"user": who, "action": action, "role": granted_by.role_name, "grant": granted_by.pattern}
        reason = (
            N_(
                "%(user)s may %(action)s because of the platform role %(role)s (grant %(grant)s), "
                "which counts in every tenant.",
                **params,
            )
            if granted_by.platform and tenant.id != uuid.UUID(SYSTEM_TENANT_ID)
            else N_("%(user)s may %(action)s because of the role %(role)s (grant %(grant)s).", **params)
        )
    else:
        would_grant = await roles_granting(
            session, SYSTEM_TENANT_ID if platform else str(tenant.id), permission
        )
        if not access.is_member and not access.is_platform_member:
            reason = N_(
                "%(user)s may not %(action)s: they are not a member of %(tenant)s.",
                user=who,
                action=action,
                tenant=tenant.slug,
            )
        elif platform:
            reason = N_(
                "%(user)s may not %(action)s: it is a platform permission, which only a role of the system "
                "tenant can grant, and theirs there does not.",
                user=who,
                action=action,
            )
        elif access.role_name and access.system_role_name:
            reason = N_(
                "%(user)s may not %(action)s: neither their role %(role)s nor their platform role "
                "%(platform_role)s grants it.",
                user=who,
                action=action,
                role=access.role_name,
                platform_role=access.system_role_name,
            )
        else:
            reason = N_(
                "%(user)s may not %(action)s: their role %(role)s does not grant it.",
                user=who,
                action=action,
                role=access.role_name or access.system_role_name,
            )
    scope = None
    parts = permission.split(".")
    if found.allowed and parts[0] == "db" and len(parts) == 3:  # rows matter only when it is allowed
        entity = runtime.find_entity(plugins, parts[1])
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
        role_name=granted_by.role_name if granted_by else None,
        reason=reason,
        effective=access.permissions.effective(codes),
        description=description,
        granted_by=granted_by,
        would_grant=would_grant,
        scope=scope,
    )
