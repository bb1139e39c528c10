"""Where the base calls extension points outside approvals: the record service's validation hook (every
write path: generated forms, JSON API, WASM host API, import). Approval steps call them through the
"extension" kinds (app.extensions.builtins)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NotFound, ValidationFailed
from app.core.i18n import N_, Msg, phrase
from app.core.models import ExtensionConfig
from app.extensions.calls import validate_record
from app.extensions.registry import RECORD_VALIDATOR, Context, ExtensionFailed, _lookup, registry_of, resolve
from app.plugins import runtime
from app.plugins.runtime import EntityRef

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
                {"": N_("a record validator cannot write records that are validated themselves")}
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
                    raise ValidationFailed(
                        {
                            "": N_(
                                "The record could not be validated: %(detail)s",
                                detail=exc.detail if isinstance(exc.detail, Msg) else phrase(exc.detail),
                            )
                        }
                    ) from None
                for key, message in found.items():
                    target = key if entity.spec.has_field(key) else ""
                    errors[target] = f"{errors[target]} {message}" if target in errors else message
        finally:
            info.pop(VALIDATING_KEY, None)
        if errors:
            raise ValidationFailed(errors)
