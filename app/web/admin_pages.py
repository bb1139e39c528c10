"""Server-rendered administration pages: tenants, members, roles, audit log, explain, tokens."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from litestar import get, post
from litestar.datastructures import FormMultiDict
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template
from sqlalchemy import func, select

from app import messages
from app.access import roles as role_service
from app.access import scopes
from app.access.explain import explain_permission
from app.access.registry import grouped_registry
from app.core.errors import Conflict, NotFound, ValidationFailed
from app.core.models import AuditEntry, Membership, Tenant, utcnow
from app.identity import directory, hierarchy, invitations, tokens
from app.plugins import runtime
from app.web.context import RequestContext
from app.web.render import Pager, page, redirect


def is_platform_admin(ctx: RequestContext) -> bool:
    """Holds the system tenant's Admin role: platform staff, who see the whole user directory anyway."""
    return ctx.access is not None and ctx.access.system_role_builtin == role_service.ADMIN


def T(path: str) -> str:
    return "/t/{tenant:str}" + path


def _s(form: FormMultiDict, key: str, limit: int = 1000) -> str:
    value = form.get(key)
    if not isinstance(value, str):
        return ""
    if "\x00" in value:  # no database stores NUL in text; refuse it here with the field's name
        raise ValidationFailed({key: "NUL characters are not allowed."})
    return value[:limit]


# --- home ----------------------------------------------------------------------------------------


@get(T("/"), opt={"auth": True}, include_in_schema=False)
async def home(request: HTMXRequest, ctx: RequestContext) -> Template:
    count = await ctx.db.scalar(
        select(func.count()).select_from(Membership).where(Membership.tenant_id == ctx.tenant_id)
    )
    return await page(request, ctx, "home.html", member_count=count)


# --- tenants (platform) --------------------------------------------------------------------------


async def _tenants_page(
    request: HTMXRequest,
    ctx: RequestContext,
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
async def tenants_list(request: HTMXRequest, ctx: RequestContext) -> Template:
    return await _tenants_page(request, ctx)


@post(T("/admin/tenants"), opt={"permission": "db.tenants.insert"}, include_in_schema=False)
async def tenants_create(request: HTMXRequest, ctx: RequestContext) -> Template | Redirect:
    form = await request.form()
    values = {"slug": _s(form, "slug", 100), "name": _s(form, "name", 300)}
    try:
        tenant = await directory.create_tenant(ctx.db, ctx.actor, values["slug"], values["name"])
    except ValidationFailed as exc:
        return await _tenants_page(request, ctx, exc.errors, values, status_code=422)
    return redirect(f"/t/{ctx.tenant.slug}/admin/tenants", f"Tenant {tenant.slug} created")  # type: ignore[union-attr]


@get(T("/admin/tenants/{tenant_id:uuid}"), opt={"permission": "db.tenants.select"}, include_in_schema=False)
async def tenant_edit(request: HTMXRequest, ctx: RequestContext, tenant_id: uuid.UUID) -> Template:
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
    request: HTMXRequest, ctx: RequestContext, tenant_id: uuid.UUID
) -> Template | Redirect:
    target = await directory.get_tenant(ctx.db, str(tenant_id))
    form = await request.form()
    values = {"name": _s(form, "name", 300), "time_zone": _s(form, "time_zone", 64)}
    try:
        await directory.update_tenant(
            ctx.db,
            ctx.actor,
            target,
            name=values["name"],
            is_active=_s(form, "is_active") == "on",
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
    return redirect(f"/t/{ctx.tenant.slug}/admin/tenants", f"Tenant {target.slug} saved")  # type: ignore[union-attr]


# --- members -------------------------------------------------------------------------------------


async def _members_page(
    request: HTMXRequest,
    ctx: RequestContext,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
    row_errors: dict[uuid.UUID, dict[str, str]] | None = None,
    row_values: dict[uuid.UUID, dict[str, str]] | None = None,
) -> Template:
    p = Pager(request)
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
    )


@get(T("/admin/members"), opt={"permission": "db.tenant_users.select"}, include_in_schema=False)
async def members_list(request: HTMXRequest, ctx: RequestContext) -> Template:
    return await _members_page(request, ctx)


async def add_member_from(ctx: RequestContext, values: dict[str, str]) -> tuple[Any, bool]:
    """Add an existing user, or create the account first (needs db.users.insert). Returns (user, created)."""
    role = await role_service.get_role(ctx.db, ctx.tenant_id, values.get("role") or "Member")
    user = await directory.find_user(ctx.db, values.get("email", ""))
    created = False
    if user is None:
        if not ctx.can("db.users.insert"):
            raise ValidationFailed({"email": "No user has this email, and you may not create accounts."})
        if not values.get("password"):
            raise ValidationFailed({"password": "This is a new account: set an initial password."})
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


async def invite_from(ctx: RequestContext, values: dict[str, str]) -> invitations.InvitationRow:
    """A tenant admin's add-member: an invitation the account holder accepts (app.identity.invitations),
    answered the same whether or not an account has the email."""
    role = await role_service.get_role(ctx.db, ctx.tenant_id, values.get("role") or "Member")
    return await invitations.invite(
        ctx.db,
        ctx.actor,
        ctx.tenant,  # type: ignore[arg-type]
        values.get("email", ""),
        role,
        manager=values.get("manager") or None,
        unit=values.get("unit") or None,
        password=values.get("password", ""),
        display_name=values.get("display_name", ""),
        may_create_account=ctx.can("db.users.insert"),
    )


@post(T("/admin/members"), opt={"permission": "db.tenant_users.insert"}, include_in_schema=False)
async def members_add(request: HTMXRequest, ctx: RequestContext) -> Template | Redirect:
    form = await request.form()
    values = {k: _s(form, k, 300) for k in ("email", "display_name", "password", "role", "manager", "unit")}
    try:
        if is_platform_admin(ctx):  # platform staff add directly, as before (they see every account anyway)
            user, created = await add_member_from(ctx, values)
            message = f"{'Created and added' if created else 'Added'} {user.email}"
        else:
            message = f"Invitation sent to {(await invite_from(ctx, values)).invitation.email}"
    except ValidationFailed as exc:
        values.pop("password", None)
        await ctx.db.rollback()  # nothing of the refused add may show (an account created on the way)
        for obj in (ctx.user, ctx.tenant):
            await ctx.db.refresh(obj)
        return await _members_page(request, ctx, exc.errors, values, status_code=422)
    return redirect(f"/t/{ctx.tenant.slug}/admin/members", message)  # type: ignore[union-attr]


async def _refused(request: HTMXRequest, ctx: RequestContext, exc: Conflict) -> Template:
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
async def members_role(request: HTMXRequest, ctx: RequestContext, user_id: uuid.UUID) -> Template | Redirect:
    form = await request.form()
    role = await role_service.get_role(ctx.db, ctx.tenant_id, _s(form, "role", 100))
    try:
        await directory.change_member_role(ctx.db, ctx.actor, ctx.tenant_id, user_id, role)
    except Conflict as exc:
        return await _refused(request, ctx, exc)
    return redirect(f"/t/{ctx.tenant.slug}/admin/members", f"Role changed to {role.name}")  # type: ignore[union-attr]


@post(
    T("/admin/members/{user_id:uuid}/reporting"),
    opt={"permission": "db.tenant_users.update"},
    include_in_schema=False,
)
async def members_reporting(
    request: HTMXRequest, ctx: RequestContext, user_id: uuid.UUID
) -> Template | Redirect:
    """Set a member's manager (email; empty clears it) and unit; refused moves re-render inline."""
    form = await request.form()
    values = {"manager": _s(form, "manager", 300), "unit": _s(form, "unit", 200)}
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
    return redirect(f"/t/{ctx.tenant.slug}/admin/members", "Reporting line saved")  # type: ignore[union-attr]


@post(
    T("/admin/members/{user_id:uuid}/remove"),
    opt={"permission": "db.tenant_users.delete"},
    include_in_schema=False,
)
async def members_remove(
    request: HTMXRequest, ctx: RequestContext, user_id: uuid.UUID
) -> Template | Redirect:
    try:
        await directory.remove_member(ctx.db, ctx.actor, ctx.tenant_id, user_id)
    except Conflict as exc:
        return await _refused(request, ctx, exc)
    return redirect(f"/t/{ctx.tenant.slug}/admin/members", "Member removed")  # type: ignore[union-attr]


# --- roles ---------------------------------------------------------------------------------------


async def _roles_page(
    request: HTMXRequest,
    ctx: RequestContext,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Template:
    rows = await role_service.list_roles(ctx.db, ctx.tenant_id)
    return await page(
        request,
        ctx,
        "admin/roles.html",
        status_code=status_code,
        rows=rows,
        errors=errors or {},
        values=values or {},
    )


@get(T("/admin/roles"), opt={"permission": "db.roles.select"}, include_in_schema=False)
async def roles_list(request: HTMXRequest, ctx: RequestContext) -> Template:
    return await _roles_page(request, ctx)


@post(T("/admin/roles"), opt={"permission": "db.roles.insert"}, include_in_schema=False)
async def roles_create(request: HTMXRequest, ctx: RequestContext) -> Template | Redirect:
    form = await request.form()
    values = {"name": _s(form, "name", 200), "description": _s(form, "description", 600)}
    try:
        role = await role_service.create_role(
            ctx.db, ctx.actor, ctx.tenant_id, values["name"], values["description"]
        )
    except ValidationFailed as exc:
        return await _roles_page(request, ctx, exc.errors, values, status_code=422)
    return redirect(f"/t/{ctx.tenant.slug}/admin/roles/{role.id}", f"Role {role.name} created")  # type: ignore[union-attr]


async def _role_page(
    request: HTMXRequest,
    ctx: RequestContext,
    role_id: uuid.UUID,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
    scope_values: dict[str, scopes.ScopeRule] | None = None,
) -> Template:
    role = await role_service.get_role(ctx.db, ctx.tenant_id, role_id)
    grants = await role_service.role_grants(ctx.db, role)
    groups = await grouped_registry(ctx.db, grants, include_platform=ctx.tenant_id == directory.SYSTEM_UUID)
    rules = await scopes.role_rules(ctx.db, role.id)
    if scope_values is not None:  # a refused submission: show what was typed
        rules = scope_values
    enabled = [
        (p.manifest.plugin.name, list(p.entities.values()))
        for p in await runtime.enabled_for(ctx.db, ctx.tenant_id)
    ]
    inline = {"scopes.*"} | {f"scopes.{ref.name}" for _, refs in enabled for ref in refs}
    scope_problems = [m for k, m in (errors or {}).items() if k.startswith("scopes.") and k not in inline]
    return await page(
        request,
        ctx,
        "admin/role.html",
        status_code=status_code,
        role=role,
        grants=grants,
        groups=groups,
        errors=errors or {},
        scope_rules=rules,
        scope_kinds=scopes.SCOPE_KINDS,
        scope_problems=scope_problems,
        scope_plugins=enabled,
        values=values or {"name": role.name, "description": role.description},
        extra_patterns=[g for g in grants if g.endswith("*")],
    )


@get(
    T("/admin/roles/{role_id:uuid}"),
    opt={"permission": "db.role_permissions.select"},
    include_in_schema=False,
)
async def role_detail(request: HTMXRequest, ctx: RequestContext, role_id: uuid.UUID) -> Template:
    return await _role_page(request, ctx, role_id)


@post(T("/admin/roles/{role_id:uuid}"), opt={"permission": "db.roles.update"}, include_in_schema=False)
async def role_update(request: HTMXRequest, ctx: RequestContext, role_id: uuid.UUID) -> Template | Redirect:
    role = await role_service.get_role(ctx.db, ctx.tenant_id, role_id)
    form = await request.form()
    values = {"name": _s(form, "name", 200), "description": _s(form, "description", 600)}
    try:
        await role_service.update_role(ctx.db, ctx.actor, role, values["name"], values["description"])
    except ValidationFailed as exc:
        return await _role_page(request, ctx, role_id, exc.errors, values, status_code=422)
    return redirect(f"/t/{ctx.tenant.slug}/admin/roles/{role.id}", "Role saved")  # type: ignore[union-attr]


@post(
    T("/admin/roles/{role_id:uuid}/grants"),
    opt={"permission": "db.role_permissions.insert"},
    include_in_schema=False,
)
async def role_grants(request: HTMXRequest, ctx: RequestContext, role_id: uuid.UUID) -> Template | Redirect:
    role = await role_service.get_role(ctx.db, ctx.tenant_id, role_id)
    form = await request.form()
    wanted = [str(v) for v in form.getall("perm")] if "perm" in form else []
    wanted += [line.strip() for line in _s(form, "patterns", 20_000).splitlines() if line.strip()]
    current = set(await role_service.role_grants(ctx.db, role))
    if current - set(wanted):
        ctx.require("db.role_permissions.delete")
    try:
        added, removed = await role_service.set_role_grants(ctx.db, ctx.actor, role, wanted)
    except ValidationFailed as exc:
        return await _role_page(request, ctx, role_id, exc.errors, status_code=422)
    return redirect(
        f"/t/{ctx.tenant.slug}/admin/roles/{role.id}",  # type: ignore[union-attr]
        f"Saved: {len(added)} granted, {len(removed)} revoked",
    )


def scope_rules_from_form(form: FormMultiDict) -> tuple[dict[str, scopes.ScopeRule], dict[str, str]]:
    """`scope:<entity>` selects (empty: inherit the default) and `unit:<entity>` checkboxes; '*' is the default."""
    rules: dict[str, scopes.ScopeRule] = {}
    errors: dict[str, str] = {}
    for key in form:
        if not key.startswith("scope:"):
            continue
        entity = key.removeprefix("scope:")[:64]
        raw = _s(form, key, 20)
        rule, problem = scopes.parse_rule(
            {"scope": raw, "unit": _s(form, f"unit:{entity}") == "on"} if raw else None, f"scopes.{entity}"
        )
        if problem:
            errors[f"scopes.{entity}"] = problem
        elif rule is not None and not (entity == scopes.DEFAULT_ENTITY and rule == scopes.ALL):
            rules[entity] = rule  # an explicit "all" default is the same as none
    return rules, errors


@post(
    T("/admin/roles/{role_id:uuid}/scopes"),
    opt={"permission": "db.role_permissions.insert"},
    include_in_schema=False,
)
async def role_scopes(request: HTMXRequest, ctx: RequestContext, role_id: uuid.UUID) -> Template | Redirect:
    role = await role_service.get_role(ctx.db, ctx.tenant_id, role_id)
    form = await request.form()
    rules, errors = scope_rules_from_form(form)
    # Scopes of entities not on the form (their plugin is not enabled here) are kept as they are.
    shown = {k.removeprefix("scope:") for k in form if k.startswith("scope:")}
    for entity, rule in (await scopes.role_rules(ctx.db, role.id)).items():
        if entity not in shown:
            rules.setdefault(entity, rule)
    try:
        if errors:
            raise ValidationFailed(errors)
        await scopes.set_role_scopes(ctx.db, ctx.actor, role, rules, await scopes.scope_entities(ctx.db))
    except ValidationFailed as exc:
        return await _role_page(request, ctx, role_id, exc.errors, status_code=422, scope_values=rules)
    return redirect(f"/t/{ctx.tenant.slug}/admin/roles/{role.id}", "Data scopes saved")  # type: ignore[union-attr]


@post(T("/admin/roles/{role_id:uuid}/delete"), opt={"permission": "db.roles.delete"}, include_in_schema=False)
async def role_delete(ctx: RequestContext, role_id: uuid.UUID) -> Redirect:
    role = await role_service.get_role(ctx.db, ctx.tenant_id, role_id)
    await role_service.delete_role(ctx.db, ctx.actor, role)
    return redirect(f"/t/{ctx.tenant.slug}/admin/roles", f"Role {role.name} deleted")  # type: ignore[union-attr]


# --- audit ---------------------------------------------------------------------------------------


def _date(value: str | None) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC) if value else None
    except ValueError:
        return None


async def query_audit(
    ctx: RequestContext, p: Pager, action: str, actor: str, since: str, until: str
) -> list[tuple[AuditEntry, str | None]]:
    stmt = select(AuditEntry, Tenant.slug).outerjoin(Tenant, Tenant.id == AuditEntry.tenant_id)
    if ctx.tenant_id != directory.SYSTEM_UUID:
        stmt = stmt.where(AuditEntry.tenant_id == ctx.tenant_id)
    if action:
        stmt = stmt.where(AuditEntry.action.like(f"{action}%"))
    if actor:
        stmt = stmt.where(AuditEntry.actor_email.like(f"%{actor.lower()}%"))
    if p.q:
        stmt = stmt.where(AuditEntry.summary.like(f"%{p.q}%"))
    if (start := _date(since)) is not None:
        stmt = stmt.where(AuditEntry.created_at >= start)
    if (end := _date(until)) is not None:
        stmt = stmt.where(AuditEntry.created_at < end + dt.timedelta(days=1))
    p.total = (
        await ctx.db.scalar(
            select(func.count()).select_from(stmt.with_only_columns(AuditEntry.id).subquery())
        )
        or 0
    )
    rows = await ctx.db.execute(stmt.order_by(AuditEntry.created_at.desc()).offset(p.offset).limit(p.size))
    return [(a, s) for a, s in rows.all()]


@get(T("/admin/audit"), opt={"permission": "db.audit_log.select"}, include_in_schema=False)
async def audit_list(
    request: HTMXRequest,
    ctx: RequestContext,
    action: str = "",
    actor: str = "",
    since: str = "",
    until: str = "",
) -> Template:
    p = Pager(request)
    p.extra = {"action": action[:100], "actor": actor[:254], "since": since[:10], "until": until[:10]}
    rows = await query_audit(ctx, p, **p.extra)
    return await page(
        request, ctx, "admin/audit.html", fragment="admin/_audit_rows.html", p=p, rows=rows, filters=p.extra
    )


# --- explain -------------------------------------------------------------------------------------


@get(T("/admin/explain"), opt={"permission": "ui.admin.explain"}, include_in_schema=False)
async def explain_page(
    request: HTMXRequest, ctx: RequestContext, user: str = "", permission: str = ""
) -> Template:
    result = None
    errors: dict[str, str] = {}
    status = 200
    if user or permission:
        try:
            result = await explain_permission(
                ctx.db,
                ctx.tenant,  # type: ignore[arg-type]
                user,
                permission,
                any_user=is_platform_admin(ctx),
            )
        except ValidationFailed as exc:
            errors = exc.errors
        except NotFound as exc:  # the same answer whether or not an account has that email
            errors, status = {"user": exc.detail}, 404
    return await page(
        request,
        ctx,
        "admin/explain.html",
        result=result,
        errors=errors,
        status_code=status,
        values={"user": user[:254], "permission": permission[:200]},
    )


# --- own profile ---------------------------------------------------------------------------------


@get(T("/account"), opt={"auth": True}, include_in_schema=False)
async def profile(request: HTMXRequest, ctx: RequestContext) -> Template:
    user = ctx.user
    assert user is not None
    return await page(
        request,
        ctx,
        "account/profile.html",
        errors={},
        values={
            "display_name": user.display_name,
            "language": user.language,
            "email_notifications": await messages.email_enabled(ctx.db, user.id),
        },
    )


@post(T("/account"), opt={"auth": True}, include_in_schema=False)
async def profile_save(request: HTMXRequest, ctx: RequestContext) -> Template | Redirect:
    user = ctx.user
    assert user is not None
    form = await request.form()
    values: dict[str, Any] = {
        "display_name": _s(form, "display_name", 300),
        "language": _s(form, "language", 10),
        "email_notifications": form.get("email_notifications") == "on",
    }
    try:
        await directory.update_profile(ctx.db, ctx.actor, user, values["display_name"], values["language"])
        if ctx.settings.smtp is not None:  # the choice is offered only when the portal can send email
            await messages.set_email_enabled(ctx.db, user.id, values["email_notifications"])
        new_password = _s(form, "new_password", 300)
        message = "Profile saved"
        if new_password:
            from app.identity.passwords import verify_password

            if not verify_password(user.password_hash, _s(form, "current_password", 1024)):
                raise ValidationFailed({"current_password": "This is not your current password."})
            # Every other session of this user ends; this browser stays signed in.
            ended = await directory.set_password(
                ctx.db, ctx.actor, user, new_password, keep_session=ctx.session_token
            )
            message = f"Profile saved; password changed, {ended} other session(s) signed out"
    except ValidationFailed as exc:
        return await page(
            request, ctx, "account/profile.html", status_code=422, errors=exc.errors, values=values
        )
    return redirect(f"/t/{ctx.tenant.slug}/account", message)  # type: ignore[union-attr]


# --- own API tokens ------------------------------------------------------------------------------


async def _tokens_page(
    request: HTMXRequest,
    ctx: RequestContext,
    *,
    secret: str | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Template:
    rows = await tokens.list_for(ctx.db, ctx.user.id)  # type: ignore[union-attr]
    return await page(
        request,
        ctx,
        "account/tokens.html",
        status_code=status_code,
        rows=rows,
        secret=secret,
        errors=errors or {},
        now=utcnow(),
        scopes=tokens.SCOPES,
        expiry_options=[(d or "never", f"{d} days" if d else "Never") for d in tokens.EXPIRY_CHOICES],
        default_expiry=tokens.DEFAULT_EXPIRY_DAYS,
    )


def _expiry_days(raw: str) -> int | None:
    """The form's expiry choice: a number of days or "never" (-1 for anything else, which is refused)."""
    if raw == "never":
        return None
    try:
        return int(raw)
    except ValueError:
        return -1


@get(T("/account/tokens"), opt={"auth": True}, include_in_schema=False)
async def tokens_list(request: HTMXRequest, ctx: RequestContext) -> Template:
    return await _tokens_page(request, ctx)


@post(T("/account/tokens"), opt={"auth": True}, include_in_schema=False, status_code=200)
async def tokens_create(request: HTMXRequest, ctx: RequestContext) -> Template:
    form = await request.form()
    try:
        expires_days = _expiry_days(_s(form, "expires_days", 10) or str(tokens.DEFAULT_EXPIRY_DAYS))
        if expires_days not in tokens.EXPIRY_CHOICES:
            raise ValidationFailed({"expires_days": "Choose one of the offered expiries."})
        _, secret = await tokens.create(
            ctx.db,
            ctx.actor,
            ctx.user,  # type: ignore[arg-type]
            _s(form, "name", 200),
            expires_days=expires_days,
            scope=_s(form, "scope", 10) or "full",
        )
    except ValidationFailed as exc:
        return await _tokens_page(request, ctx, errors=exc.errors, status_code=422)
    # Shown once, on this response only; it is not stored in clear anywhere.
    return await _tokens_page(request, ctx, secret=secret)


@post(T("/account/tokens/{token_id:uuid}/revoke"), opt={"auth": True}, include_in_schema=False)
async def tokens_revoke(ctx: RequestContext, token_id: uuid.UUID) -> Redirect:
    await tokens.revoke(ctx.db, ctx.actor, ctx.user.id, token_id)  # type: ignore[union-attr]
    return redirect(f"/t/{ctx.tenant.slug}/account/tokens", "Token revoked")  # type: ignore[union-attr]


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
    members_remove,
    roles_list,
    roles_create,
    role_detail,
    role_update,
    role_grants,
    role_scopes,
    role_delete,
    audit_list,
    explain_page,
    profile,
    profile_save,
    tokens_list,
    tokens_create,
    tokens_revoke,
]
