"""Where the base calls extension points: workflow kinds that reference a configuration (so a process
step can use any configured condition or selector, built-in or WASM), and the record service's
validation hook (every write path: generated forms, JSON API, WASM host API, import)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NotFound, ValidationFailed
from app.core.models import ExtensionConfig
from app.extensions import (
    CONDITION,
    RECORD_VALIDATOR,
    USER_SELECTOR,
    Context,
    ExtensionFailed,
    _lookup,
    check_condition,
    config_values,
    registry_of,
    resolve,
    select_users,
    validate_record,
)
from app.plugins import runtime
from app.plugins.runtime import EntityRef
from app.workflow.kinds import FieldCondition, RuleContext, Selection, register_condition, register_selector


def _context(ctx: RuleContext) -> Context:
    return Context(ctx.session, ctx.tenant_id, ctx.entity, ctx.record, ctx.requester_id)


class _ConfiguredKind:
    point = ""

    async def check(
        self, session: AsyncSession, tenant_id: uuid.UUID, entity: EntityRef, config: Mapping[str, Any]
    ) -> dict[str, Any]:
        # The API names a configuration by id; the process form by its name (typed or chosen).
        ref = str(config.get("config_id") or config.get("extension") or "").strip()
        if not ref:
            raise ValidationFailed(
                {"config_id": "choose a configuration (Administration → Extension points)"}
            )
        try:
            uuid.UUID(ref)
        except ValueError:
            found = await session.scalar(
                sa.select(ExtensionConfig.id).where(
                    ExtensionConfig.tenant_id == tenant_id,
                    ExtensionConfig.point == self.point,
                    ExtensionConfig.name == ref[:100],
                )
            )
            if found is None:
                raise ValidationFailed(
                    {
                        "config_id": f"no {self.point} configuration called {ref[:100]!r} in this "
                        "tenant (Administration → Extension points)"
                    }
                ) from None
            ref = str(found)
        try:
            resolved = await resolve(session, tenant_id, ref, self.point, enabled_only=False)
        except NotFound as exc:
            raise ValidationFailed({"config_id": exc.detail}) from None
        if resolved.plugin is None and resolved.impl.point == CONDITION:
            # A built-in field condition names a field: it must be one of this entity's.
            clause = {k: config_values(session, resolved).get(k) for k in ("field", "op", "value")}
            try:
                await FieldCondition().check(session, tenant_id, entity, {"all": [clause]})
            except ValidationFailed as exc:
                raise ValidationFailed(
                    {"config_id": f"{resolved.config.name}: " + "; ".join(exc.errors.values())}
                ) from None
        return {"config_id": str(resolved.config.id), "name": resolved.config.name}

    def describe(self, config: Mapping[str, Any]) -> str:
        return f"{config.get('name')} (extension)"


class ConfiguredCondition(_ConfiguredKind):
    """A condition configured under Extension points (built-in or a plugin's)."""

    name = "extension"
    label = "A configured condition (extension point)"
    point = CONDITION

    async def evaluate(self, ctx: RuleContext, config: Mapping[str, Any]) -> bool:
        return await check_condition(_context(ctx), config["config_id"])


class ConfiguredSelector(_ConfiguredKind):
    """A user selector configured under Extension points; only active members of the tenant are kept."""

    name = "extension"
    label = "A configured user selector (extension point)"
    point = USER_SELECTOR

    async def select(self, ctx: RuleContext, config: Mapping[str, Any]) -> Selection:
        chosen = await select_users(_context(ctx), config["config_id"])
        return Selection(chosen.user_ids, chosen.reason)


# --- record validators --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Validator:
    config_id: uuid.UUID
    entities: frozenset[str]


VALIDATING_KEY = "portal_validating_record"


class RecordValidators:
    """The record service's validation hook (AppServices.record_hooks.validate): runs the tenant's
    enabled record-validator configurations whose implementation covers the entity, before every insert
    and update; their field errors refuse the write.

    Per worker it keeps the tenant's enabled validators under the policy versions every request reads
    (saving any extension configuration or enabling/disabling a plugin bumps them). A tenant without
    validators then pays one dict lookup per write, no query (as workflow auto-start does)."""

    def __init__(self) -> None:
        self.cache: runtime.PerTenantCache[tuple[_Validator, ...]] = runtime.PerTenantCache()

    async def active(self, session: AsyncSession, tenant_id: uuid.UUID) -> tuple[_Validator, ...]:
        return await self.cache.get(session, tenant_id, lambda: self._load(session, tenant_id))

    async def _load(self, session: AsyncSession, tenant_id: uuid.UUID) -> tuple[_Validator, ...]:
        rows = (
            await session.execute(
                sa.select(ExtensionConfig.id, ExtensionConfig.plugin_id, ExtensionConfig.implementation)
                .where(
                    ExtensionConfig.tenant_id == tenant_id,
                    ExtensionConfig.point == RECORD_VALIDATOR,
                    ExtensionConfig.is_enabled.is_(True),
                )
                .order_by(ExtensionConfig.name)
            )
        ).all()
        found: list[_Validator] = []
        if rows:
            plugins = await runtime.enabled_for(session, tenant_id)
            builtins = registry_of(session).builtins
            for config_id, plugin_id, name in rows:
                hit = _lookup(RECORD_VALIDATOR, plugin_id, name, plugins, builtins)
                if hit is not None:
                    found.append(_Validator(config_id, frozenset(hit[0].entities)))
        return tuple(found)

    async def __call__(
        self, svc: Any, entity: EntityRef, row: dict[str, Any], before: dict[str, Any] | None
    ) -> None:
        validators = [v for v in await self.active(svc.db, svc.tenant_id) if entity.name in v.entities]
        if not validators:
            return
        info = svc.db.info
        if info.get(VALIDATING_KEY):
            raise ValidationFailed(
                {"": "a record validator cannot write records that are validated themselves"}
            )
        ctx = Context(
            svc.db,
            svc.tenant_id,
            entity,
            {k: v for k, v in row.items() if k != "tenant_id"},
            svc.actor.user_id,
            before,
            "update" if before is not None else "insert",
        )
        errors: dict[str, str] = {}
        info[VALIDATING_KEY] = True
        try:
            for validator in validators:
                try:
                    resolved = await resolve(svc.db, svc.tenant_id, validator.config_id, RECORD_VALIDATOR)
                    found = await validate_record(ctx, resolved)
                except NotFound:
                    continue  # deleted or disabled since the cache was filled
                except ExtensionFailed as exc:  # a broken validator refuses the write, clearly (never a 500)
                    raise ValidationFailed({"": f"The record could not be validated: {exc.detail}"}) from None
                for key, message in found.items():
                    target = key if entity.spec.has_field(key) else ""
                    errors[target] = f"{errors[target]} {message}" if target in errors else message
        finally:
            info.pop(VALIDATING_KEY, None)
        if errors:
            raise ValidationFailed(errors)


def register_workflow_kinds() -> None:
    """Let approval steps use configured conditions and selectors (kind "extension"; idempotent, the
    kinds are stateless: they find the app's extension registry through the session)."""
    register_condition(ConfiguredCondition())
    register_selector(ConfiguredSelector())
