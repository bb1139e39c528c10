"""Plugin administration pages under /t/{tenant}/admin/plugins (the JSON API is app.web.plugin_api;
who may do what is in app.web.plugin_facts).

Every failure a person can cause — a bad package, an invalid manifest, a destructive upgrade, an
illegal transition — is shown as such: located manifest issues, the list of losses, the conflict's
reason. A failed action answers 4xx, so its transaction is rolled back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from litestar import Response, get, post
from litestar.datastructures import FormMultiDict, UploadFile
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template
from litestar.types import ControllerRouterHandler
from sqlalchemy import select

from app.core.errors import NotFound, PortalError
from app.core.i18n import N_, message_of
from app.core.models import PluginBackup, PluginPackage
from app.core.validation import Issue
from app.installs import lifecycle, removal, stored
from app.installs.backups import backup_files
from app.installs.lifecycle import DestructiveUpgrade, ManifestRejected
from app.plugins.packages import MAX_UNPACKED_BYTES, Package, PackageError, read_zip
from app.web.context import TenantContext
from app.web.plugin_facts import ADMIN, MANAGE, MAX_UPLOAD_BYTES, VIEW, describe, flag, list_plugins
from app.web.render import page, redirect


def T(path: str) -> str:
    return "/t/{tenant:str}/admin/plugins" + path


@dataclass
class Failure:
    """What went wrong, for the error box of the pages (messages as msgids: shown in the reader's
    language)."""

    status: int
    title: str
    detail: str
    issues: list[Issue]
    losses: list[str]

    @classmethod
    def of(cls, exc: Exception) -> Failure:
        if isinstance(exc, ManifestRejected):
            return cls(
                exc.status_code,
                exc.title,
                N_("The manifest (plugin.toml) has these problems:"),
                exc.located,
                [],
            )
        if isinstance(exc, DestructiveUpgrade):
            return cls(
                exc.status_code,
                N_("Destructive upgrade refused"),
                N_(
                    "The upgrade would lose data. Tick “allow destructive upgrade” to back the data up and "
                    "apply it anyway."
                ),
                [],
                exc.losses,
            )
        if isinstance(exc, PackageError):
            return cls(422, N_("Invalid plugin package"), message_of(exc), [], [])
        assert isinstance(exc, PortalError)
        return cls(exc.status_code, exc.title, exc.detail, [], [])


async def _reset(ctx: TenantContext) -> None:
    """Roll back a failed action, so the page re-rendered after it shows what is really stored."""
    await ctx.db.rollback()
    for obj in (ctx.user, ctx.tenant):
        await ctx.db.refresh(obj)
    ctx._memberships = None


def _base(ctx: TenantContext) -> str:
    return f"/t/{ctx.tenant.slug}/admin/plugins"


async def _list_page(
    request: HTMXRequest,
    ctx: TenantContext,
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
    ctx: TenantContext,
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


async def _package_from(ctx: TenantContext, form: FormMultiDict) -> Package:
    upload = form.get("plugin")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise PackageError(N_("Choose a plugin package (.zip) to upload"))
    package = read_zip(await upload.read())
    await stored.stage_package(ctx.services.blob_store, package)  # before the install's writes
    return package


async def _failed(
    request: HTMXRequest,
    ctx: TenantContext,
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
async def plugins_page(request: HTMXRequest, ctx: TenantContext) -> Template:
    return await _list_page(request, ctx)


@post(
    T("/upload"), opt={"permission": ADMIN}, include_in_schema=False, request_max_body_size=MAX_UPLOAD_BYTES
)
async def upload_page(request: HTMXRequest, ctx: TenantContext) -> Template | Redirect | Response[Any]:
    form = await request.form()
    values = {
        "install_now": flag(form.get("install_now")),
        "allow_destructive": flag(form.get("allow_destructive")),
    }
    try:
        package = await _package_from(ctx, form)
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
            sandbox=ctx.sandbox,
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
async def plugin_page(request: HTMXRequest, ctx: TenantContext, plugin_id: str) -> Template:
    return await _detail_page(request, ctx, plugin_id)


def _back(ctx: TenantContext, form: FormMultiDict, plugin_id: str) -> str:
    return _base(ctx) if form.get("from") == "list" else f"{_base(ctx)}/{plugin_id}"


async def _action(
    request: HTMXRequest, ctx: TenantContext, plugin_id: str, work: Any, message: str
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
async def install_page(request: HTMXRequest, ctx: TenantContext, plugin_id: str) -> Template | Redirect:
    return await _action(
        request,
        ctx,
        plugin_id,
        lambda: lifecycle.install(ctx.db, ctx.actor, plugin_id, sandbox=ctx.sandbox),
        N_("Installed %(plugin)s", plugin=plugin_id),
    )


@post(T("/{plugin_id:str}/enable"), opt={"permission": MANAGE}, include_in_schema=False)
async def enable_page(request: HTMXRequest, ctx: TenantContext, plugin_id: str) -> Template | Redirect:
    return await _action(
        request,
        ctx,
        plugin_id,
        lambda: lifecycle.enable(ctx.db, ctx.actor, ctx.tenant_id, plugin_id, sandbox=ctx.sandbox),
        N_("Enabled %(plugin)s in %(tenant)s", plugin=plugin_id, tenant=ctx.tenant.name),
    )


@post(T("/{plugin_id:str}/disable"), opt={"permission": MANAGE}, include_in_schema=False)
async def disable_page(request: HTMXRequest, ctx: TenantContext, plugin_id: str) -> Template | Redirect:
    return await _action(
        request,
        ctx,
        plugin_id,
        lambda: lifecycle.disable(ctx.db, ctx.actor, ctx.tenant_id, plugin_id),
        N_("Disabled %(plugin)s in %(tenant)s", plugin=plugin_id, tenant=ctx.tenant.name),
    )


@post(T("/{plugin_id:str}/uninstall"), opt={"permission": ADMIN}, include_in_schema=False)
async def uninstall_page(request: HTMXRequest, ctx: TenantContext, plugin_id: str) -> Template | Redirect:
    return await _action(
        request,
        ctx,
        plugin_id,
        lambda: removal.uninstall(ctx.db, ctx.actor, plugin_id),
        N_("Uninstalled %(plugin)s; its tables and data are kept until it is purged", plugin=plugin_id),
    )


@post(
    T("/{plugin_id:str}/upgrade"),
    opt={"permission": ADMIN},
    include_in_schema=False,
    request_max_body_size=MAX_UPLOAD_BYTES,
)
async def upgrade_page(request: HTMXRequest, ctx: TenantContext, plugin_id: str) -> Template | Redirect:
    form = await request.form()
    values = {"allow_destructive": flag(form.get("allow_destructive"))}
    try:
        package = await _package_from(ctx, form)
        found = lifecycle._plugin_id_of(package.manifest_text)
        if found != plugin_id:
            raise PortalError(
                N_(
                    "This package is the plugin %(found)s, not %(plugin_id)s; upload it from the plugin list",
                    found=repr(found),
                    plugin_id=repr(plugin_id),
                )
            )
        old = (await lifecycle.get(ctx.db, plugin_id)).version
        row = await lifecycle.upgrade(
            ctx.db,
            ctx.actor,
            package,
            ctx.settings,
            allow_destructive=values["allow_destructive"],
            sandbox=ctx.sandbox,
        )
    except _FAILURES as exc:
        return await _failed(request, ctx, exc, plugin_id, values)
    return redirect(
        f"{_base(ctx)}/{plugin_id}",
        N_("Upgraded %(plugin)s %(old)s → %(new)s", plugin=plugin_id, old=old, new=row.version),
    )


@post(T("/{plugin_id:str}/purge"), opt={"permission": ADMIN}, include_in_schema=False, status_code=200)
async def purge_page(request: HTMXRequest, ctx: TenantContext, plugin_id: str) -> Template:
    form = await request.form()
    confirm = form.get("confirm")
    try:
        target = await removal.purge(
            ctx.db, ctx.actor, plugin_id, confirm if isinstance(confirm, str) else "", ctx.settings
        )
    except _FAILURES as exc:
        return await _failed(request, ctx, exc, plugin_id)
    files = backup_files(await ctx.services.blob_store.get(ctx.db, target.blob_sha256))
    return await page(
        request,
        ctx,
        "plugins/purged.html",
        plugin_id=plugin_id,
        backup=target,
        download=f"{_base(ctx)}/backups/{target.id}",
        files=files,
    )


@get(T("/backups/{backup_id:uuid}"), opt={"permission": ADMIN}, include_in_schema=False)
async def backup_download(ctx: TenantContext, backup_id: uuid.UUID) -> Response[bytes]:
    """A backup of a purged (or destructively upgraded) plugin's data, as a zip download. Stored in the
    database, so any host serves it; platform admins only (the purge permission)."""
    record = await ctx.db.get(PluginBackup, backup_id)
    if record is None:
        raise NotFound(N_("No such backup"))
    return Response(
        await ctx.services.blob_store.get(ctx.db, record.blob_sha256),
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{record.file_name}"',
            "Cache-Control": "no-store",
        },
    )


@post(T("/{plugin_id:str}/new-tenants"), opt={"permission": ADMIN}, include_in_schema=False)
async def new_tenants_page(request: HTMXRequest, ctx: TenantContext, plugin_id: str) -> Template | Redirect:
    form = await request.form()
    on = flag(form.get("enable"))
    return await _action(
        request,
        ctx,
        plugin_id,
        lambda: lifecycle.set_enable_for_new_tenants(ctx.db, ctx.actor, plugin_id, on),
        N_("%(plugin)s will be enabled in new tenants", plugin=plugin_id)
        if on
        else N_("%(plugin)s will no longer be enabled in new tenants", plugin=plugin_id),
    )


ROUTES: list[ControllerRouterHandler] = [
    plugins_page,
    upload_page,
    plugin_page,
    install_page,
    enable_page,
    disable_page,
    uninstall_page,
    upgrade_page,
    purge_page,
    backup_download,
    new_tenants_page,
]
