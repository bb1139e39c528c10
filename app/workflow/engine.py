"""Running approvals: starting an instance for a record (on submit, or on create when the process says
so), advancing it step by step (conditions, approver selection, tasks), deciding, reassigning and
retrying tasks, and finishing with the end action. Everything happens inside the caller's transaction."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit, messages
from app.audit import Actor
from app.core.errors import Conflict, Forbidden, NotFound, PortalError, ValidationFailed
from app.core.i18n import N_, phrase
from app.core.models import (
    Membership,
    Tenant,
    WorkflowAssignee,
    WorkflowInstance,
    WorkflowProcess,
    WorkflowTask,
    utcnow,
)
from app.events import Event, emit
from app.extensions.builtins import RuleContext, Selection
from app.extensions.registry import registry_of
from app.plugins import runtime
from app.plugins.runtime import EntityRef
from app.records.values import FieldError, parse, to_json
from app.workflow import guard
from app.workflow.inbox import TaskView, assignees, load_task
from app.workflow.processes import process_for

log = logging.getLogger("portal.workflow")
MAX_COMMENT = 2000
ACTIVE_STATES = ("running", "stuck")
OUTCOMES = ("approved", "rejected")


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
            raise Conflict(N_("This record is already waiting for approval"))
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
        kinds = registry_of(self.session)
        ctx = self._context(instance, entity)
        for index in range(start, len(steps)):
            step = steps[index]
            cond = step.get("condition")
            if cond:
                kind = kinds.conditions.get(cond["kind"])
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
            selector = kinds.selectors.get(step["selector"]["kind"])
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
        raise NotFound(
            N_("There is no approval process for %(label)s in this tenant", label=entity.spec.label)
        )
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
        raise ValidationFailed({"outcome": N_("approve or reject")})
    comment = str(comment or "").strip()
    if len(comment) > MAX_COMMENT:
        raise ValidationFailed(
            {"comment": N_("use at most %(max_comment)s characters", max_comment=MAX_COMMENT)}
        )
    task, instance = await load_task(session, tenant_id, task_id)
    people = await assignees(session, task.id)
    if all(u != actor.user_id for u, _ in people):
        raise Forbidden(N_("You are not an approver of this task"))
    if task.state != "open":
        raise Conflict(N_("This task was already decided (%(state)s)", state=phrase(task.state)))
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
        raise Conflict(N_("This task was already decided"))
    await session.execute(
        sa.update(WorkflowAssignee)
        .where(WorkflowAssignee.task_id == task.id)
        .values(is_open=False)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(task)
    engine = _engine(session, tenant_id, actor)
    # The task's "Approval needed" messages (to every assignee, before and after a reassignment) are done.
    link = await engine._link(f"/tasks/{task.id}")
    await messages.mark_read_by_link(session, tenant_id, "workflow", link)
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

    task, instance = await load_task(session, tenant_id, task_id)
    if task.state != "open":
        raise Conflict(N_("This task was already decided (%(state)s)", state=phrase(task.state)))
    try:
        user = await resolve_member(session, tenant_id, user_ref, "user")
    except ValidationFailed:
        raise ValidationFailed(
            {"user": N_("%(user)s is not a member of this tenant", user=repr(user_ref.strip()[:100]))}
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
        raise NotFound(N_("No such approval in this tenant"))
    if instance.state != "stuck":
        raise Conflict(
            N_("Only a stuck approval can be retried (this one is %(state)s)", state=phrase(instance.state))
        )
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
