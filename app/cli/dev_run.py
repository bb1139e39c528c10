"""`portal plugin run`: render a plugin's page (or run an action) against a real database, as a user of
a tenant, and report the UI JSON with the call's figures — a local runner for plugin authors.

The plugin is uploaded, installed and enabled inside the run's transaction when the database does not
have this exact package yet, and everything is rolled back at the end unless `commit` is asked for, so
a dry run leaves no trace (DDL included on PostgreSQL and SQLite)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import tempfile
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
from app.sandbox.runner import Sandbox
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


async def run(
    s: AsyncSession,
    settings: Settings,
    folder: Path,
    page_path: str,
    params: dict[str, Any],
    *,
    tenant_ref: str | None = None,
    email: str | None = None,
    action: str | None = None,
    data: dict[str, Any] | None = None,
    commit: bool = False,
) -> dict[str, Any]:
    package = package_from(folder)
    sandbox = Sandbox(replace(settings, wasm_memory_stats=True))  # the author wants the call's peak memory
    if package.wasm is not None:
        # Compile before the first query: the call below runs in this session's transaction, which must
        # never wait for a compile (SQLite: the server's writes would fail meanwhile).
        with tempfile.TemporaryDirectory() as work:
            wasm = Path(work) / "plugin.wasm"
            wasm.write_bytes(package.wasm)
            with contextlib.suppress(ComponentRejected):  # the call reports it
                await asyncio.to_thread(
                    sandbox.components.get, wasm, hashlib.sha256(package.wasm).hexdigest()
                )
    user, tenant = await _user_and_tenant(s, email, tenant_ref)
    actor = Actor(user.id, user.email, "cli")
    row = await s.scalar(
        select(PluginPackage).where(
            PluginPackage.package_sha256 == package.sha256, PluginPackage.status == "installed"
        )
    )
    if row is None:
        row = await lifecycle.upload(s, actor, package, settings, install_now=True)
        if row.status != "installed":
            row = await lifecycle.install(s, actor, row.plugin_id)
    states = await lifecycle.tenant_states(s, tenant.id)
    if states.get(row.plugin_id) is None or states[row.plugin_id].status != "enabled":
        await lifecycle.enable(s, actor, tenant.id, row.plugin_id)
    plugin = next(p for p in await runtime.enabled_for(s, tenant.id) if p.id == row.plugin_id)
    wanted = "/" + page_path.strip("/")
    spec = next((p for p in plugin.manifest.pages if p.path == wanted or p.path.endswith(wanted)), None)
    if spec is None:
        raise NotFound(
            f"{plugin.id} has no page {wanted} (pages: {', '.join(p.path for p in plugin.manifest.pages)})"
        )
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
        "page": spec.path,
        "tenant": tenant.slug,
        "user": user.email,
        "limits": asdict(sandbox.limits_for(plugin)),
    }
    try:
        args = (spec.path, action, json.dumps(data or {})) if action else (spec.path, json.dumps(params))
        text = await sandbox.call(
            s,
            plugin,
            tenant.id,
            principal,
            "handle-action" if action else "render-page",
            *args,
            record_faults=False,
        )
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
