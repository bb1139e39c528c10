"""Installed plugins as the rest of the host sees them: parsed manifests and SQLAlchemy tables.

Parsing is cached per package hash, so each worker parses a manifest once; the database row is
the source of truth, read per request, so an install or upgrade through one worker is seen by all.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import PLATFORM_VERSION
from app.core.errors import NotFound
from app.core.i18n import N_
from app.core.models import PluginPackage, PluginTenant
from app.manifest import EntitySpec, Manifest, ValidationContext, parse_manifest
from app.plugins.modules import available_modules
from app.schema import build_table
from app.services import services_of


@dataclass(frozen=True)
class EntityRef:
    plugin_id: str
    spec: EntitySpec
    table: sa.Table

    @property
    def name(self) -> str:
        return self.spec.name

    def permission(self, op: str) -> str:
        return f"db.{self.spec.name}.{op}"


@dataclass
class LoadedPlugin:
    row_sha: str
    manifest: Manifest
    wasm_sha256: str = ""  # empty when the package has no plugin.wasm
    metadata: sa.MetaData = field(default_factory=sa.MetaData)
    entities: dict[str, EntityRef] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.manifest.id


class PluginCatalog:
    """Installed plugins as parsed once per worker: manifests and tables per package hash, and each
    tenant's enabled plugins under the policy versions its requests read. One per app
    (AppServices.plugin_catalog); the app's sessions carry it (`catalog_of`)."""

    def __init__(self) -> None:
        self._parsed: dict[tuple[str, str], LoadedPlugin] = {}
        # tenant -> ((tenant policy_version, system policy_version), enabled plugins). Every lifecycle
        # change bumps one of the two (the tenant's for enable/disable/error, the system tenant's for
        # platform-wide changes), and requests read both versions with their tenant anyway.
        self._enabled_by_version: dict[uuid.UUID, tuple[tuple[int, int], list[LoadedPlugin]]] = {}

    def load(self, row: PluginPackage, foreign: dict[str, EntitySpec] | None = None) -> LoadedPlugin:
        """The parsed form of an installed plugin row (validated when it was installed)."""
        key = (row.plugin_id, row.package_sha256)
        hit = self._parsed.get(key)
        if hit is not None:
            return hit
        ctx = ValidationContext(
            platform_version=PLATFORM_VERSION,
            available_modules=available_modules(),
            installed_plugins=_AnyVersion(),
            foreign_entity_specs=foreign or {},
        )
        manifest = parse_manifest(row.manifest_toml, ctx)
        loaded = LoadedPlugin(row.package_sha256, manifest, row.wasm_sha256 if row.has_wasm else "")
        for spec in manifest.entities:
            loaded.entities[spec.name] = EntityRef(manifest.id, spec, build_table(spec, loaded.metadata))
        self._parsed[key] = loaded
        return loaded

    def load_all(self, rows: list[PluginPackage]) -> list[LoadedPlugin]:
        """Load plugins so that dependency plugins' entities are known to their dependants."""
        out: list[LoadedPlugin] = []
        foreign: dict[str, EntitySpec] = {}
        pending = list(rows)
        for _ in range(len(rows) + 1):
            rest = []
            for row in pending:
                try:
                    plugin = self.load(row, dict(foreign))
                except Exception:
                    rest.append(row)
                    continue
                out.append(plugin)
                foreign.update({s.name: s for s in plugin.manifest.entities})
            if not rest or len(rest) == len(pending):
                break
            pending = rest
        return out

    async def installed(self, session: AsyncSession) -> list[LoadedPlugin]:
        rows = (
            await session.scalars(
                select(PluginPackage).where(
                    PluginPackage.status == "installed", PluginPackage.deleted_at.is_(None)
                )
            )
        ).all()
        return self.load_all(list(rows))

    async def enabled_for(self, session: AsyncSession, tenant_id: uuid.UUID) -> list[LoadedPlugin]:
        """Plugins enabled in a tenant (one query per request session; parsing is cached per worker)."""
        memo: dict[uuid.UUID, list[LoadedPlugin]] = session.info.setdefault(ENABLED_KEY, {})
        if tenant_id in memo:
            return memo[tenant_id]
        versions = noted_versions(session, tenant_id)
        cached = self._enabled_by_version.get(tenant_id)
        if versions is not None and cached is not None and cached[0] == versions:
            memo[tenant_id] = cached[1]
            return cached[1]
        memo[tenant_id] = await self._query_enabled(session, tenant_id)
        if versions is not None:
            self._enabled_by_version[tenant_id] = (versions, memo[tenant_id])
        return memo[tenant_id]

    async def _query_enabled(self, session: AsyncSession, tenant_id: uuid.UUID) -> list[LoadedPlugin]:
        # Ids and hashes only: manifests are parsed once per worker, so their text is fetched on a miss.
        keys = (
            await session.execute(
                select(PluginPackage.plugin_id, PluginPackage.package_sha256)
                .join(PluginTenant, PluginTenant.plugin_id == PluginPackage.plugin_id)
                .where(
                    PluginTenant.tenant_id == tenant_id,
                    PluginTenant.status == "enabled",
                    PluginPackage.status == "installed",
                    PluginPackage.deleted_at.is_(None),
                )
                .order_by(PluginPackage.plugin_id)
            )
        ).all()
        parsed = self._parsed
        if all(tuple(k) in parsed for k in keys):
            return [parsed[tuple(k)] for k in keys]
        rows = (
            await session.scalars(
                select(PluginPackage)
                .where(PluginPackage.plugin_id.in_([k[0] for k in keys]))
                .order_by(PluginPackage.plugin_id)
            )
        ).all()
        return self.load_all(list(rows))


CATALOG_KEY = "portal_plugin_catalog"


def catalog_of(session: AsyncSession) -> PluginCatalog:
    """The plugin catalog of the app that opened `session`; a session opened outside an app (a CLI
    command, a script) gets one of its own, kept for the session's life."""
    services = services_of(session)
    if services is not None:
        return services.plugin_catalog
    own: PluginCatalog | None = session.info.get(CATALOG_KEY)
    if own is None:
        own = session.info[CATALOG_KEY] = PluginCatalog()
    return own


class _AnyVersion(dict[str, str]):
    """Dependencies were checked at install time; reloading must not fail on them."""

    def __contains__(self, key: object) -> bool:
        return True

    def get(self, key: str, default: str | None = None) -> str:  # type: ignore[override]
        return "999999.0.0"

    def __getitem__(self, key: str) -> str:
        return "999999.0.0"


async def installed(session: AsyncSession) -> list[LoadedPlugin]:
    return await catalog_of(session).installed(session)


T = TypeVar("T")
ENABLED_KEY = "portal_enabled_plugins"
VERSIONS_KEY = "portal_plugin_versions"


def note_versions(session: AsyncSession, tenant_id: uuid.UUID, versions: tuple[int, int]) -> None:
    """Tell enabled_for the policy versions this session read for `tenant_id` (enables the worker cache)."""
    session.info.setdefault(VERSIONS_KEY, {})[tenant_id] = versions


def noted_versions(session: AsyncSession, tenant_id: uuid.UUID) -> tuple[int, int] | None:
    """The (tenant, system) policy versions this session read for `tenant_id`, if any: a key for
    per-worker caches of tenant settings that bump the tenant's policy_version when they change."""
    return session.info.get(VERSIONS_KEY, {}).get(tenant_id)


class PerTenantCache(Generic[T]):
    """A per-worker value per tenant, valid while the policy versions the request noted for that tenant
    are unchanged (every change to tenant settings bumps them): one dict lookup instead of a query."""

    def __init__(self) -> None:
        self._by_version: dict[uuid.UUID, tuple[tuple[int, int], T]] = {}

    async def get(self, session: AsyncSession, tenant_id: uuid.UUID, load: Callable[[], Awaitable[T]]) -> T:
        versions = noted_versions(session, tenant_id)
        cached = self._by_version.get(tenant_id)
        if versions is not None and cached is not None and cached[0] == versions:
            return cached[1]
        value = await load()
        if versions is not None:
            self._by_version[tenant_id] = (versions, value)
        return value

    def forget(self, tenant_id: uuid.UUID) -> None:
        self._by_version.pop(tenant_id, None)


def forget_enabled(session: AsyncSession) -> None:
    """Drop the per-session memo (and the versions read before the change) after a lifecycle change."""
    session.info.pop(ENABLED_KEY, None)
    session.info.pop(VERSIONS_KEY, None)


async def plugins_changed(session: AsyncSession, tenant_id: uuid.UUID | None = None) -> None:
    """A lifecycle change: forget this session's memo and bump the version every worker's cache is keyed
    by — the tenant's, or the system tenant's for a platform-wide change."""
    from app.core.models import Tenant
    from app.core.settings import SYSTEM_TENANT_ID

    forget_enabled(session)
    target = tenant_id or uuid.UUID(SYSTEM_TENANT_ID)
    await session.execute(
        sa.update(Tenant)
        .where(Tenant.id == target)
        .values(policy_version=Tenant.policy_version + 1)
        .execution_options(synchronize_session=False)
    )


async def enabled_for(session: AsyncSession, tenant_id: uuid.UUID) -> list[LoadedPlugin]:
    """Plugins enabled in a tenant, from the catalog of the app that opened `session`."""
    return await catalog_of(session).enabled_for(session, tenant_id)


async def entity_in_tenant(
    session: AsyncSession, tenant_id: uuid.UUID, plugin_id: str, entity: str
) -> EntityRef:
    """An entity of a plugin enabled in this tenant, or NotFound."""
    for plugin in await enabled_for(session, tenant_id):
        if plugin.id == plugin_id:
            ref = plugin.entities.get(entity)
            if ref is None:
                raise NotFound(
                    N_(
                        "Plugin %(plugin_id)s has no entity %(entity)s",
                        plugin_id=plugin_id,
                        entity=repr(entity),
                    )
                )
            return ref
    raise NotFound(N_("Plugin %(plugin_id)s is not enabled in this tenant", plugin_id=repr(plugin_id)))


def find_entity(plugins: list[LoadedPlugin], name: str) -> EntityRef | None:
    for plugin in plugins:
        if name in plugin.entities:
            return plugin.entities[name]
    return None
