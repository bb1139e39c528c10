"""Approval process definitions: one process per entity (ordered steps, each with an approver selector and
an optional entry condition, and the end actions), validated and saved by a tenant admin; listing them and
describing their steps in words."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.access import policy
from app.audit import Actor
from app.core.errors import ValidationFailed
from app.core.i18n import N_
from app.core.models import WorkflowProcess
from app.extensions.registry import ExtensionRegistry, registry_of
from app.plugins import runtime
from app.plugins.runtime import EntityRef
from app.records.values import FieldError, parse, to_json
from app.workflow import guard

MAX_STEPS = 20


def _text(value: Any, name: str, limit: int) -> str:
    text = str(value or "").strip()
    if not text:
        raise ValidationFailed({name: N_("is required")})
    if len(text) > limit or any(ord(c) < 32 for c in text):
        raise ValidationFailed({name: N_("use at most %(n)s printable characters", n=limit)})
    return text


def _end_action(entity: EntityRef, raw: Any, name: str) -> dict[str, Any] | None:
    if raw in (None, {}, ""):
        return None
    if not isinstance(raw, Mapping) or not raw.get("field"):
        raise ValidationFailed({f"{name}.field": N_("choose the field to set")})
    field = str(raw["field"])
    if not entity.spec.has_field(field):
        raise ValidationFailed(
            {f"{name}.field": N_("%(entity)s has no field %(field)s", entity=entity.name, field=repr(field))}
        )
    spec = entity.spec.field(field)
    try:
        value = parse(spec, raw.get("value"))
    except FieldError as exc:
        raise ValidationFailed({f"{name}.value": exc.message}) from None
    if value is None and spec.required:
        raise ValidationFailed({f"{name}.value": N_("%(field)s is required; give a value", field=spec.label)})
    return {"field": field, "value": to_json(value)}


async def _rule(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    entity: EntityRef,
    raw: Any,
    where: str,
    registry: Mapping[str, Any],
) -> dict[str, Any]:
    if not isinstance(raw, Mapping) or str(raw.get("kind") or "") not in registry:
        raise ValidationFailed({f"{where}.kind": N_("choose one of %(kinds)s", kinds=", ".join(registry))})
    kind = str(raw["kind"])
    config = raw.get("config") or {}
    if not isinstance(config, Mapping):
        raise ValidationFailed({f"{where}.config": N_("must be a table")})
    try:
        normalised = await registry[kind].check(session, tenant_id, entity, config)
    except ValidationFailed as exc:
        raise ValidationFailed({f"{where}.{k}": v for k, v in exc.errors.items()}) from None
    return {"kind": kind, "config": normalised}


async def save_process(
    session: AsyncSession, tenant_id: uuid.UUID, actor: Actor, entity: EntityRef, data: Mapping[str, Any]
) -> WorkflowProcess:
    """Create or replace the entity's process (validated; errors keyed like `steps[1].selector.role`)."""
    name = _text(data.get("name") or f"Approve {entity.spec.label}", "name", 200)
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ValidationFailed({"steps": N_("add at least one step")})
    if len(raw_steps) > MAX_STEPS:
        raise ValidationFailed({"steps": N_("at most %(n)s steps", n=MAX_STEPS)})
    kinds = registry_of(session)
    steps = []
    for i, raw in enumerate(raw_steps):
        if not isinstance(raw, Mapping):
            raise ValidationFailed({f"steps[{i}]": N_("must be a table")})
        step = {
            "name": _text(raw.get("name") or f"Step {i + 1}", f"steps[{i}].name", 200),
            "selector": await _rule(
                session, tenant_id, entity, raw.get("selector"), f"steps[{i}].selector", kinds.selectors
            ),
            "condition": None,
        }
        if raw.get("condition"):
            step["condition"] = await _rule(
                session, tenant_id, entity, raw["condition"], f"steps[{i}].condition", kinds.conditions
            )
        steps.append(step)
    on_approve = _end_action(entity, data.get("on_approve"), "on_approve")
    on_reject = _end_action(entity, data.get("on_reject"), "on_reject")
    row = await session.scalar(
        sa.select(WorkflowProcess).where(
            WorkflowProcess.tenant_id == tenant_id,
            WorkflowProcess.plugin_id == entity.plugin_id,
            WorkflowProcess.entity == entity.name,
        )
    )
    before = _process_json(row) if row else None
    if row is None:
        row = WorkflowProcess(tenant_id=tenant_id, plugin_id=entity.plugin_id, entity=entity.name)
        session.add(row)
    row.name, row.steps, row.on_approve, row.on_reject = name, steps, on_approve, on_reject
    row.auto_start = bool(data.get("auto_start"))
    row.is_active = bool(data.get("is_active", True))
    await guard.register_for(session, entity, guard.decided_fields(row))
    await session.flush()
    # Every worker's auto-start cache is keyed by the tenant's policy version.
    runtime.forget_enabled(session)
    await policy.bump_policy_version(session, tenant_id)
    await audit.record(
        session,
        actor,
        "workflow.process.save",
        "workflow_process",
        row.id,
        tenant_id=tenant_id,
        summary=f"Saved approval process {name} for {entity.plugin_id}.{entity.name}",
        before=before,
        after=_process_json(row),
    )
    return row


def _process_json(row: WorkflowProcess) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "plugin": row.plugin_id,
        "entity": row.entity,
        "name": row.name,
        "steps": row.steps,
        "on_approve": row.on_approve,
        "on_reject": row.on_reject,
        "auto_start": row.auto_start,
        "is_active": row.is_active,
    }


process_json = _process_json


def describe_step(kinds: ExtensionRegistry, step: Mapping[str, Any]) -> tuple[str, str]:
    """(who decides, when the step applies) in words, for admin pages."""
    selector = kinds.selectors.get(step["selector"]["kind"])
    who = (
        selector.describe(step["selector"]["config"])
        if selector
        else f"unknown selector {step['selector']['kind']}"
    )
    cond = step.get("condition")
    if not cond:
        return who, "always"
    kind = kinds.conditions.get(cond["kind"])
    return who, ("when " + kind.describe(cond["config"])) if kind else f"unknown condition {cond['kind']}"


async def list_processes(session: AsyncSession, tenant_id: uuid.UUID) -> list[WorkflowProcess]:
    return list(
        (
            await session.scalars(
                sa.select(WorkflowProcess)
                .where(WorkflowProcess.tenant_id == tenant_id)
                .order_by(WorkflowProcess.plugin_id, WorkflowProcess.entity)
            )
        ).all()
    )


async def process_for(
    session: AsyncSession, tenant_id: uuid.UUID, plugin_id: str, entity: str
) -> WorkflowProcess | None:
    """The entity's active process, if any."""
    return await session.scalar(
        sa.select(WorkflowProcess).where(
            WorkflowProcess.tenant_id == tenant_id,
            WorkflowProcess.plugin_id == plugin_id,
            WorkflowProcess.entity == entity,
            WorkflowProcess.is_active.is_(True),
        )
    )
