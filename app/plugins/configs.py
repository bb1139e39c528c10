"""Named plugin configurations: per tenant and plugin, several named sets of values, at most
one active; `config-get` (app.sandbox.host) reads the active one, falling back to the manifest's defaults.

Values are checked against the manifest's `[[config.fields]]` (app.plugins.config_values, shared with
extension configurations); a plugin that declares none takes free `key = value` text. Secret fields are encrypted at rest (AES-GCM, key derived from the platform secret,
bound to tenant, plugin and key), never shown back (pages say "set", the API `***`) and masked in audit rows.
Every change is audited; edits are version-checked (optimistic locking).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.audit import Actor
from app.core.errors import Conflict, NotFound, ValidationFailed
from app.core.i18n import N_
from app.core.models import PluginConfig
from app.manifest import ConfigFieldSpec, Manifest, config_value
from app.plugins.config_values import (
    SecretBox,
    audit_view,
    check_name,
    check_text_values,
    check_values,
    check_version,
    masked_values,
    sealed_secrets,
    stored_form,
)

log = logging.getLogger("portal.plugin")


# --- views ----------------------------------------------------------------------------------------


def masked(manifest: Manifest | None, row: PluginConfig) -> dict[str, Any]:
    """A configuration as the API shows it: plain values, and `***` for each stored secret."""
    values = masked_values(row)
    if manifest is not None and manifest.config_fields:
        order = [f.key for f in manifest.config_fields]
        values = {k: values[k] for k in order if k in values} | {
            k: v for k, v in values.items() if k not in order
        }
    return {
        "id": str(row.id),
        "name": row.name,
        "active": row.is_active,
        "version": row.version,
        "values": values,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def _audit_view(row: PluginConfig, changed_secrets: Iterable[str] = ()) -> dict[str, Any]:
    return audit_view(row, {"name": row.name, "active": row.is_active}, changed_secrets)


# --- storage --------------------------------------------------------------------------------------


async def list_configs(session: AsyncSession, tenant_id: uuid.UUID, plugin_id: str) -> list[PluginConfig]:
    stmt = (
        select(PluginConfig)
        .where(PluginConfig.tenant_id == tenant_id, PluginConfig.plugin_id == plugin_id)
        .order_by(PluginConfig.name)
    )
    return list((await session.scalars(stmt)).all())


async def find(session: AsyncSession, tenant_id: uuid.UUID, plugin_id: str, name: str) -> PluginConfig | None:
    return await session.scalar(
        select(PluginConfig).where(
            PluginConfig.tenant_id == tenant_id,
            PluginConfig.plugin_id == plugin_id,
            PluginConfig.name == name,
        )
    )


async def get(session: AsyncSession, tenant_id: uuid.UUID, plugin_id: str, name: str) -> PluginConfig:
    row = await find(session, tenant_id, plugin_id, name)
    if row is None:
        raise NotFound(
            N_(
                "Plugin %(plugin_id)s has no configuration %(name)s in this tenant",
                plugin_id=plugin_id,
                name=repr(name),
            )
        )
    return row


async def _flush(session: AsyncSession) -> None:
    """Flush; a unique index refusing it means a concurrent change (two admins at once), not a server error."""
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(
            N_(
                "Another change to this plugin's configurations was saved at the same moment; reload and try again"
            )
        ) from exc


async def _set_active(
    session: AsyncSession, tenant_id: uuid.UUID, plugin_id: str, row: PluginConfig | None
) -> None:
    # Deactivate first: the partial unique index allows one active row at any moment.
    await session.execute(
        update(PluginConfig)
        .where(
            PluginConfig.tenant_id == tenant_id,
            PluginConfig.plugin_id == plugin_id,
            PluginConfig.is_active.is_(True),
            *([PluginConfig.id != row.id] if row is not None else []),
        )
        .values(is_active=False)
        .execution_options(synchronize_session="fetch")
    )
    if row is not None and not row.is_active:
        row.is_active = True
    await _flush(session)


@dataclass
class SaveRequest:
    """One create-or-update of a named configuration (from the form or the API)."""

    name: str  # the configuration to create or change
    values: Mapping[str, Any]
    version: int | None = None  # required when `name` exists
    new_name: str | None = None  # rename
    active: bool | None = None  # True: make it the active one; False: if active, no configuration is active
    clear_secrets: tuple[str, ...] = ()
    from_form: bool = False
    create_only: bool = False  # the form's "new configuration": an existing name is an error, not an update
    update_only: bool = False  # the form's "edit": the configuration must still exist


async def save(
    session: AsyncSession,
    actor: Actor,
    box: SecretBox,
    tenant_id: uuid.UUID,
    manifest: Manifest,
    req: SaveRequest,
) -> PluginConfig:
    """Create or update a configuration; raise ValidationFailed (per-field errors), Conflict (version)."""
    plugin_id = manifest.id
    row = await find(session, tenant_id, plugin_id, req.name.strip()) if isinstance(req.name, str) else None
    if row is None and (req.update_only or req.new_name is not None):
        raise NotFound(
            N_(
                "Plugin %(plugin_id)s has no configuration %(name)s in this tenant (deleted meanwhile?)",
                plugin_id=plugin_id,
                name=repr(req.name),
            )
        )
    errors: dict[str, str] = {}
    target_name = req.new_name if req.new_name is not None else req.name
    problem = check_name(target_name)
    if problem:
        errors["new_name" if req.new_name is not None else "name"] = problem
    target_name = (target_name or "").strip() if isinstance(target_name, str) else ""
    if row is not None and req.create_only:
        errors["name"] = N_("a configuration called %(name)s already exists", name=repr(row.name))
        row = None  # not this one's values or secrets: the form meant a new configuration
    elif not problem and target_name != (row.name if row else None):
        clash = await find(session, tenant_id, plugin_id, target_name)
        if clash is not None and clash is not row:
            errors["new_name" if req.new_name is not None and row is not None else "name"] = N_(
                "a configuration called %(name)s already exists", name=repr(target_name)
            )
    if row is not None and not errors:
        check_version(row, req.version)
    if manifest.config_fields:
        incoming = check_values(
            manifest.config_fields,
            req.values,
            (row.secret_values or {}) if row else {},
            from_form=req.from_form,
            clear=req.clear_secrets,
        )
    else:
        incoming = check_text_values(req.values)
    errors.update(incoming.errors)
    if errors:
        raise ValidationFailed(
            errors, "The configuration was not saved: " + "; ".join(f"{k}: {v}" for k, v in errors.items())
        )

    before = _audit_view(row) if row is not None else None
    secrets = sealed_secrets(
        (row.secret_values or {}) if row is not None else {},
        incoming,
        lambda key, text: box.seal(tenant_id, plugin_id, key, text),
    )
    # Secrets of keys the schema no longer declares are dropped with the rest of the stale values.
    if manifest.config_fields:
        declared = {f.key for f in manifest.config_fields if f.secret}
        secrets = {k: v for k, v in secrets.items() if k in declared}
    if row is None:
        row = PluginConfig(
            tenant_id=tenant_id,
            plugin_id=plugin_id,
            name=target_name,
            plain_values=incoming.plain,
            secret_values=secrets,
            is_active=False,
            version=1,
        )
        session.add(row)
        await _flush(session)
        action = "plugin.config.created"
    else:
        changed = (
            row.name != target_name or row.plain_values != incoming.plain or row.secret_values != secrets
        )
        row.name, row.plain_values, row.secret_values = target_name, incoming.plain, secrets
        if changed:
            row.version += 1
        action = "plugin.config.updated"
    if req.active is True:
        await _set_active(session, tenant_id, plugin_id, row)
    elif req.active is False and row.is_active:
        row.is_active = False
    await _flush(session)
    after = _audit_view(row, set(incoming.secrets_set))
    await audit.record(
        session,
        actor,
        action,
        "plugin_config",
        row.id,
        tenant_id=tenant_id,
        summary=f"{plugin_id}: configuration {row.name!r}",
        before=before,
        after=after,
    )
    return row


async def activate(
    session: AsyncSession, actor: Actor, tenant_id: uuid.UUID, plugin_id: str, name: str | None
) -> PluginConfig | None:
    """Make `name` the active configuration; `None`: no configuration is active (the defaults apply)."""
    rows = await list_configs(session, tenant_id, plugin_id)
    previous = next((r for r in rows if r.is_active), None)
    row = await get(session, tenant_id, plugin_id, name) if name is not None else None
    await _set_active(session, tenant_id, plugin_id, row)
    if previous is not row:
        summary = (
            f"{plugin_id}: configuration {row.name!r} is now active"
            if row is not None
            else f"{plugin_id}: no configuration is active (the declared defaults apply)"
        )
        await audit.record(
            session,
            actor,
            "plugin.config.activated",
            "plugin_config",
            row.id if row else "",
            tenant_id=tenant_id,
            summary=summary,
            before={"active": previous.name if previous else None},
            after={"active": row.name if row else None},
        )
    return row


async def delete(
    session: AsyncSession, actor: Actor, tenant_id: uuid.UUID, plugin_id: str, name: str, version: int | None
) -> None:
    """Delete a configuration. The active one is refused: choose another (or none) first, so the plugin
    never silently falls back to its defaults."""
    row = await get(session, tenant_id, plugin_id, name)
    if version is not None:
        check_version(row, version)
    if row.is_active:
        raise Conflict(
            N_(
                "%(name)s is the active configuration of %(plugin_id)s; make another one active (or choose “no active configuration”) before deleting it",
                name=repr(row.name),
                plugin_id=plugin_id,
            )
        )
    before = _audit_view(row)
    await session.delete(row)
    await session.flush()
    await audit.record(
        session,
        actor,
        "plugin.config.deleted",
        "plugin_config",
        row.id,
        tenant_id=tenant_id,
        summary=f"{plugin_id}: configuration {row.name!r} deleted",
        before=before,
        after=None,
    )


# --- reading for the plugin -----------------------------------------------------------------------


async def active(session: AsyncSession, tenant_id: uuid.UUID, plugin_id: str) -> PluginConfig | None:
    return await session.scalar(
        select(PluginConfig).where(
            PluginConfig.tenant_id == tenant_id,
            PluginConfig.plugin_id == plugin_id,
            PluginConfig.is_active.is_(True),
        )
    )


def _json_value(spec: ConfigFieldSpec | None, value: Any) -> str:
    """The JSON text config-get answers: decimals as exact JSON numbers, everything else as JSON."""
    if spec is not None and spec.type == "decimal":
        return format(Decimal(str(value)), "f")
    return json.dumps(value, ensure_ascii=False)


def lookup(
    manifest: Manifest, row: PluginConfig | None, box: SecretBox, tenant_id: uuid.UUID, key: str
) -> str | None:
    """`key` of the active configuration `row` (or the declared default) as JSON text; None when unset/unknown."""
    specs = {f.key: f for f in manifest.config_fields}
    spec = specs.get(key)
    if manifest.config_fields and spec is None:
        return None  # not declared
    if row is not None:
        if spec is not None and spec.secret:
            token = (row.secret_values or {}).get(key)
            if token is not None:
                return _json_value(spec, box.open(tenant_id, manifest.id, key, token))
            return None
        if key in (row.plain_values or {}):
            value = row.plain_values[key]
            if spec is None:
                return _json_value(None, value)
            try:  # a value stored under an older schema may no longer fit; then the default applies
                return _json_value(
                    spec, stored_form(spec, config_value(spec.type, value, spec.option_values))
                )
            except ValueError:
                log.warning(
                    "Config %s.%s of tenant %s no longer fits its type %s; using the default",
                    manifest.id,
                    key,
                    tenant_id,
                    spec.type,
                )
    if spec is not None and spec.default is not None:
        return _json_value(spec, stored_form(spec, spec.default))
    return None
