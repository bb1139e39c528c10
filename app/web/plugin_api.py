"""The plugin administration JSON API under /api/v1/admin/plugins (the pages are app.web.plugin_admin;
who may do what is in app.web.plugin_facts). Failures answer as problem documents: located manifest
issues, the list of losses of a destructive upgrade, the package's fault."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Request, Response, Router, delete, get, patch, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.plugins.htmx import HTMXRequest
from litestar.types import ControllerRouterHandler

from app.core.errors import PortalError
from app.core.i18n import N_
from app.installs import lifecycle, removal, stored
from app.installs.backups import backup_files
from app.installs.lifecycle import DestructiveUpgrade, ManifestRejected
from app.plugins.packages import Package, PackageError, read_zip
from app.web.context import TenantContext
from app.web.errors import problem
from app.web.plugin_facts import (
    ADMIN,
    MANAGE,
    MAX_UPLOAD_BYTES,
    TENANT_HEADER,
    VIEW,
    describe,
    flag,
    health,
    list_plugins,
)


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


async def _read_upload(ctx: TenantContext, data: UploadForm) -> Package:
    if not isinstance(data.plugin, UploadFile):
        raise PackageError(N_("Send the plugin package (.zip) in the multipart field `plugin`"))
    package = read_zip(await data.plugin.read())
    await stored.stage_package(ctx.services.blob_store, package)  # before the install's writes
    return package


async def _detail(ctx: TenantContext, plugin_id: str) -> dict[str, Any]:
    return await describe(ctx.db, await lifecycle.get(ctx.db, plugin_id), ctx.tenant_id, ctx.sandbox)


@get("/", opt={"permission": VIEW}, summary="All plugins with their platform state and this tenant's state")
async def api_list(ctx: TenantContext, x_tenant: str | None = TENANT_HEADER) -> dict[str, Any]:
    items = await list_plugins(ctx.db, ctx.tenant_id)
    return {"items": items, "total": len(items), "tenant": ctx.tenant.slug}


@post(
    "/upload",
    opt={"permission": ADMIN},
    status_code=201,
    request_max_body_size=MAX_UPLOAD_BYTES,
    summary="Upload a plugin package (a newer version of an installed plugin upgrades it)",
)
async def api_upload(
    ctx: TenantContext,
    data: MultipartUpload,
    install: bool | None = None,
    allow_destructive: bool | None = None,
    x_tenant: str | None = TENANT_HEADER,
) -> dict[str, Any]:
    package = await _read_upload(ctx, data)
    row = await lifecycle.upload(
        ctx.db,
        ctx.actor,
        package,
        ctx.settings,
        install_now=bool(install) or flag(data.install),
        allow_destructive=bool(allow_destructive) or flag(data.allow_destructive),
        sandbox=ctx.sandbox,
    )
    return await describe(ctx.db, row, ctx.tenant_id, ctx.sandbox)


@get(
    "/{plugin_id:str}",
    opt={"permission": VIEW},
    summary="A plugin's manifest facts, schema versions and states",
)
async def api_detail(
    ctx: TenantContext, plugin_id: str, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    return await _detail(ctx, plugin_id)


@patch(
    "/{plugin_id:str}",
    opt={"permission": ADMIN},
    summary="Platform settings of a plugin: enable_for_new_tenants (enabled, with on-tenant-created, in each new tenant)",
)
async def api_patch(
    ctx: TenantContext, plugin_id: str, data: PluginPatch, x_tenant: str | None = TENANT_HEADER
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
    ctx: TenantContext, plugin_id: str, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    await lifecycle.install(ctx.db, ctx.actor, plugin_id, sandbox=ctx.sandbox)
    return await _detail(ctx, plugin_id)


@post(
    "/{plugin_id:str}/enable",
    opt={"permission": MANAGE},
    status_code=200,
    summary="Enable an installed plugin in the X-Tenant tenant",
)
async def api_enable(
    ctx: TenantContext, plugin_id: str, x_tenant: str | None = TENANT_HEADER
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
    ctx: TenantContext, plugin_id: str, x_tenant: str | None = TENANT_HEADER
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
    ctx: TenantContext, plugin_id: str, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    await removal.uninstall(ctx.db, ctx.actor, plugin_id)
    return await _detail(ctx, plugin_id)


async def _purge(ctx: TenantContext, plugin_id: str, confirm: str) -> dict[str, Any]:
    target = await removal.purge(ctx.db, ctx.actor, plugin_id, confirm, ctx.settings)
    return {
        "id": plugin_id,
        "state": "purged",
        "backup": target.file_name,
        "download": f"/t/{ctx.tenant.slug}/admin/plugins/backups/{target.id}",
        "files": backup_files(await ctx.services.blob_store.get(ctx.db, target.blob_sha256)),
    }


@post(
    "/{plugin_id:str}/purge",
    opt={"permission": ADMIN},
    status_code=200,
    summary="Purge an uninstalled plugin: back its data up, then drop its tables. Confirm with its id",
)
async def api_purge(
    ctx: TenantContext, plugin_id: str, data: PurgeIn, x_tenant: str | None = TENANT_HEADER
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
    ctx: TenantContext,
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
    ctx: TenantContext,
    plugin_id: str,
    data: MultipartUpload,
    allow_destructive: bool | None = None,
    x_tenant: str | None = TENANT_HEADER,
) -> dict[str, Any]:
    package = await _read_upload(ctx, data)
    found = lifecycle._plugin_id_of(package.manifest_text)
    if found != plugin_id:
        raise PortalError(
            N_(
                "This package is the plugin %(found)s, not %(plugin_id)s",
                found=repr(found),
                plugin_id=repr(plugin_id),
            )
        )
    row = await lifecycle.upgrade(
        ctx.db,
        ctx.actor,
        package,
        ctx.settings,
        allow_destructive=bool(allow_destructive) or flag(data.allow_destructive),
        sandbox=ctx.sandbox,
    )
    return await describe(ctx.db, row, ctx.tenant_id, ctx.sandbox)


@get("/{plugin_id:str}/health", opt={"permission": VIEW}, summary="Platform state and the state per tenant")
async def api_health(
    ctx: TenantContext, plugin_id: str, x_tenant: str | None = TENANT_HEADER
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

ROUTES: list[ControllerRouterHandler] = [api_router]
