"""Named configurations of extension implementations per tenant: create, edit, enable/disable, delete.

Values are checked against the implementation's config fields with the same code as plugin
configurations (app.plugins.config_values: types, required, secrets encrypted at rest and never shown back);
built-in implementations add their own checks (the role or user must exist). Edits are version-checked,
every change is audited and bumps the tenant's policy version (the per-worker validator cache's key).
Auto-login verifiers start disabled: enabling one is a separate, audited decision of a tenant admin.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.access import policy
from app.audit import Actor
from app.core.errors import Conflict, ConflictingValues, NotFound, ValidationFailed
from app.core.i18n import N_
from app.core.models import ExtensionConfig
from app.extensions.registry import AUTH_VERIFIER, Implementation, implementation, registry_of
from app.plugins import runtime
from app.plugins.config_values import (
    Incoming,
    SecretBox,
    audit_view,
    check_name,
    check_values,
    check_version,
    masked_values,
    sealed_secrets,
    secret_box,
)
from app.services import services_of

MAX_CONFIGS = 500  # per tenant


def box_key(row: ExtensionConfig) -> str:
    """The secret box's binding for a configuration's secrets: its own id (a token copied elsewhere fails)."""
    return f"extension/{row.id}"


def secret_box_for(session: AsyncSession) -> SecretBox:
    """The secret box of the app that opened `session` (its PORTAL_SECRET_KEY)."""
    services = services_of(session)
    if services is None:
        raise RuntimeError("this session was not opened by an app (no secret key for extension secrets)")
    return secret_box(services.settings.secret_key)


def view(row: ExtensionConfig, impl: Implementation | None) -> dict[str, Any]:
    """A configuration as the API shows it (secrets as ***)."""
    values = masked_values(row)
    return {
        "id": str(row.id),
        "name": row.name,
        "point": row.point,
        "implementation": f"{row.plugin_id or 'base'}:{row.implementation}",
        "enabled": row.is_enabled,
        "available": impl is not None,
        "version": row.version,
        "values": values,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def _audit_view(row: ExtensionConfig, changed_secrets: Iterable[str] = ()) -> dict[str, Any]:
    head = {
        "name": row.name,
        "enabled": row.is_enabled,
        "implementation": f"{row.plugin_id or 'base'}:{row.implementation}",
    }
    return audit_view(row, head, changed_secrets)


async def list_configs(
    session: AsyncSession, tenant_id: uuid.UUID, point: str | None = None
) -> list[ExtensionConfig]:
    stmt = sa.select(ExtensionConfig).where(ExtensionConfig.tenant_id == tenant_id)
    if point is not None:
        stmt = stmt.where(ExtensionConfig.point == point)
    return list((await session.scalars(stmt.order_by(ExtensionConfig.point, ExtensionConfig.name))).all())


async def get(session: AsyncSession, tenant_id: uuid.UUID, config_id: uuid.UUID | str) -> ExtensionConfig:
    try:
        cid = config_id if isinstance(config_id, uuid.UUID) else uuid.UUID(str(config_id))
    except ValueError:
        raise NotFound(N_("No such extension configuration in this tenant")) from None
    row = await session.scalar(
        sa.select(ExtensionConfig).where(ExtensionConfig.tenant_id == tenant_id, ExtensionConfig.id == cid)
    )
    if row is None:  # another tenant's configuration is simply not there
        raise NotFound(N_("No such extension configuration in this tenant"))
    return row


async def _changed(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(
            N_(
                "Another extension configuration with this name was saved at the same moment; reload and try again"
            )
        ) from exc
    runtime.forget_enabled(session)
    await policy.bump_policy_version(session, tenant_id)  # every worker's validator cache is keyed by it


@dataclass
class SaveRequest:
    values: Mapping[str, Any]
    name: str | None = None
    implementation: str | None = None  # create only: `base:role`, `<plugin>:<name>`
    version: int | None = None  # required for an update
    enabled: bool | None = None
    clear_secrets: tuple[str, ...] = ()
    from_form: bool = False


async def _check(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    impl: Implementation,
    row: ExtensionConfig | None,
    req: SaveRequest,
    errors: dict[str, str],
) -> Incoming:
    incoming = check_values(
        impl.fields,
        req.values,
        (row.secret_values or {}) if row else {},
        from_form=req.from_form,
        clear=req.clear_secrets,
    )
    errors.update(incoming.errors)
    builtin = registry_of(session).builtins.get((impl.point, impl.name)) if impl.builtin else None
    if builtin is not None and builtin.check is not None and not errors:
        errors.update(await builtin.check(session, tenant_id, incoming.plain))
    return incoming


def _apply(row: ExtensionConfig, box: SecretBox, incoming: Incoming) -> bool:
    secrets = sealed_secrets(
        row.secret_values or {}, incoming, lambda key, text: box.seal(row.tenant_id, box_key(row), key, text)
    )
    changed = row.plain_values != incoming.plain or row.secret_values != secrets
    row.plain_values, row.secret_values = incoming.plain, secrets
    return changed


async def create(
    session: AsyncSession, actor: Actor, box: SecretBox, tenant_id: uuid.UUID, req: SaveRequest
) -> ExtensionConfig:
    errors: dict[str, str] = {}
    impl: Implementation | None = None
    clash = False
    try:
        impl, _plugin = await implementation(session, tenant_id, req.implementation or "")
    except NotFound as exc:
        errors["implementation"] = exc.detail
    problem = check_name(req.name)
    if problem:
        errors["name"] = problem
    name = (req.name or "").strip() if isinstance(req.name, str) else ""
    if not problem and await session.scalar(
        sa.select(ExtensionConfig.id).where(
            ExtensionConfig.tenant_id == tenant_id, ExtensionConfig.name == name
        )
    ):
        errors["name"] = f"a configuration called {name!r} already exists"
        clash = True
    count = await session.scalar(
        sa.select(sa.func.count()).select_from(ExtensionConfig).where(ExtensionConfig.tenant_id == tenant_id)
    )
    if (count or 0) >= MAX_CONFIGS:
        errors["name"] = f"at most {MAX_CONFIGS} extension configurations per tenant"
        clash = True
    # The tenant's state refusing it (no such implementation enabled, the name taken, the tenant full),
    # not the request's shape, answers 409, as the API documents.
    if impl is None:
        raise ConflictingValues(errors)
    row = ExtensionConfig(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        point=impl.point,
        plugin_id=impl.plugin_id,
        implementation=impl.name,
        name=name,
        plain_values={},
        secret_values={},
        version=1,
        # An auto-login verifier signs people in: never on before an admin says so explicitly.
        is_enabled=False if impl.point == AUTH_VERIFIER else req.enabled is not False,
    )
    incoming = await _check(session, tenant_id, impl, row, req, errors)
    if errors:
        raise (ConflictingValues if clash else ValidationFailed)(errors)
    _apply(row, box, incoming)
    session.add(row)
    await _changed(session, tenant_id)
    await audit.record(
        session,
        actor,
        "extension.config.created",
        "extension_config",
        row.id,
        tenant_id=tenant_id,
        summary=f"Extension configuration {row.name!r} ({impl.key})",
        before=None,
        after=_audit_view(row, incoming.secrets_set),
    )
    return row


async def update(
    session: AsyncSession,
    actor: Actor,
    box: SecretBox,
    tenant_id: uuid.UUID,
    config_id: uuid.UUID | str,
    req: SaveRequest,
) -> ExtensionConfig:
    """Change name, values and/or the enabled flag of a configuration (values: only when given)."""
    row = await get(session, tenant_id, config_id)
    check_version(row, req.version)
    before = _audit_view(row)
    errors: dict[str, str] = {}
    if req.name is not None:
        problem = check_name(req.name)
        name = req.name.strip() if isinstance(req.name, str) else ""
        if problem:
            errors["name"] = problem
        elif name != row.name and await session.scalar(
            sa.select(ExtensionConfig.id).where(
                ExtensionConfig.tenant_id == tenant_id, ExtensionConfig.name == name
            )
        ):
            errors["name"] = f"a configuration called {name!r} already exists"
    changed = False
    incoming = None
    if req.values is not None:
        try:
            impl, _plugin = await implementation(
                session, tenant_id, f"{row.plugin_id or 'base'}:{row.implementation}"
            )
        except NotFound as exc:
            raise Conflict(N_("%(detail)s: its values cannot be checked now", detail=exc.detail)) from None
        incoming = await _check(session, tenant_id, impl, row, req, errors)
    if errors:
        raise ValidationFailed(errors)
    if incoming is not None:
        changed = _apply(row, box, incoming) or changed
    if req.name is not None and req.name.strip() != row.name:
        row.name, changed = req.name.strip(), True
    if req.enabled is not None and req.enabled != row.is_enabled:
        row.is_enabled, changed = bool(req.enabled), True
    if not changed:
        return row
    row.version += 1
    await _changed(session, tenant_id)
    action = (
        "extension.config.enabled"
        if req.enabled is True and not before["enabled"]
        else "extension.config.disabled"
        if req.enabled is False and before["enabled"]
        else "extension.config.updated"
    )
    await audit.record(
        session,
        actor,
        action,
        "extension_config",
        row.id,
        tenant_id=tenant_id,
        summary=f"Extension configuration {row.name!r}: {action.rsplit('.', 1)[1]}",
        before=before,
        after=_audit_view(row, incoming.secrets_set if incoming else ()),
    )
    return row


async def used_by(session: AsyncSession, tenant_id: uuid.UUID, config_id: uuid.UUID) -> list[str]:
    """Names of the tenant's approval processes whose steps use this configuration."""
    from app.core.models import WorkflowProcess

    out = []
    for process in (
        await session.scalars(sa.select(WorkflowProcess).where(WorkflowProcess.tenant_id == tenant_id))
    ).all():
        for step in process.steps or []:
            rules = [step.get("selector") or {}, step.get("condition") or {}]
            if any(
                r.get("kind") == "extension" and (r.get("config") or {}).get("config_id") == str(config_id)
                for r in rules
            ):
                out.append(process.name)
                break
    return out


async def delete(
    session: AsyncSession, actor: Actor, tenant_id: uuid.UUID, config_id: uuid.UUID | str, version: int | None
) -> None:
    """Delete a configuration; refused while an approval process uses it (its steps would get stuck)."""
    row = await get(session, tenant_id, config_id)
    if version is not None:
        check_version(row, version)
    users = await used_by(session, tenant_id, row.id)
    if users:
        raise Conflict(
            N_(
                "%(name)s is used by the approval process(es) %(users)s; change their steps first (or disable the configuration)",
                name=repr(row.name),
                users=", ".join(users),
            )
        )
    before = _audit_view(row)
    await session.delete(row)
    await _changed(session, tenant_id)
    await audit.record(
        session,
        actor,
        "extension.config.deleted",
        "extension_config",
        row.id,
        tenant_id=tenant_id,
        summary=f"Extension configuration {row.name!r} deleted",
        before=before,
        after=None,
    )
