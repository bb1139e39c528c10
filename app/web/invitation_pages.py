"""Invitations on the web: the invitee's pages (/invitations, outside any tenant: they are not a member
yet), the admin's revoke button on the members page, and the JSON API for both sides."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import delete, get, post
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from app.core.errors import Conflict
from app.core.i18n import N_
from app.identity import invitations
from app.web.api import TENANT_HEADER
from app.web.context import RequestContext
from app.web.render import page, redirect

# --- the invitee ---------------------------------------------------------------------------------


@get("/invitations", opt={"auth": True}, include_in_schema=False)
async def my_invitations(request: HTMXRequest, ctx: RequestContext) -> Template:
    rows = await invitations.for_user(ctx.db, ctx.user)  # type: ignore[arg-type]
    return await page(
        request, ctx, "account/invitations.html", rows=rows, has_tenants=bool(await ctx.memberships())
    )


async def _one(
    request: HTMXRequest,
    ctx: RequestContext,
    invitation_id: uuid.UUID,
    *,
    problem: str | None = None,
    status_code: int = 200,
) -> Template:
    row = await invitations.get_for_user(ctx.db, ctx.user, invitation_id)  # type: ignore[arg-type]
    return await page(
        request, ctx, "account/invitation.html", row=row, problem=problem, status_code=status_code
    )


@get("/invitations/{invitation_id:uuid}", opt={"auth": True}, include_in_schema=False)
async def invitation_page(request: HTMXRequest, ctx: RequestContext, invitation_id: uuid.UUID) -> Template:
    return await _one(request, ctx, invitation_id)


@post("/invitations/{invitation_id:uuid}/accept", opt={"auth": True}, include_in_schema=False)
async def invitation_accept(
    request: HTMXRequest, ctx: RequestContext, invitation_id: uuid.UUID
) -> Template | Redirect:
    try:
        row = await invitations.accept(ctx.db, ctx.actor, ctx.user, invitation_id)  # type: ignore[arg-type]
    except Conflict as exc:
        await ctx.db.rollback()
        await ctx.db.refresh(ctx.user)
        return await _one(request, ctx, invitation_id, problem=exc.detail, status_code=409)
    return redirect(
        f"/t/{row.tenant.slug}/",
        N_("You joined %(tenant)s as %(role)s", tenant=row.tenant.name, role=row.role.name),
    )


@post("/invitations/{invitation_id:uuid}/decline", opt={"auth": True}, include_in_schema=False)
async def invitation_decline(
    request: HTMXRequest, ctx: RequestContext, invitation_id: uuid.UUID
) -> Template | Redirect:
    try:
        row = await invitations.decline(ctx.db, ctx.actor, ctx.user, invitation_id)  # type: ignore[arg-type]
    except Conflict as exc:
        await ctx.db.rollback()
        await ctx.db.refresh(ctx.user)
        return await _one(request, ctx, invitation_id, problem=exc.detail, status_code=409)
    return redirect("/invitations", N_("You declined the invitation to %(tenant)s", tenant=row.tenant.name))


# --- the tenant admin ----------------------------------------------------------------------------


@post(
    "/t/{tenant:str}/admin/invitations/{invitation_id:uuid}/revoke",
    opt={"permission": "db.tenant_users.insert"},
    include_in_schema=False,
)
async def invitation_revoke(ctx: RequestContext, invitation_id: uuid.UUID) -> Redirect:
    row = await invitations.revoke(ctx.db, ctx.actor, ctx.tenant_id, invitation_id)
    return redirect(
        f"/t/{ctx.tenant.slug}/admin/members",  # type: ignore[union-attr]
        N_("Invitation of %(email)s revoked", email=row.invitation.email),
    )


# --- JSON API ------------------------------------------------------------------------------------


@get(
    "/api/v1/invitations",
    opt={"permission": "db.tenant_users.select"},
    tags=["portal"],
    summary="The tenant's open invitations (expired ones marked so)",
)
async def api_tenant_invitations(ctx: RequestContext, x_tenant: str | None = TENANT_HEADER) -> dict[str, Any]:
    rows = await invitations.list_pending(ctx.db, ctx.tenant_id)
    return {"items": [invitations.invitation_json(r) for r in rows], "total": len(rows)}


@delete(
    "/api/v1/invitations/{invitation_id:uuid}",
    opt={"permission": "db.tenant_users.insert"},
    tags=["portal"],
    status_code=204,
    summary="Revoke an open invitation of the tenant",
)
async def api_revoke(
    ctx: RequestContext, invitation_id: uuid.UUID, x_tenant: str | None = TENANT_HEADER
) -> None:
    await invitations.revoke(ctx.db, ctx.actor, ctx.tenant_id, invitation_id)


@get("/api/v1/me/invitations", opt={"auth": True}, tags=["portal"], summary="Your open invitations")
async def api_my_invitations(ctx: RequestContext) -> dict[str, Any]:
    rows = await invitations.for_user(ctx.db, ctx.user)  # type: ignore[arg-type]
    return {"items": [invitations.invitation_json(r) for r in rows], "total": len(rows)}


@post(
    "/api/v1/me/invitations/{invitation_id:uuid}/accept",
    opt={"auth": True},
    tags=["portal"],
    status_code=200,
    summary="Accept one of your invitations: you join the tenant with its role",
)
async def api_accept(ctx: RequestContext, invitation_id: uuid.UUID) -> dict[str, Any]:
    row = await invitations.accept(ctx.db, ctx.actor, ctx.user, invitation_id)  # type: ignore[arg-type]
    return invitations.invitation_json(row)


@post(
    "/api/v1/me/invitations/{invitation_id:uuid}/decline",
    opt={"auth": True},
    tags=["portal"],
    status_code=200,
    summary="Decline one of your invitations",
)
async def api_decline(ctx: RequestContext, invitation_id: uuid.UUID) -> dict[str, Any]:
    row = await invitations.decline(ctx.db, ctx.actor, ctx.user, invitation_id)  # type: ignore[arg-type]
    return invitations.invitation_json(row)


ROUTES = [
    my_invitations,
    invitation_page,
    invitation_accept,
    invitation_decline,
    invitation_revoke,
    api_tenant_invitations,
    api_revoke,
    api_my_invitations,
    api_accept,
    api_decline,
]
