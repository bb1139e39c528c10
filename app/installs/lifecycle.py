"""Plugin lifecycle: uploaded → installed → enabled/disabled per tenant →
uninstalled (soft: tables and data kept) → purged (backup first, then drop tables).

Uninstalling and purging are in `removal`, the backups taken before data is lost in `backups`. Every
step runs in the caller's transaction, so on PostgreSQL a failed step leaves nothing behind
(DDL included). Illegal transitions raise Conflict with the reason.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import PLATFORM_VERSION, audit
from app.access import policy
from app.access.permissions import PermissionDef, register_permissions
from app.audit import Actor
from app.core.errors import Conflict, NotFound, PortalError
from app.core.i18n import N_, message_of, phrase
from app.core.limits import problems as limit_problems
from app.core.models import Permission, PluginPackage, PluginSchemaVersion, PluginTenant, Role
from app.core.nesting import TextRejected, loads_toml
from app.core.settings import Settings
from app.installs import reserved
from app.installs.backups import apply_destructive, backup
from app.installs.stored import keep_package
from app.manifest import (
    MANIFEST_MAX_BYTES,
    MANIFEST_MAX_DEPTH,
    Manifest,
    ManifestError,
    ManifestIssue,
    ValidationContext,
    parse_manifest,
    parse_version,
)
from app.plugins import runtime
from app.plugins.modules import available_modules
from app.plugins.packages import Package, PackageError
from app.sandbox.engine import ComponentRejected, check_component_bytes, missing_exports, needed_exports
from app.schema import apply_additive, diff_entities, ensure_tables
from app.schema.diff import SchemaDiff

log = logging.getLogger("portal.plugins")
PLATFORM_PERMISSIONS = [
    PermissionDef(
        "plugin:admin",
        N_("Upload, install, upgrade, uninstall and purge plugins (platform)"),
        "base",
        "platform",
    ),
    PermissionDef("plugin:manage", N_("Enable and disable plugins in this tenant")),
    PermissionDef("plugin:configure", N_("Configure plugins in this tenant")),
    PermissionDef("plugin:view", N_("See the plugins of this tenant and their health")),
]


class ManifestRejected(PortalError):
    """The manifest is invalid; `issues` are the located messages."""

    status_code = 422
    title = N_("Invalid plugin manifest")

    def __init__(self, error: ManifestError) -> None:
        super().__init__(str(error))
        self.issues = [str(i) for i in error.issues]  # English, for the JSON API
        self.located = list(error.issues)  # messages kept as msgids, for pages in the reader's language


class DestructiveUpgrade(Conflict):
    def __init__(self, losses: list[str]) -> None:
        super().__init__(
            N_(
                "The upgrade would lose data: %(losses)s. Re-run with allow_destructive to back up and apply it.",
                losses="; ".join(losses),
            )
        )
        self.losses = losses


async def _rows(session: AsyncSession, *, include_deleted: bool = False) -> list[PluginPackage]:
    stmt = select(PluginPackage).order_by(PluginPackage.plugin_id)
    if not include_deleted:
        stmt = stmt.where(PluginPackage.deleted_at.is_(None))
    return list((await session.scalars(stmt)).all())


async def get(session: AsyncSession, plugin_id: str) -> PluginPackage:
    row = await session.scalar(select(PluginPackage).where(PluginPackage.plugin_id == plugin_id))
    if row is None:
        raise NotFound(N_("No plugin %(plugin_id)s", plugin_id=repr(plugin_id)))
    return row


async def validation_context(session: AsyncSession, excluding: str | None = None) -> ValidationContext:
    others = [p for p in await runtime.installed(session) if p.id != excluding]
    foreign = {e: p.id for p in others for e in p.entities}
    # The registry knows every entity still holding its table and permissions, uninstalled plugins'
    # included (kept until a purge): such a name stays taken.
    for code, module in (
        await session.execute(select(Permission.code, Permission.module).where(Permission.code.like("db.%")))
    ).all():
        if module != excluding and module not in reserved.base_modules():
            foreign.setdefault(code.split(".")[1], module)
    return ValidationContext(
        platform_version=PLATFORM_VERSION,
        available_modules=available_modules(),
        installed_plugins={p.id: p.manifest.version for p in others},
        foreign_entities=foreign,
        foreign_entity_specs={e: ref.spec for p in others for e, ref in p.entities.items()},
        entity_name_clash=reserved.entity_name_clash,
        plugin_id_clash=reserved.plugin_id_clash,
    )


async def validate(session: AsyncSession, text: str, excluding: str | None = None) -> Manifest:
    ctx = await validation_context(session, excluding)
    try:
        return parse_manifest(text, ctx)
    except ManifestError as exc:
        raise ManifestRejected(exc) from exc


def _plugin_id_of(text: str) -> str | None:
    import tomllib

    try:  # too large or deep: None, and the validation that follows says why
        value = (
            loads_toml(text, max_depth=MANIFEST_MAX_DEPTH, max_bytes=MANIFEST_MAX_BYTES)
            .get("plugin", {})
            .get("id")
        )
    except (tomllib.TOMLDecodeError, TextRejected, AttributeError):
        return None
    return value if isinstance(value, str) else None


def exports_for(manifest: Manifest) -> list[str]:
    """The guest functions this manifest's pages, subscriptions and extension points will call."""
    return needed_exports(
        any(p.type == "custom" for p in manifest.pages),
        bool(manifest.events.subscribed),
        [e.point for e in manifest.extensions],
    )


def _accept_package(package: Package, manifest: Manifest, settings: Settings, row: PluginPackage) -> None:
    """Checks beyond the manifest: limits within the platform maximum and a component of our interface."""
    too_high = limit_problems(manifest.limits, settings.wasm_maximum)
    if too_high:
        raise ManifestRejected(ManifestError(ManifestIssue(*p.split(": ", 1)) for p in too_high))
    wasm = package.wasm
    if wasm is None and manifest.extensions:
        raise PackageError(
            N_("plugin.toml declares [[extensions]] but the package has no plugin.wasm implementing them")
        )
    if wasm is not None:
        try:
            check_component_bytes(wasm, needs_extensions=bool(manifest.extensions))
            lacking = missing_exports(wasm, exports_for(manifest))
            if lacking:
                raise ComponentRejected(
                    N_(
                        "plugin.wasm does not export what plugin.toml declares: %(lacking)s",
                        lacking=", ".join(lacking),
                    )
                )
        except ComponentRejected as exc:
            raise PackageError(message_of(exc)) from exc
    row.manifest_toml, row.package_sha256, row.has_wasm = (
        package.manifest_text,
        package.sha256,
        wasm is not None,
    )
    row.wasm_sha256 = hashlib.sha256(wasm).hexdigest() if wasm is not None else ""


async def upload(
    session: AsyncSession,
    actor: Actor,
    package: Package,
    settings: Settings,
    *,
    bundled: bool = False,
    install_now: bool = False,
    allow_destructive: bool = False,
    sandbox: Any = None,
) -> PluginPackage:
    """Register a package. A newer version of an installed plugin is an upgrade. With `sandbox` (this
    host's) its component starts compiling once the transaction commits."""
    plugin_id = _plugin_id_of(package.manifest_text)
    existing = (
        await session.scalar(select(PluginPackage).where(PluginPackage.plugin_id == plugin_id))
        if plugin_id
        else None
    )
    if existing is not None and existing.status == "installed" and existing.deleted_at is None:
        return await upgrade(
            session, actor, package, settings, allow_destructive=allow_destructive, sandbox=sandbox
        )
    manifest = await validate(session, package.manifest_text, excluding=plugin_id)
    if existing is not None and parse_version(manifest.version) < parse_version(existing.version):
        raise Conflict(
            N_(
                "%(id)s %(version)s was installed before; downgrading to %(version2)s is refused",
                id=manifest.id,
                version=existing.version,
                version2=manifest.version,
            )
        )
    row = existing or PluginPackage(plugin_id=manifest.id)
    _accept_package(package, manifest, settings, row)
    await keep_package(session, package, row)
    row.name, row.version, row.description = (
        manifest.plugin.name,
        manifest.version,
        manifest.plugin.description,
    )
    row.bundled = bundled
    row.error_message = ""
    if existing is None:
        row.status = "uploaded"
        session.add(row)
    elif existing.status != "installed":
        row.status = "uploaded"
    await session.flush()
    await runtime.plugins_changed(session)  # platform-wide: every tenant's set
    await audit.record(
        session,
        actor,
        "plugin.upload",
        "plugin",
        manifest.id,
        summary=f"Uploaded {manifest.id} {manifest.version}",
        after={"version": manifest.version, "sha256": package.sha256},
    )
    if install_now:
        return await install(session, actor, manifest.id, sandbox=sandbox)
    compile_after_commit(session, sandbox, row)
    return row


async def _record_schema_versions(
    session: AsyncSession, manifest: Manifest, changed: set[str] | None
) -> None:
    current = {
        v.entity_name: v
        for v in (
            await session.scalars(
                select(PluginSchemaVersion).where(PluginSchemaVersion.plugin_id == manifest.id)
            )
        ).all()
    }
    for entity in manifest.entities:
        row = current.get(entity.name)
        if row is None:
            session.add(
                PluginSchemaVersion(
                    plugin_id=manifest.id,
                    entity_name=entity.name,
                    schema_version=1,
                    plugin_version=manifest.version,
                )
            )
        else:
            if changed is not None and entity.name in changed:
                row.schema_version += 1
            row.plugin_version = manifest.version


async def _register(session: AsyncSession, manifest: Manifest) -> None:
    defs = []
    for entity in manifest.entities:
        label = entity.label or entity.name
        for op, verb in (("select", "View"), ("insert", "Create"), ("update", "Edit"), ("delete", "Delete")):
            defs.append(PermissionDef(f"db.{entity.name}.{op}", f"{verb} {label} records", manifest.id))
    defs += [PermissionDef(p.code, p.description, manifest.id) for p in manifest.ui_permissions]
    await register_permissions(session, defs)


def compile_after_commit(session: AsyncSession, sandbox: Any, row: PluginPackage) -> None:
    """The receiving host compiles the component after the commit, in the background (no transaction
    held), so its first call does not wait; other hosts compile at their next start or first need."""
    if sandbox is not None and row.has_wasm:
        sandbox.compile_after_commit(session, row.wasm_sha256)


async def install(
    session: AsyncSession, actor: Actor, plugin_id: str, *, sandbox: Any = None
) -> PluginPackage:
    row = await get(session, plugin_id)
    if row.status == "installed" and row.deleted_at is None:
        raise Conflict(N_("%(plugin_id)s is already installed", plugin_id=plugin_id))
    manifest = await validate(session, row.manifest_toml, excluding=plugin_id)
    conn = await session.connection()
    await ensure_tables(conn, manifest.entities)
    await _register(session, manifest)
    await _record_schema_versions(session, manifest, None)
    reinstall = row.deleted_at is not None
    row.status, row.deleted_at, row.error_message = "installed", None, ""
    await session.flush()
    await runtime.plugins_changed(session)  # platform-wide: every tenant's set
    await audit.record(
        session,
        actor,
        "plugin.install",
        "plugin",
        plugin_id,
        summary=f"{'Re-installed' if reinstall else 'Installed'} {plugin_id} {row.version}",
    )
    compile_after_commit(session, sandbox, row)
    return row


async def _tenant_state(session: AsyncSession, tenant_id: uuid.UUID, plugin_id: str) -> PluginTenant | None:
    return await session.scalar(
        select(PluginTenant).where(PluginTenant.tenant_id == tenant_id, PluginTenant.plugin_id == plugin_id)
    )


async def enable(
    session: AsyncSession, actor: Actor, tenant_id: uuid.UUID, plugin_id: str, *, sandbox: Any = None
) -> PluginTenant:
    """Enable in a tenant. The first time, the plugin's code gets `on-tenant-created` (after the commit,
    in the background, through `sandbox` when one is given): the tenant is new to the plugin."""
    row = await get(session, plugin_id)
    if row.status != "installed" or row.deleted_at is not None:
        raise Conflict(
            N_(
                "%(plugin_id)s is not installed on this platform (state: %(state)s)",
                plugin_id=plugin_id,
                state=phrase(state_name(row)),
            )
        )
    plugin = runtime.catalog_of(session).load(
        row,
        (await validation_context(session, plugin_id)).foreign_entity_specs,  # type: ignore[arg-type]
    )
    enabled = {p.id for p in await runtime.enabled_for(session, tenant_id)}
    missing = [d.id for d in plugin.manifest.dependencies.plugins if d.id not in enabled]
    if missing:
        raise Conflict(
            N_(
                "Enable %(missing)s in this tenant first: %(plugin_id)s depends on it",
                missing=", ".join(missing),
                plugin_id=plugin_id,
            )
        )
    state = await _tenant_state(session, tenant_id, plugin_id)
    if state is not None and state.status == "enabled":
        raise Conflict(N_("%(plugin_id)s is already enabled in this tenant", plugin_id=plugin_id))
    if state is None:
        state = PluginTenant(tenant_id=tenant_id, plugin_id=plugin_id, status="enabled")
        session.add(state)
        if sandbox is not None and row.has_wasm:
            sandbox.after_commit(session, plugin_id, tenant_id, "on-tenant-created", str(tenant_id))
    state.status, state.error_message = "enabled", ""
    await session.flush()
    runtime.forget_enabled(session)
    await _grant_defaults(session, tenant_id, plugin.manifest)
    await audit.record(
        session,
        actor,
        "plugin.enable",
        "plugin",
        plugin_id,
        tenant_id=tenant_id,
        summary=f"Enabled {plugin_id}",
    )
    return state


async def enable_defaults(session: AsyncSession, actor: Actor, tenant_id: uuid.UUID) -> list[str]:
    """Enable, in a new tenant, the plugins marked "enable for new tenants" (dependencies first). Their
    on-tenant-created runs when the tenant.created event is delivered, after the commit."""
    flagged = set(
        (
            await session.scalars(
                select(PluginPackage.plugin_id).where(PluginPackage.enable_for_new_tenants.is_(True))
            )
        ).all()
    )
    wanted = [p for p in await runtime.installed(session) if p.id in flagged] if flagged else []
    done: list[str] = []
    while wanted:
        ready = [p for p in wanted if all(d.id in done for d in p.manifest.dependencies.plugins)]
        if not ready:
            log.warning(
                "Not enabled in new tenant %s (a dependency is not enabled for new tenants): %s",
                tenant_id,
                ", ".join(p.id for p in wanted),
            )
            break
        for plugin in ready:
            await enable(session, actor, tenant_id, plugin.id)
            done.append(plugin.id)
        wanted = [p for p in wanted if p not in ready]
    return done


async def set_enable_for_new_tenants(
    session: AsyncSession, actor: Actor, plugin_id: str, on: bool
) -> PluginPackage:
    row = await get(session, plugin_id)
    if on and (row.status != "installed" or row.deleted_at is not None):
        raise Conflict(
            N_(
                "%(plugin_id)s is not installed (state: %(state)s); only installed plugins can be enabled for new tenants",
                plugin_id=plugin_id,
                state=phrase(state_name(row)),
            )
        )
    if row.enable_for_new_tenants != on:
        row.enable_for_new_tenants = on
        await session.flush()
        await audit.record(
            session,
            actor,
            "plugin.defaults",
            "plugin",
            plugin_id,
            summary=f"{plugin_id} {'is now' if on else 'is no longer'} enabled for new tenants",
            before={"enable_for_new_tenants": not on},
            after={"enable_for_new_tenants": on},
        )
    return row


async def _grant_defaults(session: AsyncSession, tenant_id: uuid.UUID, manifest: Manifest) -> None:
    """Admin holds `*` (so every new permission); Member gets read-only access to the new entities."""
    member = await session.scalar(select(Role).where(Role.tenant_id == tenant_id, Role.builtin == "member"))
    if member is not None:
        have = {p for _, _, p in await policy.grants_of_roles(session, [member.id])}
        wanted = [f"db.{e.name}.select" for e in manifest.entities if f"db.{e.name}.select" not in have]
        await policy.add_grants(session, tenant_id, member.id, wanted)
    await policy.bump_policy_version(session, tenant_id)


async def disable(session: AsyncSession, actor: Actor, tenant_id: uuid.UUID, plugin_id: str) -> PluginTenant:
    state = await _tenant_state(session, tenant_id, plugin_id)
    if state is None or state.status != "enabled":
        raise Conflict(N_("%(plugin_id)s is not enabled in this tenant", plugin_id=plugin_id))
    dependants = [
        p.id
        for p in await runtime.enabled_for(session, tenant_id)
        if any(d.id == plugin_id for d in p.manifest.dependencies.plugins)
    ]
    if dependants:
        raise Conflict(
            N_(
                "Disable %(dependants)s first: it depends on %(plugin_id)s",
                dependants=", ".join(dependants),
                plugin_id=plugin_id,
            )
        )
    state.status = "disabled"
    await session.flush()
    runtime.forget_enabled(session)
    await policy.bump_policy_version(session, tenant_id)
    await audit.record(
        session,
        actor,
        "plugin.disable",
        "plugin",
        plugin_id,
        tenant_id=tenant_id,
        summary=f"Disabled {plugin_id}",
    )
    return state


async def upgrade(
    session: AsyncSession,
    actor: Actor,
    package: Package,
    settings: Settings,
    *,
    allow_destructive: bool = False,
    dev_revision: str | None = None,
    sandbox: Any = None,
) -> PluginPackage:
    """Replace an installed plugin by a newer version. With `dev_revision` (`portal plugin run`: an
    author's working copy) any content replaces the installed one, recorded under that version."""
    plugin_id = _plugin_id_of(package.manifest_text) or ""
    row = await get(session, plugin_id)
    if row.status != "installed" or row.deleted_at is not None:
        raise Conflict(
            N_("%(plugin_id)s is not installed; install it instead of upgrading", plugin_id=plugin_id)
        )
    manifest = await validate(session, package.manifest_text, excluding=plugin_id)
    old = runtime.catalog_of(session).load(
        row,
        (await validation_context(session, plugin_id)).foreign_entity_specs,  # type: ignore[arg-type]
    )
    new_v, old_v = parse_version(manifest.version), parse_version(row.version)
    if dev_revision is None and new_v < old_v:
        raise Conflict(
            N_(
                "Downgrade refused: %(plugin_id)s %(version)s is installed, the package is %(version2)s",
                plugin_id=plugin_id,
                version=row.version,
                version2=manifest.version,
            )
        )
    elif dev_revision is None and new_v == old_v:
        if package.sha256 == row.package_sha256:
            raise Conflict(
                N_(
                    "%(plugin_id)s %(version)s is already installed with this exact package",
                    plugin_id=plugin_id,
                    version=row.version,
                )
            )
        raise Conflict(
            N_(
                "%(plugin_id)s %(version)s is installed with different content; bump the version to upgrade",
                plugin_id=plugin_id,
                version=row.version,
            )
        )
    before = {"version": row.version, "sha256": row.package_sha256}
    _accept_package(package, manifest, settings, row)
    diff: SchemaDiff = diff_entities(old.manifest.entities, manifest.entities)
    if diff.destructive:
        if not allow_destructive:
            raise DestructiveUpgrade([c.describe() for c in diff.destructive])
        await backup(session, old.manifest, row.manifest_toml, "upgrade")
        await apply_destructive(session, diff)
    conn = await session.connection()
    await apply_additive(conn, diff)
    await ensure_tables(conn, manifest.entities)
    await keep_package(session, package, row)
    row.version, row.name, row.description = (
        dev_revision or manifest.version,
        manifest.plugin.name,
        manifest.plugin.description,
    )
    await _register(session, manifest)
    await _record_schema_versions(session, manifest, {c.entity for c in diff.changes})
    await session.flush()
    await runtime.plugins_changed(session)  # platform-wide: every tenant's set
    for state in (
        await session.scalars(
            select(PluginTenant).where(PluginTenant.plugin_id == plugin_id, PluginTenant.status == "enabled")
        )
    ).all():
        await _grant_defaults(session, state.tenant_id, manifest)
    await audit.record(
        session,
        actor,
        "plugin.upgrade",
        "plugin",
        plugin_id,
        summary=f"Upgraded {plugin_id} {before['version']} → {row.version}: "
        + ("; ".join(diff.describe()) or "no schema change"),
        before=before,
        after={"version": row.version, "sha256": package.sha256},
    )
    compile_after_commit(session, sandbox, row)
    return row


def state_name(row: PluginPackage) -> str:
    return N_("uninstalled") if row.deleted_at is not None else row.status


async def tenant_states(session: AsyncSession, tenant_id: uuid.UUID) -> dict[str, PluginTenant]:
    rows = (await session.scalars(select(PluginTenant).where(PluginTenant.tenant_id == tenant_id))).all()
    return {r.plugin_id: r for r in rows}


async def all_plugins(session: AsyncSession) -> list[PluginPackage]:
    return await _rows(session, include_deleted=True)
