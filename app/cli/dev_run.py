"""`portal plugin run`: render a plugin's page (or run an action, or deliver an event) against a real
database, as a user of a tenant, and report the UI JSON with the call's figures — a local runner for
plugin authors.

The working copy is installed (under a dev revision when other content of the plugin is installed) and
enabled inside the run's transaction, and everything is rolled back at the end unless `commit` is asked for, so
a dry run leaves no trace (DDL included on PostgreSQL and SQLite)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.cache import compute_access
from app.access.scopes import DataScope, ScopeCache, scope_version
from app.audit import Actor
from app.core.errors import NotFound
from app.core.models import Membership, PluginPackage, Tenant, User
from app.core.nesting import loads_json
from app.core.settings import SYSTEM_TENANT_ID, Settings
from app.identity import directory
from app.installs import lifecycle
from app.plugins import runtime
from app.sandbox.build import package_from
from app.sandbox.engine import ComponentRejected
from app.sandbox.host import Principal
from app.sandbox.outcomes import GuestFailure
from app.sandbox.runner import Sandbox, plugin_principal
from app.ui import parse_ui


async def _user_and_tenant(s: AsyncSession, email: str | None, tenant_ref: str | None) -> tuple[User, Tenant]:
    if email:
        user = await directory.find_user(s, email)
        if user is None:
            raise NotFound(f"No user {email}")
    else:  # the first platform admin
        user = await s.scalar(
            select(User)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.tenant_id == SYSTEM_TENANT_ID)
            .order_by(User.created_at)
            .limit(1)
        )
        if user is None:
            raise NotFound("No platform admin yet: run `portal serve` once, or pass --user")
    if tenant_ref:
        tenant = await directory.get_tenant(s, tenant_ref)
    else:
        tenants = [t for t, _ in await directory.memberships_of(s, user.id) if str(t.id) != SYSTEM_TENANT_ID]
        if not tenants:
            tenants = [t for t in await directory.active_tenants(s, limit=2) if str(t.id) != SYSTEM_TENANT_ID]
        if not tenants:
            raise NotFound("No tenant to run in: create one, or pass --tenant")
        tenant = tenants[0]
    return user, tenant


async def _install_working_copy(
    s: AsyncSession, actor: Actor, package: Any, settings: Settings
) -> PluginPackage:
    """The folder's package, installed: as it is when this exact content is installed, else under a dev
    revision (`<version>-dev.<unix time>`) that replaces whatever is installed, so an author never has
    to bump the version between edits."""
    plugin_id = lifecycle._plugin_id_of(package.manifest_text) or ""
    row = await s.scalar(select(PluginPackage).where(PluginPackage.plugin_id == plugin_id))
    if row is not None and row.status == "installed" and row.deleted_at is None:
        if row.package_sha256 == package.sha256:
            return row
        manifest = await lifecycle.validate(s, package.manifest_text, excluding=plugin_id)
        revision = f"{manifest.version}{'.' if '-' in manifest.version else '-'}dev.{int(time.time())}"
        return await lifecycle.upgrade(s, actor, package, settings, dev_revision=revision)
    row = await lifecycle.upload(s, actor, package, settings, install_now=True)
    if row.status != "installed":
        row = await lifecycle.install(s, actor, row.plugin_id)
    return row


async def run(
    s: AsyncSession,
    settings: Settings,
    folder: Path,
    page_path: str | None,
    params: dict[str, Any],
    *,
    event: str | None = None,
    payload: dict[str, Any] | None = None,
    tenant_ref: str | None = None,
    email: str | None = None,
    action: str | None = None,
    data: dict[str, Any] | None = None,
    commit: bool = False,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    package = package_from(folder)
    # The author wants the call's peak memory, and each edit compiled fast: Winch compiles a Python guest
    # ~5x faster than Cranelift (unless PORTAL_WASM_COMPILER says otherwise).
    compiler = settings.wasm_compiler if os.environ.get("PORTAL_WASM_COMPILER") else "winch"
    sandbox = Sandbox(replace(settings, wasm_memory_stats=True, wasm_compiler=compiler))
    sandbox.fixed_now = now
    wasm = package.wasm
    if wasm is not None:
        # Compile before the first query: the call below runs in this session's transaction, which must
        # never wait for a compile (SQLite: the server's writes would fail meanwhile).
        with contextlib.suppress(ComponentRejected):  # the call reports it
            await asyncio.to_thread(sandbox.components.get, lambda: wasm, hashlib.sha256(wasm).hexdigest())
    user, tenant = await _user_and_tenant(s, email, tenant_ref)
    actor = Actor(user.id, user.email, "cli")
    row = await _install_working_copy(s, actor, package, settings)
    states = await lifecycle.tenant_states(s, tenant.id)
    if states.get(row.plugin_id) is None or states[row.plugin_id].status != "enabled":
        await lifecycle.enable(s, actor, tenant.id, row.plugin_id)
    plugin = next(p for p in await runtime.enabled_for(s, tenant.id) if p.id == row.plugin_id)
    if event is not None:
        call: tuple[str, ...] = ("handle-event", event, json.dumps(payload or {}))
        target = f"event {event}"
    else:
        wanted = "/" + (page_path or "").strip("/")
        spec = next((p for p in plugin.manifest.pages if p.path == wanted or p.path.endswith(wanted)), None)
        if spec is None:
            raise NotFound(
                f"{plugin.id} has no page {wanted} (pages: {', '.join(p.path for p in plugin.manifest.pages)})"
            )
        target = spec.path
        if action:
            call = ("handle-action", spec.path, action, json.dumps(data or {}))
        else:
            call = ("render-page", spec.path, json.dumps(params))
    access = await compute_access(s, user.id, tenant.id)
    principal = Principal(
        actor,
        access.permissions.allows,
        {
            "id": str(user.id),
            "email": user.email,
            "display_name": user.display_name,
            "language": user.language,
            "tenant_id": str(tenant.id),
            "tenant_slug": tenant.slug,
        },
        scope=DataScope(
            ScopeCache(), tenant.id, user.id, scope_version(tenant), bypass=access.bypasses_scopes
        ),
    )
    out: dict[str, Any] = {
        "plugin": plugin.id,
        "version": row.version,
        "page": target,
        "tenant": tenant.slug,
        "user": user.email,
        "limits": asdict(sandbox.limits_for(plugin)),
    }
    try:
        if event is not None:  # as event delivery does: the handler acts as the plugin, not as a user
            principal = plugin_principal(plugin, tenant.id, await sandbox._reachable(s, plugin, tenant.id))
        text = await sandbox.call(s, plugin, tenant.id, principal, *call, record_faults=False)
        if event is None:
            view = parse_ui(text or "", can=access.permissions.allows)
            try:
                out["ui"] = loads_json(text or "null", max_bytes=10_000_000)
            except ValueError:  # not JSON, or nested too deeply: the problems say which
                out["ui"] = None
            out["problems"] = [{"path": p.path, "message": p.message} for p in view.problems]
    except GuestFailure as failure:
        out["failure"] = {"kind": failure.kind, "message": failure.message, "detail": failure.detail}
    finally:
        sandbox.close()
    stats = sandbox.last
    out["stats"] = {k: v for k, v in asdict(stats).items() if k not in {"at", "logs"}} if stats else None
    out["logs"] = [{"level": lvl, "message": msg} for lvl, msg in (stats.logs if stats else [])]
    if commit:
        await s.commit()
    else:
        await s.rollback()
    return out
