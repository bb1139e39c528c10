"""Administration pages of roles: their list, names, granted permissions and data scopes."""

from __future__ import annotations

import uuid

from litestar import get, post
from litestar.datastructures import FormMultiDict
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from app.access import roles as role_service
from app.access import scopes
from app.access.matrix import OPERATIONS, role_matrix
from app.core.errors import ValidationFailed
from app.core.i18n import N_
from app.identity import directory
from app.plugins import runtime
from app.web.context import TenantContext
from app.web.forms import T, form_text
from app.web.render import page, redirect

# --- roles ---------------------------------------------------------------------------------------


async def _roles_page(
    request: HTMXRequest,
    ctx: TenantContext,
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
async def roles_list(request: HTMXRequest, ctx: TenantContext) -> Template:
    return await _roles_page(request, ctx)


@post(T("/admin/roles"), opt={"permission": "db.roles.insert"}, include_in_schema=False)
async def roles_create(request: HTMXRequest, ctx: TenantContext) -> Template | Redirect:
    form = await request.form()
    values = {"name": form_text(form, "name", 200), "description": form_text(form, "description", 600)}
    try:
        role = await role_service.create_role(
            ctx.db, ctx.actor, ctx.tenant_id, values["name"], values["description"]
        )
    except ValidationFailed as exc:
        return await _roles_page(request, ctx, exc.errors, values, status_code=422)
    return redirect(
        f"/t/{ctx.tenant.slug}/admin/roles/{role.id}", N_("Role %(role)s created", role=role.name)
    )


async def _role_page(
    request: HTMXRequest,
    ctx: TenantContext,
    role_id: uuid.UUID,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
    scope_values: dict[str, scopes.ScopeRule] | None = None,
    grant_values: list[str] | None = None,
) -> Template:
    role = await role_service.get_role(ctx.db, ctx.tenant_id, role_id)
    grants = await role_service.role_grants(ctx.db, role)
    plugins = await runtime.enabled_for(ctx.db, ctx.tenant_id)
    matrix = await role_matrix(
        ctx.db,
        grants if grant_values is None else grant_values,  # a refused submission: show what was sent
        plugins,
        include_platform=ctx.tenant_id == directory.SYSTEM_UUID,
    )
    rules = await scopes.role_rules(ctx.db, role.id)
    if scope_values is not None:  # a refused submission: show what was typed
        rules = scope_values
    enabled = [(p.manifest.plugin.name, list(p.entities.values())) for p in plugins]
    inline = {"scopes.*"} | {f"scopes.{ref.name}" for _, refs in enabled for ref in refs}
    scope_problems = [m for k, m in (errors or {}).items() if k.startswith("scopes.") and k not in inline]
    return await page(
        request,
        ctx,
        "admin/role.html",
        status_code=status_code,
        role=role,
        matrix=matrix,
        operations=OPERATIONS,
        errors=errors or {},
        scope_rules=rules,
        scope_kinds=scopes.SCOPE_KINDS,
        scope_problems=scope_problems,
        scope_plugins=enabled,
        values=values or {"name": role.name, "description": role.description},
    )


@get(
    T("/admin/roles/{role_id:uuid}"),
    opt={"permission": "db.role_permissions.select"},
    include_in_schema=False,
)
async def role_detail(request: HTMXRequest, ctx: TenantContext, role_id: uuid.UUID) -> Template:
    return await _role_page(request, ctx, role_id)


@post(T("/admin/roles/{role_id:uuid}"), opt={"permission": "db.roles.update"}, include_in_schema=False)
async def role_update(request: HTMXRequest, ctx: TenantContext, role_id: uuid.UUID) -> Template | Redirect:
    role = await role_service.get_role(ctx.db, ctx.tenant_id, role_id)
    form = await request.form()
    values = {"name": form_text(form, "name", 200), "description": form_text(form, "description", 600)}
    try:
        await role_service.update_role(ctx.db, ctx.actor, role, values["name"], values["description"])
    except ValidationFailed as exc:
        return await _role_page(request, ctx, role_id, exc.errors, values, status_code=422)
    return redirect(f"/t/{ctx.tenant.slug}/admin/roles/{role.id}", N_("Role saved"))


@post(
    T("/admin/roles/{role_id:uuid}/grants"),
    opt={"permission": "db.role_permissions.insert"},
    include_in_schema=False,
)
async def role_grants(request: HTMXRequest, ctx: TenantContext, role_id: uuid.UUID) -> Template | Redirect:
    role = await role_service.get_role(ctx.db, ctx.tenant_id, role_id)
    form = await request.form()
    # The grid's checkboxes, and the text box's lines: wildcards and grants without a checkbox here.
    wanted = [str(v)[:200] for v in form.getall("perm")] if "perm" in form else []
    wanted += [line.strip() for line in form_text(form, "patterns", 20_000).splitlines() if line.strip()]
    current = set(await role_service.role_grants(ctx.db, role))
    if current - set(wanted):
        ctx.require("db.role_permissions.delete")
    try:
        added, removed = await role_service.set_role_grants(ctx.db, ctx.actor, role, wanted)
    except ValidationFailed as exc:
        return await _role_page(request, ctx, role_id, exc.errors, status_code=422, grant_values=wanted)
    return redirect(
        f"/t/{ctx.tenant.slug}/admin/roles/{role.id}",
        N_("Saved: %(added)s granted, %(removed)s revoked", added=len(added), removed=len(removed)),
    )


def scope_rules_from_form(form: FormMultiDict) -> tuple[dict[str, scopes.ScopeRule], dict[str, str]]:
    """`scope:<entity>` selects (empty: inherit the default) and `unit:<entity>` checkboxes; '*' is the default."""
    rules: dict[str, scopes.ScopeRule] = {}
    errors: dict[str, str] = {}
    for key in form:
        if not key.startswith("scope:"):
            continue
        entity = key.removeprefix("scope:")[:64]
        raw = form_text(form, key, 20)
        rule, problem = scopes.parse_rule(
            {"scope": raw, "unit": form_text(form, f"unit:{entity}") == "on"} if raw else None,
            f"scopes.{entity}",
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
async def role_scopes(request: HTMXRequest, ctx: TenantContext, role_id: uuid.UUID) -> Template | Redirect:
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
    return redirect(f"/t/{ctx.tenant.slug}/admin/roles/{role.id}", N_("Data scopes saved"))


@post(T("/admin/roles/{role_id:uuid}/delete"), opt={"permission": "db.roles.delete"}, include_in_schema=False)
async def role_delete(ctx: TenantContext, role_id: uuid.UUID) -> Redirect:
    role = await role_service.get_role(ctx.db, ctx.tenant_id, role_id)
    await role_service.delete_role(ctx.db, ctx.actor, role)
    return redirect(f"/t/{ctx.tenant.slug}/admin/roles", N_("Role %(role)s deleted", role=role.name))


ROUTES = [roles_list, roles_create, role_detail, role_update, role_grants, role_scopes, role_delete]
