"""Approval integrity, enforced in the record service (so every path — generated forms, JSON API, CSV
import, WASM host API — is covered by one check, a record-service validate hook).

Two rules:
- **Decided fields**: a field an active process sets in its end action (`on_approve` / `on_reject`) is
  the approval's to set. A user needs `set_permission(entity, field)` (`ui.workflow.set-<entity>-<field>`,
  registered when the process is saved; a tenant Admin's `*` includes it) to give it any other value
  than it has (on create: than its default). The code deliberately lies outside `db.<entity>.*`, which
  the people who submit orders usually hold.
- **Locked while pending**: a record with an open (running or stuck) approval cannot be changed — the
  approvers decide on the snapshot taken at submission, which must stay the record. Allowed anyway:
  workflow admins (`ui.workflow.admin`: they repair stuck approvals), the workflow's own end-action write
  (marked on the session while it runs), and the plugin acting as itself (event handlers and other
  background calls — `plugin_principal`, never a user's request), which is how a plugin reacts to the
  approval (inventory marks an order `submitted` on workflow.task.created).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.permissions import WORKFLOW_ADMIN, PermissionDef, register_permissions
from app.core.errors import Conflict, ValidationFailed
from app.core.models import WorkflowInstance, WorkflowProcess, WorkflowTask
from app.plugins import runtime
from app.plugins.runtime import EntityRef
from app.records.values import default_for, parse, to_json

if TYPE_CHECKING:
    from app.records.service import RecordService

ADMIN_PERMISSION = WORKFLOW_ADMIN  # also app.workflow.ADMIN_PERMISSION
ACTIVE_STATES = ("running", "stuck")
# Session info key: the record id whose end action the workflow is writing right now.
END_ACTION_KEY = "portal_workflow_end_action"


def set_permission(entity: str, field: str) -> str:
    return f"ui.workflow.set-{entity}-{field}"


async def register_for(session: AsyncSession, entity: EntityRef, fields: list[str]) -> None:
    """Register the set-permissions of a process's decided fields (so the role matrix offers them)."""
    await register_permissions(
        session,
        [
            PermissionDef(
                set_permission(entity.name, f),
                f"Set {entity.spec.label} → {entity.spec.field(f).label} directly, although an "
                "approval process decides it",
                "base",
            )
            for f in fields
        ],
    )


def decided_fields(process: WorkflowProcess | None) -> list[str]:
    if process is None or not process.is_active:
        return []
    return sorted({a["field"] for a in (process.on_approve, process.on_reject) if a and a.get("field")})


async def _active_process(
    session: AsyncSession, tenant_id: uuid.UUID, entity: EntityRef
) -> WorkflowProcess | None:
    return await session.scalar(
        sa.select(WorkflowProcess).where(
            WorkflowProcess.tenant_id == tenant_id,
            WorkflowProcess.plugin_id == entity.plugin_id,
            WorkflowProcess.entity == entity.name,
            WorkflowProcess.is_active.is_(True),
        )
    )


async def readonly_fields(
    session: AsyncSession, tenant_id: uuid.UUID, entity: EntityRef, can: Callable[[str], bool]
) -> set[str]:
    """The fields a generated form shows read-only to this user: decided by an approval, no permission.
    An entity without a process in the tenant (the app's ApprovalGuard knows, per worker) asks nothing."""
    from app.records.hooks import app_hooks

    for hook in app_hooks(session).validate:
        if isinstance(hook, ApprovalGuard) and (entity.plugin_id, entity.name) not in await hook.entities(
            session, tenant_id
        ):
            return set()
    fields = decided_fields(await _active_process(session, tenant_id, entity))
    return {f for f in fields if not can(set_permission(entity.name, f))}


async def open_instance(
    session: AsyncSession, tenant_id: uuid.UUID, entity: EntityRef, record_id: Any
) -> WorkflowInstance | None:
    return await session.scalar(
        sa.select(WorkflowInstance)
        .where(
            WorkflowInstance.tenant_id == tenant_id,
            WorkflowInstance.plugin_id == entity.plugin_id,
            WorkflowInstance.entity == entity.name,
            WorkflowInstance.record_id == str(record_id),
            WorkflowInstance.state.in_(ACTIVE_STATES),
        )
        .limit(1)
    )


class AwaitingApproval(Conflict):
    """A change to a record while its approval runs (409 everywhere; a row error in an import)."""


@contextlib.asynccontextmanager
async def end_action(session: AsyncSession, record_id: str) -> AsyncIterator[None]:
    """Mark the workflow's own write of an end action (the record is still pending while it is made)."""
    session.info[END_ACTION_KEY] = str(record_id)
    try:
        yield
    finally:
        session.info.pop(END_ACTION_KEY, None)


async def write_end_action(
    svc: RecordService, entity: EntityRef, record_id: str, field: str, value: Any
) -> None:
    """The workflow's end-action write (marked, so the lock lets it through). Tried once more when a
    plugin's event handler wrote the pending record meanwhile (allowed; on PostgreSQL the two race)."""
    from app.records.service import StaleVersion

    for attempt in (1, 2):
        try:
            async with svc.db.begin_nested(), end_action(svc.db, record_id):
                current = await svc.get(entity, record_id)
                await svc.update(entity, current["id"], {field: value}, current["version"])
            return
        except StaleVersion:
            if attempt == 2:
                raise


def _plugin_as_itself(svc: RecordService) -> bool:
    # plugin_principal's actor: only background calls (event delivery, on-tenant-created) act so; a
    # page or action a user opens runs the guest as that user.
    return svc.actor.user_id is None and svc.actor.email.startswith("plugin:")


async def check(
    svc: RecordService, entity: EntityRef, row: dict[str, Any], before: dict[str, Any] | None
) -> None:
    """A record-service validate hook (listed first in create_app: a refused write need not run plugin
    code): both rules above."""
    if _plugin_as_itself(svc):
        return
    session = svc.db
    if (
        before is not None
        and session.info.get(END_ACTION_KEY) != str(before["id"])
        and not svc.can(ADMIN_PERMISSION)
    ):
        instance = await open_instance(session, svc.tenant_id, entity, before["id"])
        if instance is not None:
            step = await session.scalar(
                sa.select(WorkflowTask.step_name)
                .where(WorkflowTask.instance_id == instance.id, WorkflowTask.state == "open")
                .limit(1)
            )
            where = (
                f" (step {step})"
                if step
                else " (stuck: an admin has to retry it)"
                if instance.state == "stuck"
                else ""
            )
            raise AwaitingApproval(
                f"This {entity.spec.label.lower()} is awaiting approval{where}; it can't be changed "
                "until the approval is decided."
            )
    if before is not None and session.info.get(END_ACTION_KEY) == str(before["id"]):
        return  # the end action itself sets the decided field
    fields = decided_fields(await _active_process(session, svc.tenant_id, entity))
    errors = {}
    for name in fields:
        if svc.can(set_permission(entity.name, name)):
            continue
        spec = entity.spec.field(name)
        if before is not None:
            allowed = before.get(name)
        else:  # on create the field takes its default (a form or an import repeating it is fine)
            default = default_for(spec)
            allowed = parse(spec, default) if default is not None else None
        if to_json(row.get(name)) != to_json(allowed):
            errors[name] = (
                f"{spec.label} is set by the approval process; you can't set it "
                f"(it needs the permission {set_permission(entity.name, name)})"
            )
    if errors:
        raise ValidationFailed(errors)


class ApprovalGuard:
    """The record-service validate hook (AppServices.record_hooks.validate, listed first): :func:`check`
    for entities that have an approval process in the tenant.

    Per worker it keeps the (plugin, entity) pairs with a process, per tenant, under the policy versions
    every request reads (save_process bumps the tenant's): a write to an entity without approvals, the
    common case, asks the database nothing more."""

    def __init__(self) -> None:
        self.cache: runtime.PerTenantCache[frozenset[tuple[str, str]]] = runtime.PerTenantCache()

    async def entities(self, session: AsyncSession, tenant_id: uuid.UUID) -> frozenset[tuple[str, str]]:
        async def load() -> frozenset[tuple[str, str]]:
            rows = await session.execute(
                sa.select(WorkflowProcess.plugin_id, WorkflowProcess.entity).where(
                    WorkflowProcess.tenant_id == tenant_id
                )
            )
            return frozenset((p, e) for p, e in rows.all())

        return await self.cache.get(session, tenant_id, load)

    async def __call__(
        self, svc: RecordService, entity: EntityRef, row: dict[str, Any], before: dict[str, Any] | None
    ) -> None:
        if (entity.plugin_id, entity.name) in await self.entities(svc.db, svc.tenant_id):
            await check(svc, entity, row, before)
