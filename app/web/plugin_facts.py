"""Facts about plugins shared by the plugin administration pages (app.web.plugin_admin) and the JSON
API (app.web.plugin_api): their states, manifest facts, schema versions, runtime figures and health.

Who may do what:
  plugin:view    see the plugins, their detail and health (tenant scope)
  plugin:manage  enable / disable a plugin in this tenant
  plugin:admin   upload, install, upgrade, uninstall, purge (platform: counts only when granted in the
                 system tenant)
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from litestar.params import Parameter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.matrix import ENTITY_VERBS
from app.core.i18n import Msg
from app.core.models import Permission, PluginFault, PluginPackage, PluginSchemaVersion, PluginTenant, Tenant
from app.core.tenancy import in_tenant, tenant_is
from app.installs import lifecycle
from app.manifest import Manifest, ManifestError
from app.plugins import runtime
from app.plugins.packages import MAX_UNPACKED_BYTES
from app.records.values import to_json
from app.sandbox import Sandbox
from app.web.context import TenantContext

VIEW, MANAGE, ADMIN = "plugin:view", "plugin:manage", "plugin:admin"
# A zip is never much larger than what it unpacks to; leave room for the multipart envelope.
MAX_UPLOAD_BYTES = MAX_UNPACKED_BYTES + 1024 * 1024
TENANT_HEADER = Parameter(
    header="X-Tenant", required=False, description="Tenant slug or id; defaults to your only tenant"
)


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
        stmt = stmt.where(tenant_is(PluginFault, tenant_id))
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
        in_tenant(PluginTenant, tenant_id).where(PluginTenant.plugin_id == row.plugin_id)
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
    described: dict[str, Any] = {  # in the reader's language where shown (the stored text is English)
        f"db.{e.name}.{op}": Msg(verb, {"entity": e.label or e.name})
        for e in manifest.entities
        for op, verb in ENTITY_VERBS.items()
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
                "description": described.get(c) or (registered[c].description if c in registered else ""),
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


async def health(ctx: TenantContext, plugin_id: str) -> dict[str, Any]:
    """Platform state and the state per tenant; tenant admins see their own tenant only."""
    row = await lifecycle.get(ctx.db, plugin_id)
    stmt = (
        select(PluginTenant, Tenant.slug)
        .join(Tenant, Tenant.id == PluginTenant.tenant_id)
        .where(PluginTenant.plugin_id == plugin_id)
        .order_by(Tenant.slug)
    )
    if not ctx.can(ADMIN):
        stmt = stmt.where(tenant_is(PluginTenant, ctx.tenant_id))
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


def flag(value: Any) -> bool:
    return str(value).strip().lower() in {"1", "true", "yes", "on"}
