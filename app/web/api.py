"""The JSON API (/api/v1): the same services as the pages, bearer tokens, tenant from X-Tenant."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, Router, delete, get, patch, post, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from sqlalchemy import select

from app.access import roles as role_service
from app.access import scopes
from app.access.explain import explain_permission
from app.access.permissions import PERMISSION_RE
from app.access.registry import all_permissions
from app.core.errors import ValidationFailed
from app.core.identifiers import EMAIL_RE
from app.core.models import Role, User
from app.identity import directory, hierarchy, invitations, tokens
from app.web.audit_pages import query_audit
from app.web.context import RequestContext, TenantContext
from app.web.directory_pages import add_member_from, invite_from, is_platform_admin
from app.web.render import Pager

TEXT_LINE = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"  # a name: no control characters
TENANT_HEADER = Parameter(
    header="X-Tenant", required=False, description="Tenant slug or id; defaults to your only tenant"
)


def _page(request: Request) -> Pager:
    return Pager(request)


def role_json(role: Role, members: int | None = None, grants: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": str(role.id),
        "name": role.name,
        "description": role.description,
        "builtin": role.builtin,
    }
    if members is not None:
        out["members"] = members
    if grants is not None:
        out["permissions"] = grants
    return out


# --- me ------------------------------------------------------------------------------------------


@get("/me", opt={"auth": True}, summary="The signed-in user, their tenants and effective permissions")
async def me(ctx: RequestContext, x_tenant: str | None = TENANT_HEADER) -> dict[str, Any]:
    assert ctx.user is not None
    own = await ctx.memberships()
    codes = [p.code for p in await all_permissions(ctx.db)]
    return {
        "user": directory.user_dict(ctx.user),
        "tenants": [{**directory.tenant_dict(t), "role": r.name} for t, r in own],
        "tenant": directory.tenant_dict(ctx.tenant) if ctx.tenant else None,
        "permissions": ctx.access.permissions.effective(codes) if ctx.access else [],
    }


# --- tenants (platform) --------------------------------------------------------------------------


@dataclass
class TenantIn:
    slug: str
    name: str


@dataclass
class TenantPatch:
    name: str | None = None
    is_active: bool | None = None


@get("/tenants", opt={"permission": "db.tenants.select"})
async def tenants_index(
    request: Request, ctx: RequestContext, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    p = _page(request)
    rows, total = await directory.list_tenants(ctx.db, p.q, p.offset, p.size)
    return {"items": [directory.tenant_dict(t) for t in rows], "total": total, "page": p.page, "size": p.size}


@post("/tenants", opt={"permission": "db.tenants.insert"})
async def tenants_create(
    ctx: RequestContext, data: TenantIn, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    tenant = await directory.create_tenant(ctx.db, ctx.actor, data.slug, data.name)
    return directory.tenant_dict(tenant)


@get("/tenants/{ref:str}", opt={"permission": "db.tenants.select"})
async def tenants_show(ctx: RequestContext, ref: str, x_tenant: str | None = TENANT_HEADER) -> dict[str, Any]:
    return directory.tenant_dict(await directory.get_tenant(ctx.db, ref))


@patch("/tenants/{ref:str}", opt={"permission": "db.tenants.update"})
async def tenants_update(
    ctx: RequestContext, ref: str, data: TenantPatch, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    tenant = await directory.get_tenant(ctx.db, ref)
    await directory.update_tenant(ctx.db, ctx.actor, tenant, name=data.name, is_active=data.is_active)
    return directory.tenant_dict(tenant)


# --- members -------------------------------------------------------------------------------------


@dataclass
class MemberIn:
    email: Annotated[
        str,
        msgspec.Meta(pattern=EMAIL_RE.pattern, max_length=254),
        Parameter(pattern=EMAIL_RE.pattern, max_length=254),
    ]
    role: str = "Member"
    display_name: str = ""
    password: str = ""
    manager: str | None = None  # email or user id of a member of this tenant
    unit: str | None = None


class MemberPatch(msgspec.Struct, forbid_unknown_fields=True):
    """Change a member: any of role, manager (email or user id; null or "" clears it), unit (null clears it)."""

    role: str | msgspec.UnsetType = msgspec.UNSET
    manager: str | msgspec.UnsetType | None = msgspec.UNSET
    unit: str | msgspec.UnsetType | None = msgspec.UNSET


def member_json(row: directory.MemberRow, rep: hierarchy.Reporting | None = None) -> dict[str, Any]:
    out = {**directory.user_dict(row.user), "role": row.role.name, "role_id": str(row.role.id)}
    if rep is not None:
        out |= {
            "manager_id": str(rep.manager_id) if rep.manager_id else None,
            "manager": rep.manager_email,
            "unit": rep.unit,
        }
    return out


@get("/members", opt={"permission": "db.tenant_users.select"})
async def members_index(
    request: Request, ctx: RequestContext, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    p = _page(request)
    rows, total = await directory.list_members(ctx.db, ctx.tenant_id, p.q, p.offset, p.size)
    reporting = await hierarchy.reporting_of(ctx.db, ctx.tenant_id, [r.user.id for r in rows])
    return {
        "items": [member_json(r, reporting.get(r.user.id)) for r in rows],
        "total": total,
        "page": p.page,
        "size": p.size,
    }


@get("/members/{user_id:uuid}", opt={"permission": "db.tenant_users.select"})
async def members_show(
    ctx: RequestContext, user_id: uuid.UUID, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    return await _member_out(ctx, user_id)


async def _member_out(ctx: RequestContext, user_id: uuid.UUID) -> dict[str, Any]:
    m = await directory.get_membership(ctx.db, ctx.tenant_id, user_id)
    rep = (await hierarchy.reporting_of(ctx.db, ctx.tenant_id, [user_id]))[user_id]
    out = member_json(directory.MemberRow(m, m.user, m.role), rep)
    chain = await hierarchy.chain_above(ctx.db, ctx.tenant_id, user_id)
    emails: dict[uuid.UUID, str] = {}
    if chain:
        rows = (await ctx.db.execute(select(User.id, User.email).where(User.id.in_(chain)))).all()
        emails = {uid: email for uid, email in rows}
    out["reports_to"] = [emails.get(uid, str(uid)) for uid in chain]  # nearest manager first
    return out


@post(
    "/members",
    opt={"permission": "db.tenant_users.insert"},
    responses={202: ResponseSpec(dict[str, Any], description="Not a user yet: invited by email")},
)
async def members_create(
    ctx: TenantContext, data: MemberIn, x_tenant: str | None = TENANT_HEADER
) -> Response[dict[str, Any]]:
    """Platform admins add the member directly (201, the member). Anyone else invites: 202 with the
    invitation, the same answer whether or not an account has the email (see app.identity.invitations)."""
    values = {
        "email": data.email,
        "role": data.role,
        "display_name": data.display_name,
        "password": data.password,
        "manager": data.manager or "",
        "unit": data.unit or "",
    }
    if not is_platform_admin(ctx):
        row = await invite_from(ctx, values)
        return Response(
            {"status": "invited", "invitation": invitations.invitation_json(row)}, status_code=202
        )
    user, created = await add_member_from(ctx, values)
    if data.manager:
        await hierarchy.set_manager(ctx.db, ctx.actor, ctx.tenant_id, user.id, data.manager)
    if data.unit:
        await hierarchy.set_unit(ctx.db, ctx.actor, ctx.tenant_id, user.id, data.unit)
    return Response({**await _member_out(ctx, user.id), "created_account": created}, status_code=201)


@patch("/members/{user_id:uuid}", opt={"permission": "db.tenant_users.update"})
async def members_update(
    ctx: RequestContext, user_id: uuid.UUID, data: MemberPatch, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    if data.role is not msgspec.UNSET:
        role = await role_service.get_role(ctx.db, ctx.tenant_id, data.role)
        await directory.change_member_role(ctx.db, ctx.actor, ctx.tenant_id, user_id, role)
    if data.manager is not msgspec.UNSET:
        await hierarchy.set_manager(ctx.db, ctx.actor, ctx.tenant_id, user_id, data.manager)
    if data.unit is not msgspec.UNSET:
        await hierarchy.set_unit(ctx.db, ctx.actor, ctx.tenant_id, user_id, data.unit)
    out = await _member_out(ctx, user_id)
    out["user_id"] = out["id"]
    return out


@delete("/members/{user_id:uuid}", opt={"permission": "db.tenant_users.delete"}, status_code=204)
async def members_delete(
    ctx: RequestContext, user_id: uuid.UUID, x_tenant: str | None = TENANT_HEADER
) -> None:
    await directory.remove_member(ctx.db, ctx.actor, ctx.tenant_id, user_id)


# --- roles ---------------------------------------------------------------------------------------


@dataclass
class RoleIn:
    # Each constraint twice: msgspec enforces Meta, Litestar's OpenAPI document shows Parameter.
    name: Annotated[
        str, msgspec.Meta(pattern=TEXT_LINE, max_length=100), Parameter(pattern=TEXT_LINE, max_length=100)
    ]
    description: str = ""


@dataclass
class RolePatch:
    name: str | None = None
    description: str | None = None


@dataclass
class GrantsIn:
    permissions: list[str]


@get("/roles", opt={"permission": "db.roles.select"})
async def roles_index(ctx: RequestContext, x_tenant: str | None = TENANT_HEADER) -> dict[str, Any]:
    rows = await role_service.list_roles(ctx.db, ctx.tenant_id)
    return {"items": [role_json(r, n) for r, n in rows], "total": len(rows)}


@post("/roles", opt={"permission": "db.roles.insert"})
async def roles_create(
    ctx: RequestContext, data: RoleIn, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    return role_json(
        await role_service.create_role(ctx.db, ctx.actor, ctx.tenant_id, data.name, data.description)
    )


@get("/roles/{role_id:uuid}", opt={"permission": "db.roles.select"})
async def roles_show(
    ctx: RequestContext, role_id: uuid.UUID, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    role = await role_service.get_role(ctx.db, ctx.tenant_id, role_id)
    if not ctx.can("db.role_permissions.select"):
        return role_json(role)
    out = role_json(role, grants=await role_service.role_grants(ctx.db, role))
    out["scopes"] = scopes.rules_json(await scopes.role_rules(ctx.db, role.id))
    return out


@patch("/roles/{role_id:uuid}", opt={"permission": "db.roles.update"})
async def roles_update(
    ctx: RequestContext, role_id: uuid.UUID, data: RolePatch, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    role = await role_service.get_role(ctx.db, ctx.tenant_id, role_id)
    await role_service.update_role(
        ctx.db,
        ctx.actor,
        role,
        data.name if data.name is not None else role.name,
        data.description if data.description is not None else role.description,
    )
    return role_json(role)


@delete("/roles/{role_id:uuid}", opt={"permission": "db.roles.delete"}, status_code=204)
async def roles_delete(ctx: RequestContext, role_id: uuid.UUID, x_tenant: str | None = TENANT_HEADER) -> None:
    role = await role_service.get_role(ctx.db, ctx.tenant_id, role_id)
    await role_service.delete_role(ctx.db, ctx.actor, role)


@get("/roles/{role_id:uuid}/permissions", opt={"permission": "db.role_permissions.select"})
async def role_permissions(
    ctx: RequestContext, role_id: uuid.UUID, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    role = await role_service.get_role(ctx.db, ctx.tenant_id, role_id)
    return {"role": role_json(role), "permissions": await role_service.role_grants(ctx.db, role)}


@put("/roles/{role_id:uuid}/permissions", opt={"permission": "db.role_permissions.insert"})
async def role_permissions_set(
    ctx: RequestContext, role_id: uuid.UUID, data: GrantsIn, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    """Replace the role's grants; revoking needs db.role_permissions.delete too."""
    role = await role_service.get_role(ctx.db, ctx.tenant_id, role_id)
    current = set(await role_service.role_grants(ctx.db, role))
    if current - set(data.permissions):
        ctx.require("db.role_permissions.delete")
    added, removed = await role_service.set_role_grants(ctx.db, ctx.actor, role, data.permissions)
    return {
        "role": role_json(role),
        "permissions": await role_service.role_grants(ctx.db, role),
        "added": added,
        "removed": removed,
    }


@dataclass
class ScopesIn:
    """entity name (or plugin.entity, or '*' for the default) -> "all" | "subtree" | "own" | {"scope", "unit"}."""

    scopes: dict[str, Any]


@get("/roles/{role_id:uuid}/scopes", opt={"permission": "db.role_permissions.select"})
async def role_scopes(
    ctx: RequestContext, role_id: uuid.UUID, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    role = await role_service.get_role(ctx.db, ctx.tenant_id, role_id)
    return {
        "role": role_json(role),
        "scopes": scopes.rules_json(await scopes.role_rules(ctx.db, role.id)),
        "kinds": list(scopes.SCOPE_KINDS),
    }


@put("/roles/{role_id:uuid}/scopes", opt={"permission": "db.role_permissions.insert"})
async def role_scopes_set(
    ctx: RequestContext, role_id: uuid.UUID, data: ScopesIn, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    """Replace the role's data scopes (entities left out fall back to the default, '*', itself 'all' if unset)."""
    role = await role_service.get_role(ctx.db, ctx.tenant_id, role_id)
    rules: dict[str, scopes.ScopeRule] = {}
    errors: dict[str, str] = {}
    for key, raw in data.scopes.items():
        rule, problem = scopes.parse_rule(raw, f"scopes.{key}")
        if problem:
            errors[f"scopes.{key}"] = problem
        elif rule is not None:
            rules[key] = rule
    if errors:
        raise ValidationFailed(errors)
    saved = await scopes.set_role_scopes(ctx.db, ctx.actor, role, rules, await scopes.scope_entities(ctx.db))
    return {"role": role_json(role), "scopes": scopes.rules_json(saved)}


# --- registry, audit, explain, tokens ------------------------------------------------------------


@get("/permissions", opt={"auth": True})
async def permissions_index(ctx: RequestContext) -> dict[str, Any]:
    rows = await all_permissions(ctx.db)
    return {
        "items": [
            {"code": p.code, "description": p.description, "module": p.module, "scope": p.scope} for p in rows
        ],
        "total": len(rows),
    }


@get("/audit", opt={"permission": "db.audit_log.select"})
async def audit_index(
    request: Request,
    ctx: TenantContext,
    action: str = "",
    actor: str = "",
    since: str = "",
    until: str = "",
    x_tenant: str | None = TENANT_HEADER,
) -> dict[str, Any]:
    p = _page(request)
    rows = await query_audit(ctx, p, action[:100], actor[:254], since[:10], until[:10])
    return {
        "items": [
            {
                "id": str(a.id),
                "tenant": slug,
                "actor": a.actor_email,
                "action": a.action,
                "target_type": a.target_type,
                "target_id": a.target_id,
                "summary": a.summary,
                "before": a.before,
                "after": a.after,
                "at": a.created_at.isoformat(),
            }
            for a, slug in rows
        ],
        "total": p.total,
        "page": p.page,
        "size": p.size,
    }


@get("/explain", opt={"permission": "ui.admin.explain"})
async def explain(
    ctx: TenantContext,
    user: str = Parameter(pattern=r"\S", description="Name or email of a member of this tenant"),
    permission: str = Parameter(pattern=PERMISSION_RE.pattern, description="e.g. db.roles.select"),
    x_tenant: str | None = TENANT_HEADER,
) -> dict[str, Any]:
    """Only members of the tenant are explained (404 for anyone else, whether or not the account exists),
    except to platform admins."""
    r = await explain_permission(ctx.db, ctx.tenant, user, permission, any_user=is_platform_admin(ctx))
    return {
        "user": r.user.email,
        "tenant": r.tenant.slug,
        "permission": r.permission,
        "allowed": r.allowed,
        "registered": r.registered,
        "platform_scoped": r.platform_scoped,
        "role": r.role_name,
        "policy": list(r.rule) if r.rule else None,
        "reason": str(r.reason),  # the English text of the message
        "would_grant": [
            {"role": g.role_name, "grant": g.pattern, "platform": g.platform} for g in r.would_grant
        ],
        "scope": r.scope.as_json() if r.scope else None,
    }


@dataclass
class TokenIn:
    name: Annotated[
        str, msgspec.Meta(pattern=TEXT_LINE, max_length=100), Parameter(pattern=TEXT_LINE, max_length=100)
    ]
    expires_days: Annotated[int, msgspec.Meta(ge=1, le=3650), Parameter(ge=1, le=3650)] | None = (
        tokens.DEFAULT_EXPIRY_DAYS
    )  # null: never expires
    scope: Literal["full", "read"] = "full"  # "read": GET and HEAD only


@get("/tokens", opt={"auth": True})
async def tokens_index(ctx: RequestContext) -> dict[str, Any]:
    rows = await tokens.list_for(ctx.db, ctx.user.id)  # type: ignore[union-attr]
    return {"items": [tokens.as_json(t) for t in rows]}


@post("/tokens", opt={"auth": True})
async def tokens_create(ctx: RequestContext, data: TokenIn) -> dict[str, Any]:
    row, secret = await tokens.create(
        ctx.db,
        ctx.actor,
        ctx.user,  # type: ignore[arg-type]
        data.name,
        expires_days=data.expires_days,
        scope=data.scope,
        minted_by=ctx.api_token,
    )
    return {**tokens.as_json(row), "token": secret}


@delete("/tokens/{token_id:uuid}", opt={"auth": True}, status_code=204)
async def tokens_revoke(ctx: RequestContext, token_id: uuid.UUID) -> None:
    await tokens.revoke(ctx.db, ctx.actor, ctx.user.id, token_id)  # type: ignore[union-attr]


router = Router(
    path="/api/v1",
    route_handlers=[
        me,
        tenants_index,
        tenants_create,
        tenants_show,
        tenants_update,
        members_index,
        members_show,
        members_create,
        members_update,
        members_delete,
        roles_index,
        roles_create,
        roles_show,
        roles_update,
        roles_delete,
        role_permissions,
        role_permissions_set,
        role_scopes,
        role_scopes_set,
        permissions_index,
        audit_index,
        explain,
        tokens_index,
        tokens_create,
        tokens_revoke,
    ],
    tags=["portal"],
)
ROUTES = [router]
