"""Extension points (seed 001): typed hooks the base calls, with built-in and plugin (WASM) implementations
and several named configurations per implementation and tenant.

Points (contracts in wit/plugin.wit, interface `extensions`):
- `condition`        record + context -> true/false (workflow step conditions)
- `user-selector`    context -> user ids of the tenant (workflow approvers)
- `record-validator` a record about to be written -> field errors (the record service, every path)
- `auth-verifier`    an auto-login link's query/headers -> a verified identity, or a refusal

An implementation is built in (`plugin_id == ""`: the workflow kinds' field condition and role/user/
manager selectors) or declared by a plugin's `[[extensions]]` and run in its component — only while the
plugin is enabled in the tenant. Admins keep named configurations (table tenant_extension_configs; app.
extensions.store); the host resolves one by configuration id or all enabled ones of a point, and calls
it with the plugin's WASM limits. A plugin call that traps, breaches a limit or answers the wrong shape
raises ExtensionFailed with a clear message; the fault counts toward the plugin's crash policy once the
caller's transaction has ended (app.sandbox.runner, defer_faults; app.sandbox.faults).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.permissions import PermissionDef
from app.core.errors import NotFound, PortalError, ValidationFailed
from app.core.models import ExtensionConfig, Membership
from app.core.nesting import loads_json
from app.identity import directory
from app.manifest import EXTENSION_POINTS, ConfigFieldSpec, SelectOption
from app.plugins import configs as plugin_configs
from app.plugins import runtime
from app.plugins.runtime import EntityRef, LoadedPlugin
from app.records.values import to_json
from app.services import services_of

log = logging.getLogger("portal.extensions")

ADMIN_PERMISSION = "ui.extensions.admin"
PERMISSIONS = [
    PermissionDef(
        ADMIN_PERMISSION,
        "Extension points: configure conditions, approver rules, record validators and auto-login verifiers",
    )
]
CONDITION, USER_SELECTOR, RECORD_VALIDATOR, AUTH_VERIFIER = EXTENSION_POINTS
WASM_FUNCTION = {
    CONDITION: "check-condition",
    USER_SELECTOR: "select-users",
    RECORD_VALIDATOR: "validate-record",
    AUTH_VERIFIER: "verify-auth",
}
POINT_LABELS = {
    CONDITION: "Condition",
    USER_SELECTOR: "User selector",
    RECORD_VALIDATOR: "Record validator",
    AUTH_VERIFIER: "Auto-login verifier",
}
POINT_HELP = {
    CONDITION: "Given a record and its context, answers true or false (approval step conditions).",
    USER_SELECTOR: "Given a record and its context, names members of the tenant (approvers of a step).",
    RECORD_VALIDATOR: "Checks a record before every insert and update; its errors refuse the write.",
    AUTH_VERIFIER: "Verifies the token of an auto-login link and names the member to sign in. Off until enabled.",
}
MAX_MESSAGE = 500
GUEST_JSON_MAX_BYTES = 1_000_000  # an extension's answer (depth-bounded too: app.nesting)

__all__ = [
    "ADMIN_PERMISSION",
    "AUTH_VERIFIER",
    "CONDITION",
    "PERMISSIONS",
    "POINT_LABELS",
    "RECORD_VALIDATOR",
    "USER_SELECTOR",
    "ExtensionFailed",
    "ExtensionRegistry",
    "Implementation",
    "Resolved",
    "check_condition",
    "implementations",
    "registry_of",
    "resolve",
    "resolve_all",
    "select_users",
    "validate_record",
    "verify_auth",
]


class ExtensionFailed(PortalError):
    """An implementation failed or answered the wrong shape; the message says which and why."""

    status_code = 502
    title = "Extension failed"

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


def _text_field(
    key: str,
    label: str,
    help_text: str,
    *,
    ftype: str = "string",
    required: bool = True,
    options: tuple[SelectOption, ...] = (),
) -> ConfigFieldSpec:
    return ConfigFieldSpec(
        key=key, type=ftype, label=label, help=help_text, required=required, options=options
    )


def _builtins() -> Mapping[tuple[str, str], Builtin]:
    from app.workflow.kinds import OPS, FieldCondition, ManagerSelector, RoleSelector, UserSelector

    fields_kind, role_kind, user_kind, manager_kind = (
        FieldCondition(),
        RoleSelector(),
        UserSelector(),
        ManagerSelector(),
    )
    found: list[Builtin] = []
    add = found.append

    async def fields_run(ctx: Context, values: Mapping[str, Any]) -> bool:
        if ctx.entity is None:
            raise ExtensionFailed("a field condition needs a record")
        clause = {"field": values.get("field"), "op": values.get("op"), "value": values.get("value")}
        try:
            checked = await fields_kind.check(ctx.session, ctx.tenant_id, ctx.entity, {"all": [clause]})
        except ValidationFailed as exc:
            raise ExtensionFailed("; ".join(v for v in exc.errors.values())) from None
        return await fields_kind.evaluate(_rule_context(ctx), checked)

    add(
        Builtin(
            Implementation(
                CONDITION,
                "",
                "fields",
                "Field value",
                "A field of the record compared with a value (e.g. amount > 1000).",
                (
                    _text_field("field", "Field", "The field's name, e.g. amount"),
                    _text_field(
                        "op",
                        "Operator",
                        "How to compare",
                        ftype="select",
                        options=tuple(SelectOption(k, v) for k, v in OPS.items()),
                    ),
                    _text_field(
                        "value",
                        "Value",
                        "Compared with; several values separated by commas for “is one of”",
                        required=False,
                    ),
                ),
            ),
            fields_run,
        )
    )

    async def selector_run(kind: Any, ctx: Context, values: Mapping[str, Any]) -> list[uuid.UUID]:
        try:
            checked = await kind.check(ctx.session, ctx.tenant_id, ctx.entity, values)
        except ValidationFailed as exc:
            raise ExtensionFailed("; ".join(v for v in exc.errors.values())) from None
        selection = await kind.select(_rule_context(ctx), checked)
        if not selection.user_ids:
            raise NobodySelected(selection.reason)
        return list(selection.user_ids)

    def selector_runner(kind: Any) -> BuiltinRun:
        async def run(ctx: Context, values: Mapping[str, Any]) -> list[uuid.UUID]:
            return await selector_run(kind, ctx, values)

        return run

    def selector_check(kind: Any) -> BuiltinCheck:
        async def check(
            session: AsyncSession, tenant_id: uuid.UUID, values: Mapping[str, Any]
        ) -> dict[str, str]:
            try:
                await kind.check(session, tenant_id, None, values)
            except ValidationFailed as exc:
                return {f"values.{k}": v for k, v in exc.errors.items()}
            return {}

        return check

    for kind, fields in (
        (role_kind, (_text_field("role", "Role", "The role's name"),)),
        (user_kind, (_text_field("user", "User", "The email of a member", ftype="email"),)),
        (manager_kind, ()),
    ):
        add(
            Builtin(
                Implementation(USER_SELECTOR, "", kind.name, kind.label, kind.__doc__ or kind.label, fields),
                selector_runner(kind),
                selector_check(kind),
            )
        )
    return MappingProxyType({(b.impl.point, b.impl.name): b for b in found})


class NobodySelected(Exception):
    """A built-in selector found nobody; the reason is for the stuck instance."""


def _rule_context(ctx: Context) -> Any:
    from app.workflow.kinds import RuleContext

    assert ctx.entity is not None
    return RuleContext(ctx.session, ctx.tenant_id, ctx.entity, ctx.record, ctx.requester_id)


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
        raise NotFound(f"There is no built-in implementation {name!r}")
    for plugin in await runtime.enabled_for(session, tenant_id):
        if plugin.id == plugin_id and plugin.wasm_sha256:
            for impl in _plugin_implementations(plugin):
                if impl.name == name:
                    return impl, plugin
            raise NotFound(f"Plugin {plugin_id} declares no extension {name!r}")
    raise NotFound(f"Plugin {plugin_id!r} is not enabled in this tenant (or ships no code)")


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
        raise NotFound(f"No extension configuration {str(config_id)[:40]!r} in this tenant") from None
    row = await session.scalar(
        sa.select(ExtensionConfig).where(ExtensionConfig.tenant_id == tenant_id, ExtensionConfig.id == cid)
    )
    if row is None or (point is not None and row.point != point):
        raise NotFound(
            "No such extension configuration in this tenant"
            + (f" (expected a {POINT_LABELS.get(point, point).lower()})" if row is not None and point else "")
        )
    if enabled_only and not row.is_enabled:
        raise NotFound(f"The extension configuration {row.name!r} is disabled")
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
            f"The implementation of {row.name!r} ({row.implementation} from {where}) is not available in "
            "this tenant (is the plugin enabled?)"
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


# --- calling -------------------------------------------------------------------------------------------


def config_values(session: AsyncSession, resolved: Resolved) -> dict[str, Any]:
    """The configuration as its implementation receives it: declared defaults, stored values, secrets
    decrypted (plugin implementations get decimals as exact text)."""
    from app.extensions.store import box_key, secret_box_for

    row, impl = resolved.config, resolved.impl
    out: dict[str, Any] = {}
    for spec in impl.fields:
        if spec.default is not None:
            out[spec.key] = plugin_configs.stored_form(spec, spec.default)
    out.update(row.plain_values or {})
    box = secret_box_for(session)
    for key, token in (row.secret_values or {}).items():
        try:
            out[key] = box.open(row.tenant_id, box_key(row), key, token)
        except plugin_configs.SecretUnreadable as exc:
            raise ExtensionFailed(f"{row.name}: {exc}") from None
    return out


def _default(value: Any) -> Any:
    return str(value)  # decimals (exact text), dates, ids


async def _call_wasm(
    ctx_session: AsyncSession,
    tenant_id: uuid.UUID,
    resolved: Resolved,
    payload: Mapping[str, Any],
    *,
    error_is_answer: bool = False,
) -> Any:
    from app.sandbox.outcomes import GuestFailure
    from app.sandbox.runner import plugin_principal

    sandbox = registry_of(ctx_session).sandbox
    if sandbox is None:
        raise ExtensionFailed("plugin code cannot run in this process (no sandbox)")
    plugin = resolved.plugin
    assert plugin is not None
    reachable = await sandbox._reachable(ctx_session, plugin, tenant_id)
    try:
        return await sandbox.call(
            ctx_session,
            plugin,
            tenant_id,
            plugin_principal(plugin, tenant_id, reachable),
            WASM_FUNCTION[resolved.impl.point],
            resolved.impl.name,
            json.dumps(config_values(ctx_session, resolved), default=_default),
            json.dumps(payload, default=_default),
            defer_faults=True,
            error_is_answer=error_is_answer,
        )
    except GuestFailure as exc:
        raise ExtensionFailed(
            f"{resolved.config.name} ({resolved.impl.key}): {exc.message}"[:MAX_MESSAGE],
            kind=exc.kind,
            guest_message=exc.detail,
        ) from None


def _shape(resolved: Resolved, what: str, got: Any) -> ExtensionFailed:
    return ExtensionFailed(
        f"{resolved.config.name} ({resolved.impl.key}) answered {type(got).__name__} "
        f"{str(got)[:80]!r}, not {what}"
    )


async def check_condition(ctx: Context, config_id: uuid.UUID | str) -> bool:
    resolved = await resolve(ctx.session, ctx.tenant_id, config_id, CONDITION)
    if resolved.plugin is None:
        builtin = registry_of(ctx.session).builtins[(CONDITION, resolved.impl.name)]
        return bool(await builtin.run(ctx, config_values(ctx.session, resolved)))
    answer = await _call_wasm(ctx.session, ctx.tenant_id, resolved, ctx.as_json())
    if not isinstance(answer, bool):
        raise _shape(resolved, "true or false", answer)
    return answer


@dataclass(frozen=True)
class Selected:
    user_ids: list[uuid.UUID]
    reason: str = ""  # why nobody is left


async def active_members(
    session: AsyncSession, tenant_id: uuid.UUID, ids: list[uuid.UUID]
) -> list[uuid.UUID]:
    """`ids` that are active members of the tenant, in the given order."""
    if not ids:
        return []
    rows = set(await directory.active_member_ids(session, tenant_id, Membership.user_id.in_(ids)))
    return [u for u in dict.fromkeys(ids) if u in rows]


async def select_users(ctx: Context, config_id: uuid.UUID | str) -> Selected:
    """Users chosen by a configured selector: only active members of the tenant are kept."""
    resolved = await resolve(ctx.session, ctx.tenant_id, config_id, USER_SELECTOR)
    if resolved.plugin is None:
        try:
            builtin = registry_of(ctx.session).builtins[(USER_SELECTOR, resolved.impl.name)]
            ids = await builtin.run(ctx, config_values(ctx.session, resolved))
        except NobodySelected as exc:
            return Selected([], str(exc))
        returned = len(ids)
    else:
        answer = await _call_wasm(ctx.session, ctx.tenant_id, resolved, ctx.as_json())
        if not isinstance(answer, list) or not all(isinstance(a, str) for a in answer):
            raise _shape(resolved, "a list of user ids", answer)
        returned = len(answer)
        ids = []
        for text in answer[:1000]:
            try:
                ids.append(uuid.UUID(text))
            except ValueError:
                continue  # not a user id: dropped like a non-member
    kept = await active_members(ctx.session, ctx.tenant_id, ids)
    if not kept:
        return Selected(
            [],
            f"{resolved.config.name} named no active member of this tenant"
            + (f" ({returned} id(s) returned were dropped)" if returned else ""),
        )
    return Selected(kept)


async def validate_record(ctx: Context, resolved: Resolved) -> dict[str, str]:
    """One validator's field errors for the record in `ctx` ({} when fine)."""
    if resolved.plugin is None:
        builtin = registry_of(ctx.session).builtins[(RECORD_VALIDATOR, resolved.impl.name)]
        return dict(await builtin.run(ctx, config_values(ctx.session, resolved)))
    answer = await _call_wasm(ctx.session, ctx.tenant_id, resolved, ctx.as_json())
    try:
        errors = loads_json(answer, max_bytes=GUEST_JSON_MAX_BYTES) if isinstance(answer, str) else None
    except ValueError:
        errors = None
    if not isinstance(errors, dict) or not all(isinstance(v, str) for v in errors.values()):
        raise _shape(resolved, "a JSON object of field -> message", answer)
    return {str(k)[:100]: v[:MAX_MESSAGE] for k, v in errors.items() if v}


@dataclass(frozen=True)
class Identity:
    email: str | None = None
    user_id: uuid.UUID | None = None


class Refused(Exception):
    """A verifier refused an auto-login link (the message is for the audit log, not the visitor)."""


async def verify_auth(
    session: AsyncSession, tenant_id: uuid.UUID, config_id: uuid.UUID | str, request: Mapping[str, Any]
) -> Identity:
    """Run an auth verifier on a link's request; Refused when it says no; ExtensionFailed when it breaks."""
    resolved = await resolve(session, tenant_id, config_id, AUTH_VERIFIER)
    if resolved.plugin is None:  # no built-in verifiers (yet): a verifier is always the tenant's own code
        raise ExtensionFailed("no built-in auth verifier exists")
    try:
        answer = await _call_wasm(session, tenant_id, resolved, request, error_is_answer=True)
    except ExtensionFailed as exc:
        if exc.kind == "error":  # the guest's own `err` answer: a refusal
            raise Refused(exc.guest_message[:MAX_MESSAGE] or exc.detail) from None
        raise
    try:
        data = loads_json(answer, max_bytes=GUEST_JSON_MAX_BYTES) if isinstance(answer, str) else None
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("email"), str) and data["email"].strip():
        return Identity(email=data["email"].strip().lower()[:254])
    if isinstance(data, dict) and isinstance(data.get("user_id"), str):
        try:
            return Identity(user_id=uuid.UUID(data["user_id"]))
        except ValueError:
            pass
    raise _shape(resolved, 'a JSON object with "email" or "user_id"', answer)


# The built-in implementations: a constant (read-only), the default of every app's ExtensionRegistry.
BUILTINS: Mapping[tuple[str, str], Builtin] = _builtins()


@dataclass(frozen=True, eq=False)
class ExtensionRegistry:
    """An app's extension implementations: the built-ins, and the sandbox that runs plugins' ones
    (AppServices.extension_registry; the functions of this module find it through the session)."""

    builtins: Mapping[tuple[str, str], Builtin] = field(default_factory=lambda: BUILTINS)
    sandbox: Any = None  # app.sandbox.Sandbox; None: plugin implementations cannot run here


_NO_SANDBOX = ExtensionRegistry()


def registry_of(session: AsyncSession) -> ExtensionRegistry:
    """The extension registry of the app that opened `session` (built-ins only outside an app)."""
    services = services_of(session)
    return services.extension_registry if services is not None else _NO_SANDBOX
