"""The `workflow` base module: approval processes for plugin entities.

A tenant admin defines one process per entity: ordered steps, each with an approver selector and an
optional entry condition (app.workflow.kinds; a step whose condition is false is skipped), and what
to set on the record when the request is approved or rejected. Submitting a record (or creating one,
when the process starts automatically) makes an instance with a snapshot of the record; each step
that applies becomes a task assigned to the users its selector names, any one of whom decides.

Decisions and rules, briefly:
- Approvers see the instance's snapshot, not the live row: a manager decides on a record outside
  their own data scope without being given that scope.
- The end action (`on_approve` / `on_reject`: set one field) is written through the RecordService as
  the deciding approver, with exactly the grant the process gives (select + update of that entity) and
  no data scope: the admin who defined the process authorised that one write. It is audited and
  versioned like any edit and raises `{plugin}.{entity}.updated`.
- A selector that finds nobody, or an end action that fails, stops the instance as `stuck` with the
  reason in `error` (shown to admins, who can retry after fixing the cause); nothing hangs silently.
- Events (outbox, delivered after commit): workflow.task.created, workflow.task.completed (payload
  business_id = record id, entity, plugin, title, outcome, comment, decided_by(_email), task_id,
  instance_id — what a plugin's handler of a decision reads), workflow.instance.completed (outcome, decisions). Notifications go
  to the assignees of a new task and to the requester on the outcome. Every change writes an audit row.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit, messages
from app.access import policy
from app.audit import Actor
from app.core.errors import Conflict, Forbidden, NotFound, PortalError, ValidationFailed
from app.core.models import (
    Membership,
    Tenant,
    User,
    WorkflowAssignee,
    WorkflowInstance,
    WorkflowProcess,
    WorkflowTask,
    utcnow,
)
from app.events import Event, emit
from app.plugins import runtime
from app.plugins.runtime import EntityRef
from app.records.values import FieldError, parse, to_json
from app.workflow import guard
from app.workflow.guard import ADMIN_PERMISSION
from app.workflow.inbox import (
    instance_json,
    instances_for_record,
    open_task_count,
    open_task_count_query,
    process_for_any,
    stuck_instances,
    task_json,
    tasks_for,
)
from app.workflow.kinds import CONDITIONS, SELECTORS, RuleContext, Selection

log = logging.getLogger("portal.workflow")
MAX_STEPS = 20
MAX_COMMENT = 2000
ACTIVE_STATES = ("running", "stuck")
OUTCOMES = ("approved", "rejected")

__all__ = [
    "ADMIN_PERMISSION",
    "Forbidden",
    "StartApprovalOnCreate",
    "decide",
    "get_task",
    "instance_json",
    "instances_for_record",
    "list_processes",
    "open_task_count",
    "open_task_count_query",
    "process_for",
    "process_for_any",
    "reassign",
    "retry",
    "save_process",
    "start",
    "stuck_instances",
    "task_json",
    "tasks_for",
]


# --- processes -----------------------------------------------------------------------------------


def _text(value: Any, name: str, limit: int) -> str:
    text = str(value or "").strip()
    if not text:
        raise ValidationFailed({name: "is required"})
    if len(text) > limit or any(ord(c) < 32 for c in text):
        raise ValidationFailed({name: f"use at most {limit} printable characters"})
    return text


def _end_action(entity: EntityRef, raw: Any, name: str) -> dict[str, Any] | None:
    if raw in (None, {}, ""):
        return None
    if not isinstance(raw, Mapping) or not raw.get("field"):
        raise ValidationFailed({f"{name}.field": "choose the field to set"})
    field = str(raw["field"])
    if not entity.spec.has_field(field):
        raise ValidationFailed({f"{name}.field": f"{entity.name} has no field {field!r}"})
    spec = entity.spec.field(field)
    try:
        value = parse(spec, raw.get("value"))
    except FieldError as exc:
        raise ValidationFailed({f"{name}.value": str(exc)}) from None
    if value is None and spec.required:
        raise ValidationFailed({f"{name}.value": f"{spec.label} is required; give a value"})
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
        raise ValidationFailed({f"{where}.kind": f"choose one of {', '.join(registry)}"})
    kind = str(raw["kind"])
    config = raw.get("config") or {}
    if not isinstance(config, Mapping):
        raise ValidationFailed({f"{where}.config": "must be a table"})
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
        raise ValidationFailed({"steps": "add at least one step"})
    if len(raw_steps) > MAX_STEPS:
        raise ValidationFailed({"steps": f"at most {MAX_STEPS} steps"})
    steps = []
    for i, raw in enumerate(raw_steps):
        if not isinstance(raw, Mapping):
            raise ValidationFailed({f"steps[{i}]": "must be a table"})
        step = {
            "name": _text(raw.get("name") or f"Step {i + 1}", f"steps[{i}].name", 200),
            "selector": await _rule(
                session, tenant_id, entity, raw.get("selector"), f"steps[{i}].selector", SELECTORS
            ),
            "condition": None,
        }
        if raw.get("condition"):
            step["condition"] = await _rule(
                session, tenant_id, entity, raw["condition"], f"steps[{i}].condition", CONDITIONS
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


def describe_step(step: Mapping[str, Any]) -> tuple[str, str]:
    """(who decides, when the step applies) in words, for admin pages."""
    selector = SELECTORS.get(step["selector"]["kind"])
    who = (
        selector.describe(step["selector"]["config"])
        if selector
        else f"unknown selector {step['selector']['kind']}"
    )
    cond = step.get("condition")
    if not cond:
        return who, "always"
    kind = CONDITIONS.get(cond["kind"])
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


# --- running ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    reason: str


@dataclass
class Engine:
    """One unit of workflow work inside the caller's transaction."""

    session: AsyncSession
    tenant_id: uuid.UUID
    actor: Actor

    async def _link(self, suffix: str) -> str:
        slug = await self.session.scalar(sa.select(Tenant.slug).where(Tenant.id == self.tenant_id))
        return f"/t/{slug}{suffix}"

    async def _record_link(self, instance: WorkflowInstance) -> str | None:
        """The record's detail page (its plugin's crud page for the entity), if it has one."""
        from app.plugins import runtime

        for plugin in await runtime.enabled_for(self.session, self.tenant_id):
            if plugin.id == instance.plugin_id:
                for page in plugin.manifest.pages:
                    if page.type == "crud" and page.entity == instance.entity:
                        return await self._link(f"/p/{plugin.id}{page.path}/{instance.record_id}")
        return None

    async def _event(self, kind: str, payload: dict[str, Any]) -> None:
        await emit(
            self.session,
            Event(f"workflow.{kind}", str(self.tenant_id), payload, source="base", actor=self.actor.email),
        )

    async def _audit(
        self, action: str, instance: WorkflowInstance, summary: str, after: dict[str, Any] | None = None
    ) -> None:
        await audit.record(
            self.session,
            self.actor,
            f"workflow.{action}",
            f"{instance.plugin_id}.{instance.entity}",
            instance.record_id,
            tenant_id=self.tenant_id,
            summary=summary,
            after=after,
        )

    def _context(self, instance: WorkflowInstance, entity: EntityRef) -> RuleContext:
        record: dict[str, Any] = {}
        for spec in entity.spec.fields:
            try:
                record[spec.name] = parse(spec, instance.snapshot.get(spec.name))
            except FieldError:
                record[spec.name] = None
        return RuleContext(self.session, self.tenant_id, entity, record, instance.requester_id)

    async def start(
        self, process: WorkflowProcess, entity: EntityRef, row: Mapping[str, Any], requester: Actor
    ) -> WorkflowInstance:
        record_id = str(row["id"])
        busy = await self.session.scalar(
            sa.select(WorkflowInstance.id)
            .where(
                WorkflowInstance.tenant_id == self.tenant_id,
                WorkflowInstance.plugin_id == entity.plugin_id,
                WorkflowInstance.entity == entity.name,
                WorkflowInstance.record_id == record_id,
                WorkflowInstance.state.in_(ACTIVE_STATES),
            )
            .limit(1)
        )
        if busy is not None:
            raise Conflict("This record is already waiting for approval")
        title = str(row.get(entity.spec.display_field) or record_id)[:200]
        instance = WorkflowInstance(
            tenant_id=self.tenant_id,
            process_id=process.id,
            plugin_id=entity.plugin_id,
            entity=entity.name,
            record_id=record_id,
            requester_id=requester.user_id,
            requester_email=requester.email,
            state="running",
            step_index=0,
            snapshot={k: to_json(v) for k, v in row.items() if k != "tenant_id"},
            title=title,
            error="",
            created_at=utcnow(),
        )
        self.session.add(instance)
        await self.session.flush()
        await self._audit(
            "start",
            instance,
            f"Submitted {entity.spec.label} {title} for approval ({process.name})",
            {"instance_id": str(instance.id), "process": process.name},
        )
        await self.advance(instance, process, entity, 0)
        return instance

    async def advance(
        self, instance: WorkflowInstance, process: WorkflowProcess, entity: EntityRef, start: int
    ) -> None:
        """Open the task of the first step from `start` whose condition holds, or finish as approved."""
        steps = process.steps
        ctx = self._context(instance, entity)
        for index in range(start, len(steps)):
            step = steps[index]
            cond = step.get("condition")
            if cond:
                kind = CONDITIONS.get(cond["kind"])
                if kind is None:
                    return await self._stuck(
                        instance,
                        f"Step {index + 1} ({step['name']}): the condition kind "
                        f"{cond['kind']!r} is not available",
                    )
                holds = await self._guarded(kind.evaluate, ctx, cond["config"])
                if isinstance(holds, Failure):
                    return await self._stuck(
                        instance, f"Step {index + 1} ({step['name']}): the condition failed: {holds.reason}"
                    )
                if not holds:
                    await self._audit(
                        "step.skipped",
                        instance,
                        f"Skipped step {step['name']}: its condition "
                        f"({kind.describe(cond['config'])}) does not hold",
                    )
                    continue
            selector = SELECTORS.get(step["selector"]["kind"])
            if selector is None:
                return await self._stuck(
                    instance,
                    f"Step {index + 1} ({step['name']}): the selector kind "
                    f"{step['selector']['kind']!r} is not available",
                )
            chosen = await self._guarded(selector.select, ctx, step["selector"]["config"])
            if isinstance(chosen, Failure) or not isinstance(chosen, Selection):
                reason = (
                    chosen.reason if isinstance(chosen, Failure) else f"it returned {type(chosen).__name__}"
                )
                return await self._stuck(
                    instance, f"Step {index + 1} ({step['name']}): the approver rule failed: {reason}"
                )
            if not chosen.user_ids:
                return await self._stuck(
                    instance, f"Step {index + 1} ({step['name']}) has no approver: {chosen.reason}"
                )
            instance.state, instance.step_index, instance.error = "running", index, ""
            await self._open_task(instance, entity, index, step["name"], chosen.user_ids)
            return None
        await self.finish(instance, process, entity, "approved")
        return None

    async def _guarded(self, call: Any, ctx: RuleContext, config: Mapping[str, Any]) -> Any:
        """Run a condition or selector in a savepoint: one that fails (a bug, a trapped WASM guest, a
        database error) stops this instance as stuck with the reason instead of failing the request."""
        try:
            async with self.session.begin_nested():
                return await call(ctx, config)
        except Exception as exc:  # any failure of a rule implementation is the instance's problem
            log.warning("Approval rule %s failed", getattr(call, "__qualname__", call), exc_info=True)
            return Failure(f"{type(exc).__name__}: {exc}"[:500])

    async def _open_task(
        self,
        instance: WorkflowInstance,
        entity: EntityRef,
        index: int,
        step_name: str,
        user_ids: list[uuid.UUID],
    ) -> WorkflowTask:
        task = WorkflowTask(
            tenant_id=self.tenant_id,
            instance_id=instance.id,
            step_index=index,
            step_name=step_name,
            state="open",
            decided_by_email="",
            comment="",
            created_at=utcnow(),
        )
        self.session.add(task)
        await self.session.flush()
        self.session.add_all(
            [
                WorkflowAssignee(tenant_id=self.tenant_id, task_id=task.id, user_id=u, is_open=True)
                for u in user_ids
            ]
        )
        await self.session.flush()
        await self._audit(
            "task.created",
            instance,
            f"Approval step {step_name} assigned to {len(user_ids)} user(s)",
            {"task_id": str(task.id), "assignees": [str(u) for u in user_ids]},
        )
        await self._event(
            "task.created",
            {
                **self._payload(instance),
                "task_id": str(task.id),
                "step": step_name,
                "assignees": [str(u) for u in user_ids],
            },
        )
        await messages.notify(
            self.session,
            self.tenant_id,
            user_ids,
            f"Approval needed: {instance.title}"[:200],
            f"{entity.spec.label} {instance.title}, submitted by {instance.requester_email}, "
            f"waits for your decision (step {step_name}).",
            await self._link(f"/tasks/{task.id}"),
            source="workflow",
            actor=self.actor,
        )
        return task

    @staticmethod
    def _payload(instance: WorkflowInstance) -> dict[str, Any]:
        # `title` (the record's display value when submitted) lets a guest find the row with db.query,
        # which filters on fields, not on ids.
        return {
            "business_id": instance.record_id,
            "entity": instance.entity,
            "plugin": instance.plugin_id,
            "instance_id": str(instance.id),
            "process_id": str(instance.process_id),
            "title": instance.title,
        }

    async def _stuck(self, instance: WorkflowInstance, reason: str) -> None:
        instance.state, instance.error = "stuck", reason[:2000]
        await self.session.flush()
        await self._audit(
            "instance.stuck",
            instance,
            f"Approval of {instance.title} is stuck: {reason}"[:500],
            {"error": reason},
        )

    async def finish(
        self, instance: WorkflowInstance, process: WorkflowProcess, entity: EntityRef, outcome: str
    ) -> None:
        action = process.on_approve if outcome == "approved" else process.on_reject
        if action:
            problem = await self._apply(instance, entity, action)
            if problem:
                return await self._stuck(
                    instance, f"The end action (set {action['field']}) failed: {problem}"
                )
        instance.state, instance.finished_at, instance.error = outcome, utcnow(), ""
        await self.session.flush()
        await self._audit(
            f"instance.{outcome}", instance, f"Approval of {instance.title}: {outcome}", {"outcome": outcome}
        )
        # `decisions` = 0: every step was skipped, nobody decided (a subscriber may say so on the record).
        decisions = await self.session.scalar(
            sa.select(sa.func.count())
            .select_from(WorkflowTask)
            .where(WorkflowTask.instance_id == instance.id, WorkflowTask.state.in_(OUTCOMES))
        )
        await self._event(
            "instance.completed",
            {**self._payload(instance), "outcome": outcome, "decisions": int(decisions or 0)},
        )
        if instance.requester_id is not None and await self._is_member(instance.requester_id):
            await messages.notify(
                self.session,
                self.tenant_id,
                [instance.requester_id],
                f"{entity.spec.label} {instance.title} was {outcome}"[:200],
                f"Your request for approval of {entity.spec.label} {instance.title} was {outcome}.",
                await self._record_link(instance),
                source="workflow",
                actor=self.actor,
            )
        return None

    async def _is_member(self, user_id: uuid.UUID) -> bool:
        return (
            await self.session.scalar(
                sa.select(Membership.id).where(
                    Membership.tenant_id == self.tenant_id, Membership.user_id == user_id
                )
            )
            is not None
        )

    async def _apply(
        self, instance: WorkflowInstance, entity: EntityRef, action: Mapping[str, Any]
    ) -> str | None:
        """Set the end action's field through the record service; the reason when it cannot."""
        from app.records.service import RecordService, app_hooks

        granted = {entity.permission("select"), entity.permission("update")}
        # The app's hooks: its record validators check this write too.
        svc = RecordService(
            self.session,
            self.tenant_id,
            self.actor,
            granted.__contains__,
            scope=None,
            hooks=app_hooks(self.session),
        )
        try:
            await guard.write_end_action(svc, entity, instance.record_id, action["field"], action["value"])
        except ValidationFailed as exc:
            return "; ".join(f"{k}: {v}" for k, v in exc.errors.items()) or exc.detail
        except PortalError as exc:
            return exc.detail
        return None


def _engine(session: AsyncSession, tenant_id: uuid.UUID, actor: Actor) -> Engine:
    return Engine(session, tenant_id, actor)


async def start(
    session: AsyncSession, tenant_id: uuid.UUID, actor: Actor, entity: EntityRef, row: Mapping[str, Any]
) -> WorkflowInstance:
    """Submit `row` (read by the caller through its RecordService, so visible to it) for approval."""
    process = await process_for(session, tenant_id, entity.plugin_id, entity.name)
    if process is None:
        raise NotFound(f"There is no approval process for {entity.spec.label} in this tenant")
    return await _engine(session, tenant_id, actor).start(process, entity, row, actor)


class StartApprovalOnCreate:
    """The record service's insert hook (AppServices.record_hooks.insert): after every insert, start the
    entity's approval when its active process says `auto_start` (every path — pages, API, WASM host).

    Per worker it keeps the (plugin, entity) pairs with an active auto-start process, per tenant, under the
    policy versions requests read anyway (save_process bumps the tenant's): it spares every insert a query."""

    def __init__(self) -> None:
        self.cache: runtime.PerTenantCache[frozenset[tuple[str, str]]] = runtime.PerTenantCache()

    async def entities(self, session: AsyncSession, tenant_id: uuid.UUID) -> frozenset[tuple[str, str]]:
        async def load() -> frozenset[tuple[str, str]]:
            rows = await session.execute(
                sa.select(WorkflowProcess.plugin_id, WorkflowProcess.entity).where(
                    WorkflowProcess.tenant_id == tenant_id,
                    WorkflowProcess.is_active.is_(True),
                    WorkflowProcess.auto_start.is_(True),
                )
            )
            return frozenset((p, e) for p, e in rows.all())

        return await self.cache.get(session, tenant_id, load)

    async def __call__(self, svc: Any, entity: EntityRef, row: dict[str, Any]) -> WorkflowInstance | None:
        session, tenant_id, actor = svc.db, svc.tenant_id, svc.actor
        if (entity.plugin_id, entity.name) not in await self.entities(session, tenant_id):
            return None
        process = await process_for(session, tenant_id, entity.plugin_id, entity.name)
        if process is None or not process.auto_start:
            return None
        return await _engine(session, tenant_id, actor).start(process, entity, row, actor)


async def _load(
    session: AsyncSession, tenant_id: uuid.UUID, task_id: uuid.UUID
) -> tuple[WorkflowTask, WorkflowInstance]:
    found = (
        await session.execute(
            sa.select(WorkflowTask, WorkflowInstance)
            .join(WorkflowInstance, WorkflowInstance.id == WorkflowTask.instance_id)
            .where(WorkflowTask.tenant_id == tenant_id, WorkflowTask.id == task_id)
        )
    ).first()
    if found is None:  # another tenant's task is simply not there
        raise NotFound("No such approval task in this tenant")
    return found[0], found[1]


async def assignees(session: AsyncSession, task_id: uuid.UUID) -> list[tuple[uuid.UUID, str]]:
    rows = await session.execute(
        sa.select(User.id, User.email)
        .join(WorkflowAssignee, WorkflowAssignee.user_id == User.id)
        .where(WorkflowAssignee.task_id == task_id)
        .order_by(User.email)
    )
    return [(r[0], r[1]) for r in rows.all()]


@dataclass
class TaskView:
    task: WorkflowTask
    instance: WorkflowInstance
    assignees: list[tuple[uuid.UUID, str]]

    def may_decide(self, user_id: uuid.UUID | None) -> bool:
        return self.task.state == "open" and any(u == user_id for u, _ in self.assignees)


async def get_task(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    task_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    admin: bool = False,
) -> TaskView:
    """A task for its assignees (any state) or for workflow admins; others get 404."""
    task, instance = await _load(session, tenant_id, task_id)
    people = await assignees(session, task.id)
    if not admin and all(u != user_id for u, _ in people) and instance.requester_id != user_id:
        raise NotFound("No such approval task in this tenant")
    return TaskView(task, instance, people)


async def decide(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    actor: Actor,
    entity_of: Any,
    task_id: uuid.UUID,
    outcome: str,
    comment: str = "",
) -> TaskView:
    """Approve or reject an open task as one of its assignees.

    `entity_of(plugin_id, entity)` returns the EntityRef (the plugin must still be enabled here)."""
    if outcome not in OUTCOMES:
        raise ValidationFailed({"outcome": "approve or reject"})
    comment = str(comment or "").strip()
    if len(comment) > MAX_COMMENT:
        raise ValidationFailed({"comment": f"use at most {MAX_COMMENT} characters"})
    task, instance = await _load(session, tenant_id, task_id)
    people = await assignees(session, task.id)
    if all(u != actor.user_id for u, _ in people):
        raise Forbidden("You are not an approver of this task")
    if task.state != "open":
        raise Conflict(f"This task was already decided ({task.state})")
    entity: EntityRef = await entity_of(instance.plugin_id, instance.entity)
    process = await session.get(WorkflowProcess, instance.process_id)
    assert process is not None
    now = utcnow()
    # Decided once: a second approver clicking at the same time finds the row no longer open.
    done = await session.execute(
        sa.update(WorkflowTask)
        .where(WorkflowTask.id == task.id, WorkflowTask.state == "open")
        .values(
            state=outcome,
            decided_by=actor.user_id,
            decided_by_email=actor.email,
            comment=comment,
            decided_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("This task was already decided")
    await session.execute(
        sa.update(WorkflowAssignee)
        .where(WorkflowAssignee.task_id == task.id)
        .values(is_open=False)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(task)
    engine = _engine(session, tenant_id, actor)
    await engine._audit(
        f"task.{outcome}",
        instance,
        f"{actor.email} {outcome} step {task.step_name}" + (f": {comment[:200]}" if comment else ""),
        {"task_id": str(task.id), "comment": comment},
    )
    await engine._event(
        "task.completed",
        {
            **Engine._payload(instance),
            "task_id": str(task.id),
            "outcome": outcome,
            "comment": comment,
            "step": task.step_name,
            "decided_by": str(actor.user_id) if actor.user_id else None,
            "decided_by_email": actor.email,
        },
    )
    if outcome == "rejected":
        await engine.finish(instance, process, entity, "rejected")
    else:
        await engine.advance(instance, process, entity, task.step_index + 1)
    return TaskView(task, instance, people)


async def reassign(
    session: AsyncSession, tenant_id: uuid.UUID, actor: Actor, task_id: uuid.UUID, user_ref: str
) -> TaskView:
    """Give an open task to another member instead of its current assignees (admins)."""
    from app.identity.hierarchy import resolve_member

    task, instance = await _load(session, tenant_id, task_id)
    if task.state != "open":
        raise Conflict(f"This task was already decided ({task.state})")
    try:
        user = await resolve_member(session, tenant_id, user_ref, "user")
    except ValidationFailed:
        raise ValidationFailed(
            {"user": f"{user_ref.strip()[:100]!r} is not a member of this tenant"}
        ) from None
    before = [e for _, e in await assignees(session, task.id)]
    await session.execute(sa.delete(WorkflowAssignee).where(WorkflowAssignee.task_id == task.id))
    session.add(WorkflowAssignee(tenant_id=tenant_id, task_id=task.id, user_id=user.id, is_open=True))
    await session.flush()
    engine = _engine(session, tenant_id, actor)
    await engine._audit(
        "task.reassigned",
        instance,
        f"Reassigned step {task.step_name} to {user.email}",
        {"task_id": str(task.id), "from": before, "to": user.email},
    )
    await messages.notify(
        session,
        tenant_id,
        [user.id],
        f"Approval needed: {instance.title}"[:200],
        f"{actor.email} reassigned the approval of {instance.title} (step {task.step_name}) to you.",
        await engine._link(f"/tasks/{task.id}"),
        source="workflow",
        actor=actor,
    )
    return TaskView(task, instance, await assignees(session, task.id))


async def retry(
    session: AsyncSession, tenant_id: uuid.UUID, actor: Actor, entity_of: Any, instance_id: uuid.UUID
) -> WorkflowInstance:
    """Run a stuck instance again from its current step (after the admin fixed the cause)."""
    instance = await session.scalar(
        sa.select(WorkflowInstance).where(
            WorkflowInstance.tenant_id == tenant_id, WorkflowInstance.id == instance_id
        )
    )
    if instance is None:
        raise NotFound("No such approval in this tenant")
    if instance.state != "stuck":
        raise Conflict(f"Only a stuck approval can be retried (this one is {instance.state})")
    process = await session.get(WorkflowProcess, instance.process_id)
    assert process is not None
    entity: EntityRef = await entity_of(instance.plugin_id, instance.entity)
    engine = _engine(session, tenant_id, actor)
    await engine._audit("instance.retry", instance, f"Retried the approval of {instance.title}")
    # A stuck end action means every step was decided: finish again; otherwise re-run the current step.
    last = await session.scalar(
        sa.select(WorkflowTask)
        .where(WorkflowTask.instance_id == instance.id)
        .order_by(WorkflowTask.created_at.desc())
        .limit(1)
    )
    if last is not None and last.step_index == instance.step_index and last.state in OUTCOMES:
        if last.state == "rejected":
            await engine.finish(instance, process, entity, "rejected")
        else:
            await engine.advance(instance, process, entity, instance.step_index + 1)
    else:
        await engine.advance(instance, process, entity, instance.step_index)
    return instance
