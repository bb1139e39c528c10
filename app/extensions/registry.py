"""The extension points' registry: the points and their labels, what an implementation is and sees, the
app's ExtensionRegistry (built-in implementations, workflow kinds, the sandbox), and resolving a tenant's
configuration to its implementation (built-in, or a plugin's enabled in the tenant)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.permissions import EXTENSIONS_ADMIN
from app.core.errors import NotFound, PortalError
from app.core.i18n import N_
from app.core.models import ExtensionConfig
from app.manifest import EXTENSION_POINTS, ConfigFieldSpec
from app.plugins import runtime
from app.plugins.runtime import EntityRef, LoadedPlugin
from app.records.values import to_json
from app.services import services_of

if TYPE_CHECKING:
    from app.extensions.builtins import ConditionKind, SelectorKind

log = logging.getLogger("portal.extensions")

ADMIN_PERMISSION = EXTENSIONS_ADMIN  # defined with the base permissions (app.access.permissions)
CONDITION, USER_SELECTOR, RECORD_VALIDATOR, AUTH_VERIFIER = EXTENSION_POINTS
WASM_FUNCTION = {
    CONDITION: "check-condition",
    USER_SELECTOR: "select-users",
    RECORD_VALIDATOR: "validate-record",
    AUTH_VERIFIER: "verify-auth",
}
POINT_LABELS = {  # msgids: shown in the reader's language
    CONDITION: N_("Condition"),
    USER_SELECTOR: N_("User selector"),
    RECORD_VALIDATOR: N_("Record validator"),
    AUTH_VERIFIER: N_("Auto-login verifier"),
}
POINT_HELP = {
    CONDITION: N_("Given a record and its context, answers true or false (approval step conditions)."),
    USER_SELECTOR: N_("Given a record and its context, names members of the tenant (approvers of a step)."),
    RECORD_VALIDATOR: N_("Checks a record before every insert and update; its errors refuse the write."),
    AUTH_VERIFIER: N_(
        "Verifies the token of an auto-login link and names the member to sign in. Off until enabled."
    ),
}
MAX_MESSAGE = 500
GUEST_JSON_MAX_BYTES = 1_000_000  # an extension's answer (depth-bounded too: app.nesting)


class ExtensionFailed(PortalError):
    """An implementation failed or answered the wrong shape; the message says which and why."""

    status_code = 502
    title = N_("Extension failed")

    def __init__(self, detail: str, *, kind: str = "", guest_message: str = "") -> None:
        super().__init__(detail)
        self.kind = kind  # the guest failure's kind ("error": the guest answered err), "" otherwise
        self.guest_message = guest_message


@dataclass(frozen=True)
class Implementation:
    point: str
    plugin_id: str  # "" for built-in
    name: str
    label: str
    description: str
    fields: tuple[ConfigFieldSpec, ...] = ()
    entities: tuple[str, ...] = ()  # record-validator: the entities it validates

    @property
    def key(self) -> str:
        """How forms and the API name it: `base:role`, `<plugin>:<name>`."""
        return f"{self.plugin_id or 'base'}:{self.name}"

    @property
    def builtin(self) -> bool:
        return not self.plugin_id


@dataclass(frozen=True)
class Context:
    """What an implementation sees: the tenant, the record (typed values) and who asked."""

    session: AsyncSession
    tenant_id: uuid.UUID
    entity: EntityRef | None = None
    record: Mapping[str, Any] = field(default_factory=dict)
    requester_id: uuid.UUID | None = None
    before: Mapping[str, Any] | None = None
    operation: str = ""

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tenant_id": str(self.tenant_id),
            "plugin": self.entity.plugin_id if self.entity else None,
            "entity": self.entity.name if self.entity else None,
            "record": {k: to_json(v) for k, v in self.record.items() if k != "tenant_id"},
            "requester_id": str(self.requester_id) if self.requester_id else None,
        }
        if self.operation:
            out["operation"] = self.operation
            out["before"] = (
                {k: to_json(v) for k, v in self.before.items() if k != "tenant_id"}
                if self.before is not None
                else None
            )
        return out


# --- built-in implementations (the workflow kinds, behind the same registry) ---------------------------

BuiltinRun = Callable[[Context, Mapping[str, Any]], Awaitable[Any]]
BuiltinCheck = Callable[[AsyncSession, uuid.UUID, Mapping[str, Any]], Awaitable[dict[str, str]]]


@dataclass(frozen=True)
class Builtin:
    impl: Implementation
    run: BuiltinRun
    check: BuiltinCheck | None = None  # extra save-time validation (errors keyed `values.<key>`)


class NobodySelected(Exception):
    """A built-in selector found nobody; the reason is for the stuck instance."""


# --- the registry ------------------------------------------------------------------------------------


def _plugin_implementations(plugin: LoadedPlugin) -> list[Implementation]:
    return [
        Implementation(
            spec.point, plugin.id, spec.name, spec.name, spec.description, spec.config_fields, spec.entities
        )
        for spec in plugin.manifest.extensions
    ]


async def implementations(
    session: AsyncSession, tenant_id: uuid.UUID, point: str | None = None
) -> list[Implementation]:
    """Built-in implementations, then those of the plugins enabled in the tenant (shipping a component)."""
    out = [b.impl for b in registry_of(session).builtins.values()]
    for plugin in await runtime.enabled_for(session, tenant_id):
        if plugin.wasm_sha256:
            out.extend(_plugin_implementations(plugin))
    return [i for i in out if point is None or i.point == point]


async def implementation(
    session: AsyncSession, tenant_id: uuid.UUID, key: str
) -> tuple[Implementation, LoadedPlugin | None]:
    """An implementation by key (`base:role`, `<plugin>:<name>`), available in the tenant; else NotFound."""
    plugin_id, _, name = str(key or "").partition(":")
    if plugin_id == "base":
        for builtin in registry_of(session).builtins.values():
            if builtin.impl.name == name:
                return builtin.impl, None
        raise NotFound(N_("There is no built-in implementation %(name)s", name=repr(name)))
    for plugin in await runtime.enabled_for(session, tenant_id):
        if plugin.id == plugin_id and plugin.wasm_sha256:
            for impl in _plugin_implementations(plugin):
                if impl.name == name:
                    return impl, plugin
            raise NotFound(
                N_(
                    "Plugin %(plugin_id)s declares no extension %(name)s",
                    plugin_id=plugin_id,
                    name=repr(name),
                )
            )
    raise NotFound(
        N_("Plugin %(plugin_id)s is not enabled in this tenant (or ships no code)", plugin_id=repr(plugin_id))
    )


@dataclass(frozen=True)
class Resolved:
    config: ExtensionConfig
    impl: Implementation
    plugin: LoadedPlugin | None


def _lookup(
    impl_point: str,
    plugin_id: str,
    name: str,
    plugins: list[LoadedPlugin],
    builtins: Mapping[tuple[str, str], Builtin],
) -> tuple[Implementation, LoadedPlugin | None] | None:
    if not plugin_id:
        builtin = builtins.get((impl_point, name))
        return (builtin.impl, None) if builtin else None
    for plugin in plugins:
        if plugin.id == plugin_id and plugin.wasm_sha256:
            for impl in _plugin_implementations(plugin):
                if impl.name == name and impl.point == impl_point:
                    return impl, plugin
    return None


async def resolve(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    config_id: uuid.UUID | str,
    point: str | None = None,
    *,
    enabled_only: bool = True,
) -> Resolved:
    """The configuration `config_id` of this tenant with its implementation; NotFound when it does not
    exist here, is of another point, is disabled, or its plugin is not enabled in the tenant."""
    try:
        cid = config_id if isinstance(config_id, uuid.UUID) else uuid.UUID(str(config_id))
    except ValueError:
        raise NotFound(
            N_("No extension configuration %(config_id)s in this tenant", config_id=repr(str(config_id)[:40]))
        ) from None
    row = await session.scalar(
        sa.select(ExtensionConfig).where(ExtensionConfig.tenant_id == tenant_id, ExtensionConfig.id == cid)
    )
    if row is None or (point is not None and row.point != point):
        raise NotFound(
            "No such extension configuration in this tenant"
            + (f" (expected a {POINT_LABELS.get(point, point).lower()})" if row is not None and point else "")
        )
    if enabled_only and not row.is_enabled:
        raise NotFound(N_("The extension configuration %(name)s is disabled", name=repr(row.name)))
    found = _lookup(
        row.point,
        row.plugin_id,
        row.implementation,
        await runtime.enabled_for(session, tenant_id),
        registry_of(session).builtins,
    )
    if found is None:
        where = f"plugin {row.plugin_id}" if row.plugin_id else "the base"
        raise NotFound(
            N_(
                "The implementation of %(name)s (%(implementation)s from %(where)s) is not available in this tenant (is the plugin enabled?)",
                name=repr(row.name),
                implementation=row.implementation,
                where=where,
            )
        )
    return Resolved(row, found[0], found[1])


async def resolve_all(session: AsyncSession, tenant_id: uuid.UUID, point: str) -> list[Resolved]:
    """Every enabled configuration of a point whose implementation is available, by name."""
    rows = (
        await session.scalars(
            sa.select(ExtensionConfig)
            .where(
                ExtensionConfig.tenant_id == tenant_id,
                ExtensionConfig.point == point,
                ExtensionConfig.is_enabled.is_(True),
            )
            .order_by(ExtensionConfig.name)
        )
    ).all()
    plugins = await runtime.enabled_for(session, tenant_id) if any(r.plugin_id for r in rows) else []
    builtins = registry_of(session).builtins
    out = []
    for row in rows:
        found = _lookup(row.point, row.plugin_id, row.implementation, plugins, builtins)
        if found is not None:
            out.append(Resolved(row, found[0], found[1]))
    return out


@dataclass(frozen=True, eq=False)
class ExtensionRegistry:
    """An app's extension implementations (AppServices.extension_registry; code holding a session finds
    it with `registry_of`): the built-ins, the workflow kinds approval steps use, and the sandbox that
    runs plugins' implementations. Built per app by app.extensions.builtins.standard_registry."""

    builtins: Mapping[tuple[str, str], Builtin] = field(default_factory=dict)
    # Approval step kinds by name (app.workflow): entry conditions and approver selectors.
    conditions: dict[str, ConditionKind] = field(default_factory=dict)
    selectors: dict[str, SelectorKind] = field(default_factory=dict)
    sandbox: Any = None  # app.sandbox.Sandbox; None: plugin implementations cannot run here


def registry_of(session: AsyncSession) -> ExtensionRegistry:
    """The extension registry of the app that opened `session`; outside an app, the standard one with no
    sandbox (built-ins only)."""
    services = services_of(session)
    if services is not None:
        return services.extension_registry
    from app.extensions.builtins import standard_registry  # it builds on this module

    return standard_registry()
