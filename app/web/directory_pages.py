"""Administration pages of the directory: the tenant's home, tenants (platform) and members."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import get, post
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template
from sqlalchemy import func, select

from app.access import roles as role_service
from app.core.errors import Conflict, NotFound, ValidationFailed
from app.core.i18n import N_
from app.core.models import Membership
from app.core.tenancy import tenant_is
from app.identity import directory, hierarchy, invitations
from app.web.context import TenantContext
from app.web.forms import T, form_text
from app.web.render import Pager, page, redirect
from app.web.workspace import workspace


def is_platform_admin(ctx: TenantContext) -> bool:
    """Holds the system tenant's Admin role: platform staff, who see the whole user directory anyway."""
    return ctx.access.system_role_builtin == role_service.ADMIN


# --- home ----------------------------------------------------------------------------------------


@get(T("/"), opt={"auth": True}, include_in_schema=False)
async def home(request: HTMXRequest, ctx: TenantContext) -> Template:
    """A workspace (app.web.workspace): tasks, unread messages, recent records, shortcuts; platform health."""
    count = await ctx.db.scalar(
        select(func.count()).select_from(Membership).where(tenant_is(Membership, ctx.tenant_id))
    )
    data = await workspace(ctx, is_platform_admin(ctx))
    return await page(request, ctx, "home.html", member_count=count, **data)


# --- tenants (platform) --------------------------------------------------------------------------


async def _tenants_page(
    request: HTMXRequest,
    ctx: TenantContext,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Template:
    p = Pager(request)
    rows, p.total = await directory.list_tenants(ctx.db, p.q, p.offset, p.size)
    return await page(
        request,
        ctx,
        "admin/tenants.html",
        fragment="admin/_tenant_rows.html",
        status_code=status_code,
        p=p,
        rows=rows,
        errors=errors or {},
        values=values or {},
    )


@get(T("/admin/tenants"), opt={"permission": "db.tenants.select"}, include_in_schema=False)
async def tenants_list(request: HTMXRequest, ctx: TenantContext) -> Template:
    return await _tenants_page(request, ctx)


@post(T("/admin/tenants"), opt={"permission": "db.tenants.insert"}, include_in_schema=False)
async def tenants_create(request: HTMXRequest, ctx: TenantContext) -> Template | Redirect:
    form = await request.form()
    values = {"slug": form_text(form, "slug", 100), "name": form_text(form, "name", 300)}
    try:
        tenant = await directory.create_tenant(ctx.db, ctx.actor, values["slug"], values["name"])
    except ValidationFailed as exc:
        return await _tenants_page(request, ctx, exc.errors, values, status_code=422)
    return redirect(f"/t/{ctx.tenant.slug}/admin/tenants", N_("Tenant %(slug)s created", slug=tenant.slug))


@get(T("/admin/tenants/{tenant_id:uuid}"), opt={"permission": "db.tenants.select"}, include_in_schema=False)
async def tenant_edit(request: HTMXRequest, ctx: TenantContext, tenant_id: uuid.UUID) -> Template:
    target = await directory.get_tenant(ctx.db, str(tenant_id))
    return await page(
        request,
        ctx,
        "admin/tenant_edit.html",
        target=target,
        errors={},
        values={"name": target.name, "time_zone": target.time_zone},
        time_zones=directory.TIME_ZONES,
    )


@post(T("/admin/tenants/{tenant_id:uuid}"), opt={"permission": "db.tenants.update"}, include_in_schema=False)
async def tenant_update(
    request: HTMXRequest, ctx: TenantContext, tenant_id: uuid.UUID
) -> Template | Redirect:
    target = await directory.get_tenant(ctx.db, str(tenant_id))
    form = await request.form()
    values = {"name": form_text(form, "name", 300), "time_zone": form_text(form, "time_zone", 64)}
    try:
        await directory.update_tenant(
            ctx.db,
            ctx.actor,
            target,
            name=values["name"],
            is_active=form_text(form, "is_active") == "on",
            time_zone=values["time_zone"],
        )
    except ValidationFailed as exc:
        return await page(
            request,
            ctx,
            "admin/tenant_edit.html",
            status_code=422,
            target=target,
            errors=exc.errors,
            values=values,
            time_zones=directory.TIME_ZONES,
        )
    return redirect(f"/t/{ctx.tenant.slug}/admin/tenants", N_("Tenant %(slug)s saved", slug=target.slug))


# --- members -------------------------------------------------------------------------------------


async def _members_page(
    request: HTMXRequest,
    ctx: TenantContext,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
    row_errors: dict[uuid.UUID, dict[str, str]] | None = None,
    row_values: dict[uuid.UUID, dict[str, str]] | None = None,
    editing: uuid.UUID | None = None,
) -> Template:
    """The members table; `editing` (or ?edit=<id>, the Edit link without script) opens that member's
    edit dialog, as a refused save does with its errors and the values typed."""
    p = Pager(request)
    if editing is None:
        try:
            editing = uuid.UUID(request.query_params.get("edit") or "")
        except ValueError:
            editing = None
    rows, p.total = await directory.list_members(ctx.db, ctx.tenant_id, p.q, p.offset, p.size)
    role_rows = await role_service.list_roles(ctx.db, ctx.tenant_id)
    reporting = await hierarchy.reporting_of(ctx.db, ctx.tenant_id, [r.user.id for r in rows])
    errors = dict(errors or {})
    for uid, problems in (row_errors or {}).items():
        if uid not in reporting:  # the member is on another page: say it above the list
            errors["reporting"] = " ".join(problems.values())
    pending = (
        await invitations.list_pending(ctx.db, ctx.tenant_id) if ctx.can("db.tenant_users.insert") else []
    )
    return await page(
        request,
        ctx,
        "admin/members.html",
        fragment="admin/_member_rows.html",
        status_code=status_code,
        p=p,
        rows=rows,
        invitations=pending,
        direct_add=is_platform_admin(ctx),
        roles=[r for r, _ in role_rows],
        errors=errors,
        values=values or {},
        reporting=reporting,
        row_errors=row_errors or {},
        row_values=row_values or {},
        editing=editing,
    )


@get(T("/admin/members"), opt={"permission": "db.tenant_users.select"}, include_in_schema=False)
async def members_list(request: HTMXRequest, ctx: TenantContext) -> Template:
    return await _members_page(request, ctx)


async def add_member_from(ctx: TenantContext, values: dict[str, str]) -> tuple[Any, bool]:
    """Add an existing user, or create the account first (needs db.users.insert). Returns (user, created)."""
    role = await role_service.get_role(ctx.db, ctx.tenant_id, values.get("role") or "Member")
    user = await directory.find_user(ctx.db, values.get("email", ""))
    created = False
    if user is None:
        if not ctx.can("db.users.insert"):
            raise ValidationFailed({"email": N_("No user has this email, and you may not create accounts.")})
        if not values.get("password"):
            raise ValidationFailed({"password": N_("This is a new account: set an initial password.")})
        user = await directory.create_user(
            ctx.db,
            ctx.actor,
            values.get("email", ""),
            values["password"],
            values.get("display_name", ""),
            tenant_id=ctx.tenant_id,
        )
        created = True
    await directory.add_member(ctx.db, ctx.actor, ctx.tenant_id, user, role)
    return user, created


async def invite_from(ctx: TenantContext, values: dict[str, str]) -> invitations.InvitationRow:
    """A tenant admin's add-member: an invitation the account holder accepts (app.identity.invitations),
    answered the same whether or not an account has the email."""
    role = await role_service.get_role(ctx.db, ctx.tenant_id, values.get("role") or "Member")
    return await invitations.invite(
        ctx.db,
        ctx.actor,
        ctx.tenant,
        values.get("email", ""),
        role,
        manager=values.get("manager") or None,
        unit=values.get("unit") or None,
        password=values.get("password", ""),
        display_name=values.get("display_name", ""),
        may_create_account=ctx.can("db.users.insert"),
    )


@post(T("/admin/members"), opt={"permission": "db.tenant_users.insert"}, include_in_schema=False)
async def members_add(request: HTMXRequest, ctx: TenantContext) -> Template | Redirect:
    form = await request.form()
    values = {
        k: form_text(form, k, 300) for k in ("email", "display_name", "password", "role", "manager", "unit")
    }
    try:
        if is_platform_admin(ctx):  # platform staff add directly, as before (they see every account anyway)
            user, created = await add_member_from(ctx, values)
            message = (
                N_("Created and added %(email)s", email=user.email)
                if created
                else N_("Added %(email)s", email=user.email)
            )
        else:
            invited = await invite_from(ctx, values)
            message = N_("Invitation sent to %(email)s", email=invited.invitation.email)
    except ValidationFailed as exc:
        values.pop("password", None)
        await ctx.db.rollback()  # nothing of the refused add may show (an account created on the way)
        for obj in (ctx.user, ctx.tenant):
            await ctx.db.refresh(obj)
        return await _members_page(request, ctx, exc.errors, values, status_code=422)
    return redirect(f"/t/{ctx.tenant.slug}/admin/members", message)


async def _refused(request: HTMXRequest, ctx: TenantContext, exc: Conflict) -> Template:
    """A refused member change (the tenant's last Admin): the members page again, saying why."""
    await ctx.db.rollback()  # nothing of the refused change may show
    for obj in (ctx.user, ctx.tenant):
        await ctx.db.refresh(obj)
    return await _members_page(request, ctx, {"member": exc.detail}, status_code=409)


@post(
    T("/admin/members/{user_id:uuid}/role"),
    opt={"permission": "db.tenant_users.update"},
    include_in_schema=False,
)
async def members_role(request: HTMXRequest, ctx: TenantContext, user_id: uuid.UUID) -> Template | Redirect:
    form = await request.form()
    role = await role_service.get_role(ctx.db, ctx.tenant_id, form_text(form, "role", 100))
    try:
        await directory.change_member_role(ctx.db, ctx.actor, ctx.tenant_id, user_id, role)
    except Conflict as exc:
        return await _refused(request, ctx, exc)
    return redirect(f"/t/{ctx.tenant.slug}/admin/members", N_("Role changed to %(role)s", role=role.name))


@post(
    T("/admin/members/{user_id:uuid}/reporting"),
    opt={"permission": "db.tenant_users.update"},
    include_in_schema=False,
)
async def members_reporting(
    request: HTMXRequest, ctx: TenantContext, user_id: uuid.UUID
) -> Template | Redirect:
    """Set a member's manager (email; empty clears it) and unit; refused moves re-render inline."""
    form = await request.form()
    values = {"manager": form_text(form, "manager", 300), "unit": form_text(form, "unit", 200)}
    try:
        await hierarchy.set_manager(ctx.db, ctx.actor, ctx.tenant_id, user_id, values["manager"])
        await hierarchy.set_unit(ctx.db, ctx.actor, ctx.tenant_id, user_id, values["unit"])
    except ValidationFailed as exc:
        # Nothing of the refused change may show on the re-rendered page.
        await ctx.db.rollback()
        for obj in (ctx.user, ctx.tenant):
            await ctx.db.refresh(obj)
        return await _members_page(
            request, ctx, status_code=422, row_errors={user_id: exc.errors}, row_values={user_id: values}
        )
    return redirect(f"/t/{ctx.tenant.slug}/admin/members", N_("Reporting line saved"))


@post(
    T("/admin/members/{user_id:uuid}"), opt={"permission": "db.tenant_users.update"}, include_in_schema=False
)
async def members_edit(request: HTMXRequest, ctx: TenantContext, user_id: uuid.UUID) -> Template | Redirect:
    """The edit dialog's save: role, manager and unit together, or nothing. A refusal shows the members
    page again with the dialog open, its errors inside and the values as typed."""
    form = await request.form()
    values = {
        "role": form_text(form, "role", 100),
        "manager": form_text(form, "manager", 300),
        "unit": form_text(form, "unit", 200),
    }
    try:
        role = await role_service.get_role(ctx.db, ctx.tenant_id, values["role"])
        await directory.change_member_role(ctx.db, ctx.actor, ctx.tenant_id, user_id, role)
        await hierarchy.set_manager(ctx.db, ctx.actor, ctx.tenant_id, user_id, values["manager"])
        await hierarchy.set_unit(ctx.db, ctx.actor, ctx.tenant_id, user_id, values["unit"])
    except (ValidationFailed, Conflict, NotFound) as exc:
        problems = exc.errors if isinstance(exc, ValidationFailed) else {"role": exc.detail}
        await ctx.db.rollback()  # nothing of the refused change may show
        for obj in (ctx.user, ctx.tenant):
            await ctx.db.refresh(obj)
        status = 422 if isinstance(exc, ValidationFailed) else exc.status_code
        return await _members_page(
            request,
            ctx,
            status_code=status,
            row_errors={user_id: problems},
            row_values={user_id: values},
            editing=user_id,
        )
    return redirect(f"/t/{ctx.tenant.slug}/admin/members", N_("Member saved"))


@post(
    T("/admin/members/{user_id:uuid}/remove"),
    opt={"permission": "db.tenant_users.delete"},
    include_in_schema=False,
)
async def members_remove(request: HTMXRequest, ctx: TenantContext, user_id: uuid.UUID) -> Template | Redirect:
    try:
        await directory.remove_member(ctx.db, ctx.actor, ctx.tenant_id, user_id)
    except Conflict as exc:
        return await _refused(request, ctx, exc)
    return redirect(f"/t/{ctx.tenant.slug}/admin/members", N_("Member removed"))


ROUTES = [
    home,
    tenants_list,
    tenants_create,
    tenant_edit,
    tenant_update,
    members_list,
    members_add,
    members_role,
    members_reporting,
    members_edit,
    members_remove,
]
