"""Taking a plugin off the platform: uninstall (soft: tables and data kept, the id stays taken) and
purge (a backup first, then its tables, permissions, tenant states and configurations are dropped)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import PLATFORM_VERSION, audit
from app.audit import Actor
from app.core import attachments
from app.core.errors import Conflict
from app.core.i18n import N_, phrase
from app.core.models import (
    CasbinRule,
    Permission,
    PluginBackup,
    PluginConfig,
    PluginPackage,
    PluginSchemaVersion,
    PluginTenant,
    Tenant,
    utcnow,
)
from app.core.settings import Settings
from app.installs.backups import backup
from app.installs.lifecycle import ManifestRejected, all_plugins, get, state_name
from app.manifest import ManifestError, ValidationContext, parse_manifest
from app.plugins import runtime
from app.plugins.modules import available_modules


async def uninstall(session: AsyncSession, actor: Actor, plugin_id: str) -> PluginPackage:
    row = await get(session, plugin_id)
    if row.deleted_at is not None:
        raise Conflict(N_("%(plugin_id)s is already uninstalled", plugin_id=plugin_id))
    if row.status != "installed":
        raise Conflict(
            N_(
                "%(plugin_id)s is not installed (state: %(state)s)",
                plugin_id=plugin_id,
                state=phrase(state_name(row)),
            )
        )
    enabled_in = (
        await session.scalars(
            select(Tenant.slug)
            .join(PluginTenant, PluginTenant.tenant_id == Tenant.id)
            .where(PluginTenant.plugin_id == plugin_id, PluginTenant.status == "enabled")
        )
    ).all()
    if enabled_in:
        raise Conflict(
            N_(
                "%(plugin_id)s is still enabled in: %(enabled_in)s; disable it there first",
                plugin_id=plugin_id,
                enabled_in=", ".join(enabled_in),
            )
        )
    dependants = [
        p.id
        for p in await runtime.installed(session)
        if p.id != plugin_id and any(d.id == plugin_id for d in p.manifest.dependencies.plugins)
    ]
    if dependants:
        raise Conflict(
            N_(
                "Uninstall %(dependants)s first: it depends on %(plugin_id)s",
                dependants=", ".join(dependants),
                plugin_id=plugin_id,
            )
        )
    row.deleted_at = utcnow()
    await session.flush()
    await runtime.plugins_changed(session)  # platform-wide: every tenant's set
    await audit.record(
        session,
        actor,
        "plugin.uninstall",
        "plugin",
        plugin_id,
        summary=f"Uninstalled {plugin_id} (tables and data kept)",
    )
    return row


async def purge(
    session: AsyncSession, actor: Actor, plugin_id: str, confirm: str, settings: Settings
) -> PluginBackup:
    row = await get(session, plugin_id)
    if row.deleted_at is None:
        raise Conflict(N_("Uninstall %(plugin_id)s before purging it", plugin_id=plugin_id))
    if confirm.strip() != plugin_id:
        raise Conflict(
            N_(
                "Type the plugin id (%(plugin_id)s) to confirm the purge; nothing was deleted",
                plugin_id=plugin_id,
            )
        )
    # Entities of the other plugins (uninstalled ones too) resolve this manifest's references to them.
    others = runtime.catalog_of(session).load_all(
        [r for r in await all_plugins(session) if r.plugin_id != plugin_id]
    )
    try:
        manifest = parse_manifest(
            row.manifest_toml,
            ValidationContext(
                platform_version=PLATFORM_VERSION,
                available_modules=available_modules(),
                installed_plugins=runtime._AnyVersion(),
                foreign_entity_specs={e: ref.spec for p in others for e, ref in p.entities.items()},
            ),
        )
    except ManifestError as exc:
        raise ManifestRejected(exc) from exc
    target = await backup(session, manifest, row.manifest_toml, "purge")
    await attachments.purge_plugin(session, plugin_id)  # its records' files (blobs no longer used too)
    conn = await session.connection()
    for entity in manifest.entities:
        await conn.execute(sa.text(f'DROP TABLE IF EXISTS "{entity.table_name}"'))
    codes = [*manifest.permission_codes]
    await session.execute(delete(CasbinRule).where(CasbinRule.ptype == "p", CasbinRule.v2.in_(codes)))
    await session.execute(delete(Permission).where(Permission.code.in_(codes)))
    await session.execute(delete(PluginSchemaVersion).where(PluginSchemaVersion.plugin_id == plugin_id))
    await session.execute(delete(PluginTenant).where(PluginTenant.plugin_id == plugin_id))
    await session.execute(delete(PluginConfig).where(PluginConfig.plugin_id == plugin_id))  # secrets included
    await session.delete(row)
    await session.flush()
    await runtime.plugins_changed(session)  # platform-wide: every tenant's set
    await audit.record(
        session,
        actor,
        "plugin.purge",
        "plugin",
        plugin_id,
        summary=f"Purged {plugin_id}; backup {target.file_name}",
    )
    return target
