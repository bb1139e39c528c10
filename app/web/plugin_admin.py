"""Plugin administration (seed 004 §6, §11, appendix C): pages under /t/{tenant}/admin/plugins and the
JSON API under /api/v1/admin/plugins.

Who may do what (appendix C, with uninstall kept platform-wide because it is):
  plugin:view    see the plugins, their detail and health (tenant scope)
  plugin:manage  enable / disable a plugin in this tenant
  plugin:admin   upload, install, upgrade, uninstall, purge (platform: counts only when granted in the
                 system tenant)

Every failure a person can cause — a bad package, an invalid manifest, a destructive upgrade, an
illegal transition — is shown as such: located manifest issues, the list of losses, the conflict's
reason. A failed action answers 4xx, so its transaction is rolled back.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Request, Response, Router, delete, get, patch, post
from litestar.datastructures import FormMultiDict, UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template
from litestar.types import ControllerRouterHandler
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import PortalError
from app.core.i18n import N_
from app.core.models import Permission, PluginFault, PluginPackage, PluginSchemaVersion, PluginTenant, Tenant
from app.manifest import Manifest, ManifestError
from app.plugins import lifecycle, runtime
from app.plugins.lifecycle import DestructiveUpgrade, ManifestRejected
from app.plugins.packages import MAX_UNPACKED_BYTES, Package, PackageError, read_zip
from app.records.values import to_json
from app.sandbox import Sandbox
from app.web.context import RequestContext
from app.web.errors import problem
from app.web.render import page, redirect

VIEW, MANAGE, ADMIN = "plugin:view", "plugin:manage", "plugin:admin"
# A zip is never much larger than what it unpacks to; leave room for the multipart envelope.
MAX_UPLOAD_BYTES = MAX_UNPACKED_BYTES + 1024 * 1024
TENANT_HEADER = Parameter(
    header="X-Tenant", required=False, description="Tenant slug or id; defaults to your only tenant"
)


# --- facts shared by the pages and the API ------------------------------------------------------

_plain = to_json  # dates, decimals and UUIDs as JSON-safe strings


def plugin_json(row: PluginPackage, state: PluginTenant | None) -> dict[str, Any]:
    return {
        "id": row.plugin_id,
        "name": row.name,
        "version": row.version,
        "description": row.description,
        "state": lifecycle.state_name(row),
        "tenant_state": state.status if state is not None else None,
        "sha256": row.package_sha256,
        "bundled": row.bundled,
        "enable_for_new_tenants": row.enable_for_new_tenants,
        "has_wasm": row.has_wasm,
        "error": row.error_message or None,
        "uploaded_at": _plain(row.created_at),
        "updated_at": _plain(row.updated_at),
        "uninstalled_at": _plain(row.deleted_at),
    }


async def _manifest_of(session: AsyncSession, row: PluginPackage) -> tuple[Manifest | None, str]:
    """The parsed manifest of any plugin row (also uploaded or uninstalled ones), or why it cannot be parsed."""
    ctx = await lifecycle.validation_context(session, row.plugin_id)
    try:
        return runtime.catalog_of(session).load(row, dict(ctx.foreign_entity_specs)).manifest, ""
    except ManifestError as exc:
        return None, str(exc)


def _field_json(spec: Any) -> dict[str, Any]:
    return {
        "name": spec.name,
        "type": spec.type,
        "label": spec.label,
        "help": spec.help,
        "required": spec.required,
        "unique": spec.unique,
        "nullable": spec.nullable,
        "default": _plain(spec.default),
        "max_length": spec.max_length,
        "precision": spec.precision,
        "scale": spec.scale,
        "options": [o.value for o in spec.options],
        "entity": spec.entity,
    }


async def runtime_facts(
    session: AsyncSession, row: PluginPackage, sandbox: Sandbox | None, tenant_id: uuid.UUID | None
) -> dict[str, Any] | None:
    """Compile state, limits, this worker's recent call figures and the last faults of a plugin's code.
    Viewing an installed plugin whose component is not compiled yet starts the (background) compile."""
    if not row.has_wasm or sandbox is None:
        return None
    ctx = await lifecycle.validation_context(session, row.plugin_id)
    try:
        plugin = runtime.catalog_of(session).load(row, dict(ctx.foreign_entity_specs))
    except ManifestError:
        return None
    state = sandbox.compile_state(plugin)
    if state == "pending" and row.status == "installed":
        sandbox.start_compile(plugin)
        state = sandbox.compile_state(plugin)
    job = sandbox.components.job(plugin.wasm_sha256)
    stmt = select(PluginFault).where(PluginFault.plugin_id == row.plugin_id)
    if tenant_id is not None:
        stmt = stmt.where(PluginFault.tenant_id == tenant_id)
    faults = (await session.scalars(stmt.order_by(PluginFault.created_at.desc()).limit(10))).all()
    return {
        "compile": {
            "state": state,
            "seconds": job.seconds if job else None,
            "error": job.error if job else None,
            "wasm_sha256": plugin.wasm_sha256,
        },
        "limits": dataclasses.asdict(sandbox.limits_for(plugin)),
        "figures": sandbox.figures(row.plugin_id),
        "warm_instances": sandbox.warm_count(row.plugin_id),
        "faults": [
            {
                "at": _plain(f.created_at),
                "call": f.call,
                "kind": f.kind,
                "message": f.message,
                "counts_as_trap": f.counts_as_trap,
            }
            for f in faults
        ],
    }


async def describe(
    session: AsyncSession, row: PluginPackage, tenant_id: uuid.UUID, sandbox: Sandbox | None = None
) -> dict[str, Any]:
    """Everything the detail page and GET /admin/plugins/{id} show."""
    state = await session.scalar(
        select(PluginTenant).where(
            PluginTenant.tenant_id == tenant_id, PluginTenant.plugin_id == row.plugin_id
        )
    )
    out = plugin_json(row, state)
    out["tenant_error"] = (state.error_message or None) if state is not None else None
    out["runtime"] = await runtime_facts(session, row, sandbox, tenant_id)
    manifest, problem_text = await _manifest_of(session, row)
    out["manifest_error"] = problem_text or None
    versions = (
        await session.scalars(
            select(PluginSchemaVersion)
            .where(PluginSchemaVersion.plugin_id == row.plugin_id)
            .order_by(PluginSchemaVersion.entity_name)
        )
    ).all()
    out["schema_versions"] = {
        v.entity_name: {"schema_version": v.schema_version, "plugin_version": v.plugin_version}
        for v in versions
    }
    if manifest is None:
        out.update(
            author="",
            min_platform_version=None,
            dependencies={"modules": [], "plugins": []},
            capabilities={},
            entities=[],
            permissions=[],
            events={"published": [], "subscribed": []},
            pages=[],
        )
        return out
    info = manifest.plugin
    codes = list(manifest.permission_codes)
    registered = {
        p.code: p for p in (await session.scalars(select(Permission).where(Permission.code.in_(codes)))).all()
    }
    described = {
        c: f"{verb} {e.label or e.name} records"
        for e in manifest.entities
        for op, verb in (("select", "View"), ("insert", "Create"), ("update", "Edit"), ("delete", "Delete"))
        for c in [f"db.{e.name}.{op}"]
    }
    described.update({p.code: p.description for p in manifest.ui_permissions})
    out.update(
        author=info.author,
        min_platform_version=info.min_platform_version,
        dependencies={
            "modules": list(manifest.dependencies.modules),
            "plugins": [{"id": d.id, "min_version": d.min_version} for d in manifest.dependencies.plugins],
        },
        capabilities={
            "database": manifest.capabilities.database,
            "events": manifest.capabilities.events,
            "config": manifest.capabilities.config,
            "files": manifest.capabilities.files,
        },
        entities=[
            {
                "name": e.name,
                "label": e.label,
                "table": e.table_name,
                "display_field": e.display_field,
                "indexes": [list(ix) for ix in e.indexes],
                "fields": [_field_json(f) for f in e.fields],
                "schema_version": out["schema_versions"].get(e.name, {}).get("schema_version"),
            }
            for e in manifest.entities
        ],
        permissions=[
            {
                "code": c,
                "description": registered[c].description if c in registered else described.get(c, ""),
                "registered": c in registered,
            }
            for c in codes
        ],
        events={"published": list(manifest.events.published), "subscribed": list(manifest.events.subscribed)},
        pages=[
            {
                "name": p.name,
                "path": p.path,
                "type": p.type,
                "entity": p.entity,
                "menu_group": p.menu_group,
                "icon": p.icon,
            }
            for p in manifest.pages
        ],
    )
    return out


async def list_plugins(session: AsyncSession, tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    states = await lifecycle.tenant_states(session, tenant_id)
    return [plugin_json(row, states.get(row.plugin_id)) for row in await lifecycle.all_plugins(session)]


async def health(ctx: RequestContext, plugin_id: str) -> dict[str, Any]:
    """Platform state and the state per tenant; tenant admins see their own tenant only."""
    row = await lifecycle.get(ctx.db, plugin_id)
    stmt = (
        select(PluginTenant, Tenant.slug)
        .join(Tenant, Tenant.id == PluginTenant.tenant_id)
        .where(PluginTenant.plugin_id == plugin_id)
        .order_by(Tenant.slug)
    )
    if not ctx.can(ADMIN):
        stmt = stmt.where(PluginTenant.tenant_id == ctx.tenant_id)
    tenants = [
        {"tenant": slug, "tenant_id": str(s.tenant_id), "state": s.status, "error": s.error_message or None}
        for s, slug in (await ctx.db.execute(stmt)).all()
    ]
    state = lifecycle.state_name(row)
    facts = await runtime_facts(ctx.db, row, ctx.sandbox, None if ctx.can(ADMIN) else ctx.tenant_id)
    compiled = facts is None or facts["compile"]["state"] in {"ready", "compiling"}
    healthy = (
        state == "installed"
        and not row.error_message
        and compiled
        and all(t["state"] != "error" for t in tenants)
    )
    return {
        "id": row.plugin_id,
        "version": row.version,
        "state": state,
        "error": row.error_message or None,
        "healthy": healthy,
        "tenants": tenants,
        "runtime": facts,
    }


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


# --- HTML pages ---------------------------------------------------------------------------------


def T(path: str) -> str:
    return "/t/{tenant:str}/admin/plugins" + path


@dataclass
class Failure:
    """What went wrong, for the error box of the pages."""

    status: int
    title: str
    detail: str
    issues: list[str]
    losses: list[str]

    @classmethod
    def of(cls, exc: Exception) -> Failure:
        if isinstance(exc, ManifestRejected):
            return cls(
                exc.status_code, exc.title, "The manifest (plugin.toml) has these problems:", exc.issues, []
            )
        if isinstance(exc, DestructiveUpgrade):
            return cls(
                exc.status_code,
                "Destructive upgrade refused",
                "The upgrade would lose data. Tick “allow destructive upgrade” to back the data up and "
                "apply it anyway.",
                [],
                exc.losses,
            )
        if isinstance(exc, PackageError):
            return cls(422, "Invalid plugin package", str(exc), [], [])
        assert isinstance(exc, PortalError)
        return cls(exc.status_code, exc.title, exc.detail, [], [])


async def _reset(ctx: RequestContext) -> None:
    """Roll back a failed action, so the page re-rendered after it shows what is really stored."""
    await ctx.db.rollback()
    for obj in (ctx.user, ctx.tenant):
        if obj is not None:
            await ctx.db.refresh(obj)
    ctx._memberships = None


def _base(ctx: RequestContext) -> str:
    return f"/t/{ctx.tenant.slug}/admin/plugins"  # type: ignore[union-attr]


async def _list_page(
    request: HTMXRequest,
    ctx: RequestContext,
    failure: Failure | None = None,
    values: dict[str, Any] | None = None,
) -> Template:
    rows = await list_plugins(ctx.db, ctx.tenant_id)
    return await page(
        request,
        ctx,
        "plugins/index.html",
        status_code=failure.status if failure else 200,
        rows=rows,
        failure=failure,
        values=values or {},
        max_mib=MAX_UNPACKED_BYTES // (1024 * 1024),
    )


async def _detail_page(
    request: HTMXRequest,
    ctx: RequestContext,
    plugin_id: str,
    failure: Failure | None = None,
    values: dict[str, Any] | None = None,
) -> Template:
    row = await lifecycle.get(ctx.db, plugin_id)
    info = await describe(ctx.db, row, ctx.tenant_id, ctx.sandbox)
    return await page(
        request,
        ctx,
        "plugins/detail.html",
        status_code=failure.status if failure else 200,
        p=info,
        failure=failure,
        values=values or {},
        manifest_toml=row.manifest_toml,
    )


async def _package_from(form: FormMultiDict) -> Package:
    upload = form.get("plugin")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise PackageError("Choose a plugin package (.zip) to upload")
    return read_zip(await upload.read())


async def _failed(
    request: HTMXRequest,
    ctx: RequestContext,
    exc: Exception,
    plugin_id: str | None,
    values: dict[str, Any] | None = None,
) -> Template:
    await _reset(ctx)
    failure = Failure.of(exc)
    if plugin_id is not None and await ctx.db.scalar(
        select(PluginPackage.id).where(PluginPackage.plugin_id == plugin_id)
    ):
        return await _detail_page(request, ctx, plugin_id, failure, values)
    return await _list_page(request, ctx, failure, values)


_FAILURES = (PortalError, PackageError)


@get(T(""), opt={"permission": VIEW}, include_in_schema=False)
async def plugins_page(request: HTMXRequest, ctx: RequestContext) -> Template:
    return await _list_page(request, ctx)


@post(
    T("/upload"), opt={"permission": ADMIN}, include_in_schema=False, request_max_body_size=MAX_UPLOAD_BYTES
)
async def upload_page(request: HTMXRequest, ctx: RequestContext) -> Template | Redirect | Response[Any]:
    form = await request.form()
    values = {
        "install_now": _flag(form.get("install_now")),
        "allow_destructive": _flag(form.get("allow_destructive")),
    }
    try:
        package = await _package_from(form)
        before = await ctx.db.scalar(
            select(PluginPackage).where(
                PluginPackage.plugin_id == lifecycle._plugin_id_of(package.manifest_text)
            )
        )
        old_version = before.version if before is not None else None
        row = await lifecycle.upload(
            ctx.db,
            ctx.actor,
            package,
            ctx.settings,
            install_now=values["install_now"],
            allow_destructive=values["allow_destructive"],
        )
    except _FAILURES as exc:
        return await _failed(request, ctx, exc, None, values)
    if old_version is not None and old_version != row.version and lifecycle.state_name(row) == "installed":
        message = N_(
            "Upgraded %(plugin)s %(old)s → %(new)s", plugin=row.plugin_id, old=old_version, new=row.version
        )
    else:
        message = (
            N_("Installed %(plugin)s %(version)s", plugin=row.plugin_id, version=row.version)
            if row.status == "installed"
            else N_("Uploaded %(plugin)s %(version)s", plugin=row.plugin_id, version=row.version)
        )
    done = redirect(f"{_base(ctx)}/{row.plugin_id}", message)
    if request.headers.get("hx-request") == "true":
        # The HTMX upload (with its progress bar) navigates to the plugin's page, URL included.
        hx = Response(content="", status_code=200, headers={"HX-Redirect": done.url})
        hx.cookies.extend(done.cookies)
        return hx
    return done


@get(T("/{plugin_id:str}"), opt={"permission": VIEW}, include_in_schema=False)
async def plugin_page(request: HTMXRequest, ctx: RequestContext, plugin_id: str) -> Template:
    return await _detail_page(request, ctx, plugin_id)


def _back(ctx: RequestContext, form: FormMultiDict, plugin_id: str) -> str:
    return _base(ctx) if form.get("from") == "list" else f"{_base(ctx)}/{plugin_id}"


async def _action(
    request: HTMXRequest, ctx: RequestContext, plugin_id: str, work: Any, message: str
) -> Template | Redirect:
    form = await request.form()
    try:
        await work()
    except _FAILURES as exc:
        await _reset(ctx)
        failure = Failure.of(exc)
        if form.get("from") == "list":
            return await _list_page(request, ctx, failure)
        return await _detail_page(request, ctx, plugin_id, failure)
    return redirect(_back(ctx, form, plugin_id), message)


@post(T("/{plugin_id:str}/install"), opt={"permission": ADMIN}, include_in_schema=False)
async def install_page(request: HTMXRequest, ctx: RequestContext, plugin_id: str) -> Template | Redirect:
    return await _action(
        request,
        ctx,
        plugin_id,
        lambda: lifecycle.install(ctx.db, ctx.actor, plugin_id),
        N_("Installed %(plugin)s", plugin=plugin_id),
    )


@post(T("/{plugin_id:str}/enable"), opt={"permission": MANAGE}, include_in_schema=False)
async def enable_page(request: HTMXRequest, ctx: RequestContext, plugin_id: str) -> Template | Redirect:
    return await _action(
        request,
        ctx,
        plugin_id,
        lambda: lifecycle.enable(ctx.db, ctx.actor, ctx.tenant_id, plugin_id, sandbox=ctx.sandbox),
        N_("Enabled %(plugin)s in %(tenant)s", plugin=plugin_id, tenant=ctx.tenant.name),  # type: ignore[union-attr]
    )


@post(T("/{plugin_id:str}/disable"), opt={"permission": MANAGE}, include_in_schema=False)
async def disable_page(request: HTMXRequest, ctx: RequestContext, plugin_id: str) -> Template | Redirect:
    return await _action(
        request,
        ctx,
        plugin_id,
        lambda: lifecycle.disable(ctx.db, ctx.actor, ctx.tenant_id, plugin_id),
        N_("Disabled %(plugin)s in %(tenant)s", plugin=plugin_id, tenant=ctx.tenant.name),  # type: ignore[union-attr]
    )


@post(T("/{plugin_id:str}/uninstall"), opt={"permission": ADMIN}, include_in_schema=False)
async def uninstall_page(request: HTMXRequest, ctx: RequestContext, plugin_id: str) -> Template | Redirect:
    return await _action(
        request,
        ctx,
        plugin_id,
        lambda: lifecycle.uninstall(ctx.db, ctx.actor, plugin_id),
        N_("Uninstalled %(plugin)s; its tables and data are kept until it is purged", plugin=plugin_id),
    )


@post(
    T("/{plugin_id:str}/upgrade"),
    opt={"permission": ADMIN},
    include_in_schema=False,
    request_max_body_size=MAX_UPLOAD_BYTES,
)
async def upgrade_page(request: HTMXRequest, ctx: RequestContext, plugin_id: str) -> Template | Redirect:
    form = await request.form()
    values = {"allow_destructive": _flag(form.get("allow_destructive"))}
    try:
        package = await _package_from(form)
        found = lifecycle._plugin_id_of(package.manifest_text)
        if found != plugin_id:
            raise PortalError(
                f"This package is the plugin {found!r}, not {plugin_id!r}; upload it from the plugin list"
            )
        old = (await lifecycle.get(ctx.db, plugin_id)).version
        row = await lifecycle.upgrade(
            ctx.db, ctx.actor, package, ctx.settings, allow_destructive=values["allow_destructive"]
        )
    except _FAILURES as exc:
        return await _failed(request, ctx, exc, plugin_id, values)
    return redirect(
        f"{_base(ctx)}/{plugin_id}",
        N_("Upgraded %(plugin)s %(old)s → %(new)s", plugin=plugin_id, old=old, new=row.version),
    )


@post(T("/{plugin_id:str}/purge"), opt={"permission": ADMIN}, include_in_schema=False, status_code=200)
async def purge_page(request: HTMXRequest, ctx: RequestContext, plugin_id: str) -> Template:
    form = await request.form()
    confirm = form.get("confirm")
    try:
        target = await lifecycle.purge(
            ctx.db, ctx.actor, plugin_id, confirm if isinstance(confirm, str) else "", ctx.settings
        )
    except _FAILURES as exc:
        return await _failed(request, ctx, exc, plugin_id)
    files = sorted(p.name for p in target.iterdir())
    return await page(
        request, ctx, "plugins/purged.html", plugin_id=plugin_id, backup=str(target), files=files
    )


@post(T("/{plugin_id:str}/new-tenants"), opt={"permission": ADMIN}, include_in_schema=False)
async def new_tenants_page(request: HTMXRequest, ctx: RequestContext, plugin_id: str) -> Template | Redirect:
    form = await request.form()
    on = _flag(form.get("enable"))
    return await _action(
        request,
        ctx,
        plugin_id,
        lambda: lifecycle.set_enable_for_new_tenants(ctx.db, ctx.actor, plugin_id, on),
        N_("%(plugin)s will be enabled in new tenants", plugin=plugin_id)
        if on
        else N_("%(plugin)s will no longer be enabled in new tenants", plugin=plugin_id),
    )


HTML_ROUTES: list[ControllerRouterHandler] = [
    plugins_page,
    upload_page,
    plugin_page,
    install_page,
    enable_page,
    disable_page,
    uninstall_page,
    upgrade_page,
    purge_page,
    new_tenants_page,
]


# --- JSON API -----------------------------------------------------------------------------------


@dataclass
class UploadForm:
    """multipart/form-data: the package in `plugin`; the flags may also be given in the query string."""

    plugin: UploadFile
    install: str | None = None
    allow_destructive: str | None = None


@dataclass
class PurgeIn:
    confirm: str


@dataclass
class PluginPatch:
    enable_for_new_tenants: bool


MultipartUpload = Annotated[UploadForm, Body(media_type=RequestEncodingType.MULTI_PART)]


async def _read_upload(data: UploadForm) -> Package:
    if not isinstance(data.plugin, UploadFile):
        raise PackageError("Send the plugin package (.zip) in the multipart field `plugin`")
    return read_zip(await data.plugin.read())


async def _detail(ctx: RequestContext, plugin_id: str) -> dict[str, Any]:
    return await describe(ctx.db, await lifecycle.get(ctx.db, plugin_id), ctx.tenant_id, ctx.sandbox)


@get("/", opt={"permission": VIEW}, summary="All plugins with their platform state and this tenant's state")
async def api_list(ctx: RequestContext, x_tenant: str | None = TENANT_HEADER) -> dict[str, Any]:
    items = await list_plugins(ctx.db, ctx.tenant_id)
    return {"items": items, "total": len(items), "tenant": ctx.tenant.slug}  # type: ignore[union-attr]


@post(
    "/upload",
    opt={"permission": ADMIN},
    status_code=201,
    request_max_body_size=MAX_UPLOAD_BYTES,
    summary="Upload a plugin package (a newer version of an installed plugin upgrades it)",
)
async def api_upload(
    ctx: RequestContext,
    data: MultipartUpload,
    install: bool | None = None,
    allow_destructive: bool | None = None,
    x_tenant: str | None = TENANT_HEADER,
) -> dict[str, Any]:
    package = await _read_upload(data)
    row = await lifecycle.upload(
        ctx.db,
        ctx.actor,
        package,
        ctx.settings,
        install_now=bool(install) or _flag(data.install),
        allow_destructive=bool(allow_destructive) or _flag(data.allow_destructive),
    )
    return await describe(ctx.db, row, ctx.tenant_id, ctx.sandbox)


@get(
    "/{plugin_id:str}",
    opt={"permission": VIEW},
    summary="A plugin's manifest facts, schema versions and states",
)
async def api_detail(
    ctx: RequestContext, plugin_id: str, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    return await _detail(ctx, plugin_id)


@patch(
    "/{plugin_id:str}",
    opt={"permission": ADMIN},
    summary="Platform settings of a plugin: enable_for_new_tenants (enabled, with on-tenant-created, in each new tenant)",
)
async def api_patch(
    ctx: RequestContext, plugin_id: str, data: PluginPatch, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    await lifecycle.set_enable_for_new_tenants(ctx.db, ctx.actor, plugin_id, data.enable_for_new_tenants)
    return await _detail(ctx, plugin_id)


@post(
    "/{plugin_id:str}/install",
    opt={"permission": ADMIN},
    status_code=200,
    summary="Install an uploaded (or re-install an uninstalled) plugin: create its tables, register permissions",
)
async def api_install(
    ctx: RequestContext, plugin_id: str, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    await lifecycle.install(ctx.db, ctx.actor, plugin_id)
    return await _detail(ctx, plugin_id)


@post(
    "/{plugin_id:str}/enable",
    opt={"permission": MANAGE},
    status_code=200,
    summary="Enable an installed plugin in the X-Tenant tenant",
)
async def api_enable(
    ctx: RequestContext, plugin_id: str, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    await lifecycle.enable(ctx.db, ctx.actor, ctx.tenant_id, plugin_id, sandbox=ctx.sandbox)
    return await _detail(ctx, plugin_id)


@post(
    "/{plugin_id:str}/disable",
    opt={"permission": MANAGE},
    status_code=200,
    summary="Disable a plugin in the X-Tenant tenant (its data stays)",
)
async def api_disable(
    ctx: RequestContext, plugin_id: str, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    await lifecycle.disable(ctx.db, ctx.actor, ctx.tenant_id, plugin_id)
    return await _detail(ctx, plugin_id)


@delete(
    "/{plugin_id:str}",
    opt={"permission": ADMIN},
    status_code=200,
    summary="Uninstall a plugin (soft: its tables and data are kept until it is purged)",
)
async def api_uninstall(
    ctx: RequestContext, plugin_id: str, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    await lifecycle.uninstall(ctx.db, ctx.actor, plugin_id)
    return await _detail(ctx, plugin_id)


async def _purge(ctx: RequestContext, plugin_id: str, confirm: str) -> dict[str, Any]:
    target = await lifecycle.purge(ctx.db, ctx.actor, plugin_id, confirm, ctx.settings)
    return {
        "id": plugin_id,
        "state": "purged",
        "backup": str(target),
        "files": sorted(p.name for p in target.iterdir()),
    }


@post(
    "/{plugin_id:str}/purge",
    opt={"permission": ADMIN},
    status_code=200,
    summary="Purge an uninstalled plugin: back its data up, then drop its tables. Confirm with its id",
)
async def api_purge(
    ctx: RequestContext, plugin_id: str, data: PurgeIn, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    return await _purge(ctx, plugin_id, data.confirm)


@delete(
    "/{plugin_id:str}/purge",
    opt={"permission": ADMIN},
    status_code=200,
    summary="Purge (appendix C form): confirm with ?confirm=<plugin id> or a JSON body {confirm}",
)
async def api_purge_delete(
    request: HTMXRequest,
    ctx: RequestContext,
    plugin_id: str,
    confirm: str | None = None,
    x_tenant: str | None = TENANT_HEADER,
) -> dict[str, Any]:
    if confirm is None and await request.body():
        try:
            body = await request.json()
        except Exception:  # not JSON: treated as no confirmation
            body = None
        if isinstance(body, dict) and isinstance(body.get("confirm"), str):
            confirm = body["confirm"]
    return await _purge(ctx, plugin_id, confirm or "")


@post(
    "/{plugin_id:str}/upgrade",
    opt={"permission": ADMIN},
    status_code=200,
    request_max_body_size=MAX_UPLOAD_BYTES,
    summary="Upgrade an installed plugin from a newer package (multipart like upload)",
)
async def api_upgrade(
    ctx: RequestContext,
    plugin_id: str,
    data: MultipartUpload,
    allow_destructive: bool | None = None,
    x_tenant: str | None = TENANT_HEADER,
) -> dict[str, Any]:
    package = await _read_upload(data)
    found = lifecycle._plugin_id_of(package.manifest_text)
    if found != plugin_id:
        raise PortalError(f"This package is the plugin {found!r}, not {plugin_id!r}")
    row = await lifecycle.upgrade(
        ctx.db,
        ctx.actor,
        package,
        ctx.settings,
        allow_destructive=bool(allow_destructive) or _flag(data.allow_destructive),
    )
    return await describe(ctx.db, row, ctx.tenant_id, ctx.sandbox)


@get("/{plugin_id:str}/health", opt={"permission": VIEW}, summary="Platform state and the state per tenant")
async def api_health(
    ctx: RequestContext, plugin_id: str, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    return await health(ctx, plugin_id)


def _manifest_problem(_: Request, exc: ManifestRejected) -> Response[Any]:
    return problem(exc.status_code, exc.title, exc.detail, errors=exc.issues)


def _destructive_problem(_: Request, exc: DestructiveUpgrade) -> Response[Any]:
    return problem(exc.status_code, "Destructive upgrade refused", exc.detail, losses=exc.losses)


def _package_problem(_: Request, exc: PackageError) -> Response[Any]:
    return problem(422, "Invalid plugin package", str(exc))


api_router = Router(
    path="/api/v1/admin/plugins",
    route_handlers=[
        api_list,
        api_upload,
        api_detail,
        api_patch,
        api_install,
        api_enable,
        api_disable,
        api_uninstall,
        api_purge,
        api_purge_delete,
        api_upgrade,
        api_health,
    ],
    tags=["plugins"],
    exception_handlers={
        ManifestRejected: _manifest_problem,
        DestructiveUpgrade: _destructive_problem,
        PackageError: _package_problem,
    },
)

ROUTES: list[ControllerRouterHandler] = [*HTML_ROUTES, api_router]

__all__ = ["ROUTES", "describe", "health", "list_plugins", "plugin_json"]
