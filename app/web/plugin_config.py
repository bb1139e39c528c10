"""Named plugin configurations: the tenant admin's Configuration page of a plugin under
/t/{tenant}/admin/plugins/{plugin_id}/config and the JSON API under /api/v1/admin/plugins/{plugin_id}/config.
Both need plugin:configure in the tenant. Secrets are never sent back: pages say "set", the API `***`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from litestar import Response, Router, delete, get, post, put
from litestar.datastructures import FormMultiDict
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template
from litestar.types import ControllerRouterHandler
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict, PortalError, ValidationFailed
from app.core.i18n import N_
from app.core.models import PluginPackage
from app.installs import lifecycle
from app.manifest import ConfigFieldSpec, Manifest, ManifestError
from app.plugins import config_values, configs, runtime
from app.plugins.configs import SaveRequest
from app.records.values import to_json
from app.web.config_form import ConfigForm
from app.web.context import TenantContext
from app.web.plugin_admin import Failure
from app.web.plugin_facts import TENANT_HEADER
from app.web.render import page, redirect

CONFIGURE = "plugin:configure"
EDITOR = "configs/_editor.html"


async def _plugin(session: AsyncSession, plugin_id: str) -> tuple[PluginPackage, Manifest]:
    row = await lifecycle.get(session, plugin_id)
    ctx = await lifecycle.validation_context(session, row.plugin_id)
    try:
        return row, runtime.catalog_of(session).load(row, dict(ctx.foreign_entity_specs)).manifest
    except ManifestError as exc:
        raise PortalError(
            N_(
                "The manifest of %(plugin_id)s cannot be read on this platform now: %(exc)s",
                plugin_id=plugin_id,
                exc=exc,
            )
        ) from exc


def field_json(spec: ConfigFieldSpec) -> dict[str, Any]:
    return {
        "key": spec.key,
        "type": spec.type,
        "label": spec.label,
        "help": spec.help,
        "required": spec.required,
        "default": to_json(spec.default),
        "secret": spec.secret,
        "options": [{"value": o.value, "label": o.label} for o in spec.options],
    }


# --- HTML ---------------------------------------------------------------------------------------


@dataclass
class Editor:
    """The state of the edit form: which configuration, the values shown, the errors."""

    original: str = ""  # name of the configuration being edited; "" for a new one
    name: str = ""
    version: int | None = None
    active: bool = False
    values: dict[str, str] = field(default_factory=dict)  # key -> text shown (never a secret)
    secrets_set: set[str] = field(default_factory=set)
    text: str = ""  # key = value lines when the plugin declares no schema
    errors: dict[str, str] = field(default_factory=dict)


def _editor_of(row: Any, manifest: Manifest) -> Editor:
    values = {k: config_values.display(None, v) for k, v in (row.plain_values or {}).items()}
    return Editor(
        original=row.name,
        name=row.name,
        version=row.version,
        active=row.is_active,
        values=values,
        secrets_set=set(row.secret_values or {}),
        text="" if manifest.config_fields else config_values.format_text(row.plain_values or {}),
    )


async def _page(
    request: HTMXRequest,
    ctx: TenantContext,
    plugin_id: str,
    editor: Editor | None = None,
    failure: Failure | None = None,
    status_code: int = 200,
) -> Template:
    row, manifest = await _plugin(ctx.db, plugin_id)
    rows = await configs.list_configs(ctx.db, ctx.tenant_id, plugin_id)
    config_url = f"/t/{ctx.tenant.slug}/admin/plugins/{plugin_id}/config"
    if editor is None:
        wanted = request.query_params.get("edit")
        if wanted is not None:
            found = next((r for r in rows if r.name == wanted), None)
            editor = _editor_of(found, manifest) if found is not None else None
            if found is None:
                failure, status_code = (
                    Failure(404, N_("Not found"), N_("No configuration %(name)s", name=repr(wanted)), [], []),
                    404,
                )
        elif request.query_params.get("new") is not None or not rows:
            editor = Editor(active=not any(r.is_active for r in rows))
    return await page(
        request,
        ctx,
        "plugins/config.html",
        fragment=EDITOR,
        status_code=status_code,
        plugin=row,
        manifest=manifest,
        fields=manifest.config_fields,
        rows=rows,
        active=next((r for r in rows if r.is_active), None),
        editor=editor,
        form=_form(config_url, editor, not manifest.config_fields) if editor else None,
        failure=failure,
        config_url=config_url,
    )


def _form(config_url: str, editor: Editor, free_text: bool) -> ConfigForm:
    return ConfigForm(
        action=config_url,
        form_id="config-form",
        title=N_("Edit “%(name)s”", name=editor.original) if editor.original else N_("New configuration"),
        is_new=not editor.original,
        hidden=(("original", editor.original),),
        name_keys=("new_name", "name"),
        own_keys=("name", "new_name", "text"),
        free_text=free_text,
        toggle_name="active",
        toggle_label=N_("The active configuration (the one the plugin reads)"),
        toggle_on=editor.active,
        footnote=N_("required. Blank settings use their default."),
    )


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _text(form: FormMultiDict, key: str) -> str:
    value = form.get(key)
    return value if isinstance(value, str) else ""


async def _fail(
    request: HTMXRequest, ctx: TenantContext, plugin_id: str, exc: PortalError, editor: Editor | None
) -> Template:
    await ctx.db.rollback()
    for obj in (ctx.user, ctx.tenant):
        await ctx.db.refresh(obj)
    if isinstance(exc, ValidationFailed) and editor is not None:
        editor.errors = exc.errors
        return await _page(request, ctx, plugin_id, editor, status_code=exc.status_code)
    return await _page(request, ctx, plugin_id, editor, Failure.of(exc), exc.status_code)


def T(path: str) -> str:
    return "/t/{tenant:str}/admin/plugins/{plugin_id:str}/config" + path


@get(T(""), opt={"permission": CONFIGURE}, include_in_schema=False)
async def config_page(request: HTMXRequest, ctx: TenantContext, plugin_id: str) -> Template:
    """The list of configurations; `?new` or `?edit=<name>` adds the editor (HTMX gets the editor alone)."""
    return await _page(request, ctx, plugin_id)


@post(T(""), opt={"permission": CONFIGURE}, include_in_schema=False)
async def save_page(request: HTMXRequest, ctx: TenantContext, plugin_id: str) -> Template | Redirect:
    form = await request.form()
    _, manifest = await _plugin(ctx.db, plugin_id)
    original = _text(form, "original")
    editor = Editor(
        original=original,
        name=_text(form, "name"),
        version=_int(form.get("version")),
        active=form.get("active") == "on",
        text=_text(form, "text"),
    )
    if manifest.config_fields:
        # Secrets typed into the form are never echoed back, even when the form must be shown again.
        editor.values = {f.key: _text(form, f"v.{f.key}") for f in manifest.config_fields if not f.secret}
        values: dict[str, Any] = {f.key: _text(form, f"v.{f.key}") for f in manifest.config_fields}
        clear = tuple(
            f.key for f in manifest.config_fields if f.secret and form.get(f"clear.{f.key}") == "on"
        )
    else:
        values, problems = config_values.parse_text(editor.text)
        clear = ()
        if problems:
            editor.errors = problems
            return await _page(request, ctx, plugin_id, editor, status_code=422)
    if original:
        existing = await configs.find(ctx.db, ctx.tenant_id, plugin_id, original)
        editor.secrets_set = set(existing.secret_values or {}) if existing else set()
    req = SaveRequest(
        name=original or editor.name,
        new_name=editor.name if original else None,
        values=values,
        version=editor.version,
        active=True if editor.active else (False if original else None),
        clear_secrets=clear,
        from_form=True,
        create_only=not original,
        update_only=bool(original),
    )
    try:
        row = await configs.save(
            ctx.db, ctx.actor, config_values.secret_box(ctx.settings.secret_key), ctx.tenant_id, manifest, req
        )
    except (ValidationFailed, Conflict, PortalError) as exc:
        return await _fail(request, ctx, plugin_id, exc, editor)
    return redirect(
        f"/t/{ctx.tenant.slug}/admin/plugins/{plugin_id}/config",
        N_("Saved configuration %(name)s (active)", name=row.name)
        if row.is_active
        else N_("Saved configuration %(name)s", name=row.name),
    )


@post(T("/activate"), opt={"permission": CONFIGURE}, include_in_schema=False)
async def activate_page(request: HTMXRequest, ctx: TenantContext, plugin_id: str) -> Template | Redirect:
    form = await request.form()
    name = _text(form, "name") or None
    try:
        await _plugin(ctx.db, plugin_id)
        await configs.activate(ctx.db, ctx.actor, ctx.tenant_id, plugin_id, name)
    except PortalError as exc:
        return await _fail(request, ctx, plugin_id, exc, None)
    message = (
        N_("%(name)s is now the active configuration", name=name)
        if name
        else N_("No configuration is active: the defaults apply")
    )
    return redirect(f"/t/{ctx.tenant.slug}/admin/plugins/{plugin_id}/config", message)


@post(T("/delete"), opt={"permission": CONFIGURE}, include_in_schema=False)
async def delete_page(request: HTMXRequest, ctx: TenantContext, plugin_id: str) -> Template | Redirect:
    form = await request.form()
    name = _text(form, "name")
    try:
        await _plugin(ctx.db, plugin_id)
        await configs.delete(ctx.db, ctx.actor, ctx.tenant_id, plugin_id, name, _int(form.get("version")))
    except PortalError as exc:
        return await _fail(request, ctx, plugin_id, exc, None)
    return redirect(
        f"/t/{ctx.tenant.slug}/admin/plugins/{plugin_id}/config",
        N_("Deleted configuration %(name)s", name=name),
    )


HTML_ROUTES: list[ControllerRouterHandler] = [config_page, save_page, activate_page, delete_page]


# --- JSON API -----------------------------------------------------------------------------------


@dataclass
class ConfigIn:
    """Create or update the configuration `name`. `values` replaces its values (left-out keys fall back to
    the declared defaults); for secrets, a left-out key or `***` keeps the stored secret, `null` removes it."""

    name: str
    values: dict[str, Any] = field(default_factory=dict)
    version: int | None = None  # required to change an existing configuration; 409 when it is stale
    new_name: str | None = None  # rename
    active: bool | None = None  # true: make it the active configuration; false: if active, none is


@dataclass
class ActivateIn:
    name: str | None = None  # null: no configuration is active (the declared defaults apply)


async def _listing(ctx: TenantContext, plugin_id: str) -> dict[str, Any]:
    _, manifest = await _plugin(ctx.db, plugin_id)
    rows = await configs.list_configs(ctx.db, ctx.tenant_id, plugin_id)
    active = next((r.name for r in rows if r.is_active), None)
    return {
        "plugin": plugin_id,
        "tenant": ctx.tenant.slug,
        "active": active,
        "fields": [field_json(f) for f in manifest.config_fields],
        "items": [configs.masked(manifest, r) for r in rows],
    }


@get(
    "/",
    opt={"permission": CONFIGURE},
    summary="The plugin's named configurations in this tenant (secrets as ***)",
)
async def api_list(
    ctx: TenantContext, plugin_id: str, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    return await _listing(ctx, plugin_id)


@put(
    "/",
    opt={"permission": CONFIGURE},
    summary="Create or update a named configuration (version-checked; 422 with per-field errors)",
)
async def api_put(
    ctx: TenantContext, plugin_id: str, data: ConfigIn, x_tenant: str | None = TENANT_HEADER
) -> Response[dict[str, Any]]:
    _, manifest = await _plugin(ctx.db, plugin_id)
    existed = await configs.find(ctx.db, ctx.tenant_id, plugin_id, data.name) is not None
    row = await configs.save(
        ctx.db,
        ctx.actor,
        config_values.secret_box(ctx.settings.secret_key),
        ctx.tenant_id,
        manifest,
        SaveRequest(
            name=data.name,
            values=data.values,
            version=data.version,
            new_name=data.new_name,
            active=data.active,
        ),
    )
    return Response(configs.masked(manifest, row), status_code=200 if existed else 201)


@post(
    "/activate",
    opt={"permission": CONFIGURE},
    status_code=200,
    summary='Make a configuration the active one ({"name": null}: none, the declared defaults apply)',
)
async def api_activate(
    ctx: TenantContext, plugin_id: str, data: ActivateIn, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    await _plugin(ctx.db, plugin_id)
    await configs.activate(ctx.db, ctx.actor, ctx.tenant_id, plugin_id, data.name)
    return await _listing(ctx, plugin_id)


@delete(
    "/{name:str}",
    opt={"permission": CONFIGURE},
    status_code=200,
    summary="Delete a configuration (not the active one: 409)",
)
async def api_delete(
    ctx: TenantContext,
    plugin_id: str,
    name: str,
    version: int | None = None,
    x_tenant: str | None = TENANT_HEADER,
) -> dict[str, Any]:
    await _plugin(ctx.db, plugin_id)
    await configs.delete(ctx.db, ctx.actor, ctx.tenant_id, plugin_id, name, version)
    return await _listing(ctx, plugin_id)


api_router = Router(
    path="/api/v1/admin/plugins/{plugin_id:str}/config",
    route_handlers=[api_list, api_put, api_activate, api_delete],
    tags=["plugins"],
)

ROUTES: list[ControllerRouterHandler] = [*HTML_ROUTES, api_router]

__all__ = ["ROUTES", "field_json"]
