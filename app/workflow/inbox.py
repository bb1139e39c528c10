"""Reading the workflow: task inboxes and counts, a record's approvals, stuck instances, and their JSON
shapes for the API, and one task with its assignees (the writes are in app.workflow.engine)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NotFound
from app.core.i18n import N_
from app.core.models import User, WorkflowAssignee, WorkflowInstance, WorkflowProcess, WorkflowTask


def open_task_count_query(tenant_id: uuid.UUID, user_id: uuid.UUID) -> sa.Select[Any]:
    """One COUNT answered by ix_workflow_assignees_inbox (the header badge asks on every full page)."""
    return (
        sa.select(sa.func.count())
        .select_from(WorkflowAssignee)
        .where(
            WorkflowAssignee.tenant_id == tenant_id,
            WorkflowAssignee.user_id == user_id,
            WorkflowAssignee.is_open.is_(True),
        )
    )


async def open_task_count(session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID) -> int:
    return int(await session.scalar(open_task_count_query(tenant_id, user_id)) or 0)


async def tasks_for(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    open_only: bool = True,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[tuple[WorkflowTask, WorkflowInstance]], int]:
    """The user's tasks in the tenant, newest first (open ones only, or all they were assigned)."""
    cond = [WorkflowAssignee.tenant_id == tenant_id, WorkflowAssignee.user_id == user_id]
    if open_only:
        cond.append(WorkflowAssignee.is_open.is_(True))
    total = int(
        await session.scalar(sa.select(sa.func.count()).select_from(WorkflowAssignee).where(*cond)) or 0
    )
    rows = await session.execute(
        sa.select(WorkflowTask, WorkflowInstance)
        .join(WorkflowAssignee, WorkflowAssignee.task_id == WorkflowTask.id)
        .join(WorkflowInstance, WorkflowInstance.id == WorkflowTask.instance_id)
        .where(*cond)
        .order_by(WorkflowTask.created_at.desc(), WorkflowTask.id)
        .offset(offset)
        .limit(limit)
    )
    return [(r[0], r[1]) for r in rows.all()], total


async def instances_for_record(
    session: AsyncSession, tenant_id: uuid.UUID, plugin_id: str, entity: str, record_id: str
) -> list[tuple[WorkflowInstance, list[WorkflowTask]]]:
    """The record's approvals, newest first, each with its tasks in order (the record's history)."""
    instances = (
        await session.scalars(
            sa.select(WorkflowInstance)
            .where(
                WorkflowInstance.tenant_id == tenant_id,
                WorkflowInstance.plugin_id == plugin_id,
                WorkflowInstance.entity == entity,
                WorkflowInstance.record_id == record_id,
            )
            .order_by(WorkflowInstance.created_at.desc())
            .limit(20)
        )
    ).all()
    if not instances:
        return []
    tasks = (
        await session.scalars(
            sa.select(WorkflowTask)
            .where(WorkflowTask.instance_id.in_([i.id for i in instances]))
            .order_by(WorkflowTask.created_at)
        )
    ).all()
    return [(i, [t for t in tasks if t.instance_id == i.id]) for i in instances]


async def stuck_instances(session: AsyncSession, tenant_id: uuid.UUID) -> list[WorkflowInstance]:
    return list(
        (
            await session.scalars(
                sa.select(WorkflowInstance)
                .where(WorkflowInstance.tenant_id == tenant_id, WorkflowInstance.state == "stuck")
                .order_by(WorkflowInstance.created_at.desc())
                .limit(100)
            )
        ).all()
    )


def instance_json(instance: WorkflowInstance, tasks: list[WorkflowTask] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": str(instance.id),
        "process_id": str(instance.process_id),
        "plugin": instance.plugin_id,
        "entity": instance.entity,
        "record_id": instance.record_id,
        "title": instance.title,
        "state": instance.state,
        "error": instance.error or None,
        "step_index": instance.step_index,
        "requester": instance.requester_email,
        "created_at": instance.created_at.isoformat(),
        "finished_at": instance.finished_at.isoformat() if instance.finished_at else None,
    }
    if tasks is not None:
        out["tasks"] = [task_json(t) for t in tasks]
    return out


def task_json(task: WorkflowTask, instance: WorkflowInstance | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": str(task.id),
        "instance_id": str(task.instance_id),
        "step": task.step_name,
        "step_index": task.step_index,
        "state": task.state,
        "comment": task.comment or None,
        "decided_by": task.decided_by_email or None,
        "created_at": task.created_at.isoformat(),
        "decided_at": task.decided_at.isoformat() if task.decided_at else None,
    }
    if instance is not None:
        out.update(
            {
                "plugin": instance.plugin_id,
                "entity": instance.entity,
                "record_id": instance.record_id,
                "title": instance.title,
                "requester": instance.requester_email,
                "record": instance.snapshot,
            }
        )
    return out


async def process_for_any(
    session: AsyncSession, tenant_id: uuid.UUID, plugin_id: str, entity: str
) -> WorkflowProcess | None:
    """The entity's process, active or not (for editing)."""
    return await session.scalar(
        sa.select(WorkflowProcess).where(
            WorkflowProcess.tenant_id == tenant_id,
            WorkflowProcess.plugin_id == plugin_id,
            WorkflowProcess.entity == entity,
        )
    )


async def load_task(
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
        raise NotFound(N_("No such approval task in this tenant"))
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
    task, instance = await load_task(session, tenant_id, task_id)
    people = await assignees(session, task.id)
    if not admin and all(u != user_id for u, _ in people) and instance.requester_id != user_id:
        raise NotFound(N_("No such approval task in this tenant"))
    return TaskView(task, instance, people)
