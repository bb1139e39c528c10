"""The workflow base module's JSON API: /api/v1/tasks (inbox, one task, approve / reject / reassign),
/api/v1/workflow/... (processes, stuck instances, retry) and POST /api/v1/plugins/{plugin}/{entity}/{id}/
submit; `submit_record` is shared with the record page's Submit button (app.web.records.actions)."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import get, post, put
from litestar.plugins.htmx import HTMXRequest

from app import workflow
from app.core.errors import ValidationFailed
from app.core.i18n import N_
from app.plugins.runtime import EntityRef
from app.web.api import TENANT_HEADER
from app.web.context import RequestContext
from app.web.render import Pager
from app.web.workflow_pages import ADMIN, AUTH, entity_lookup, tenant_id_of, user_id_of


def _comment(data: dict[str, Any] | None) -> str:
    value = (data or {}).get("comment", "")
    if not isinstance(value, str):
        raise ValidationFailed({"comment": N_("must be text")})
    return value


@post(
    "/api/v1/plugins/{plugin_id:str}/{entity:str}/{record_id:str}/submit",
    opt=AUTH,
    tags=["workflow"],
    status_code=201,
    summary="Submit a record for approval (needs db.<entity>.update on it)",
)
async def api_submit(
    ctx: RequestContext, plugin_id: str, entity: str, record_id: str, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    ref = await entity_lookup(ctx)(plugin_id, entity)
    instance = await submit_record(ctx, ref, record_id)
    tasks = await workflow.instances_for_record(
        ctx.db, tenant_id_of(ctx), plugin_id, entity, instance.record_id
    )
    return workflow.instance_json(instance, next((t for i, t in tasks if i.id == instance.id), []))


async def submit_record(ctx: RequestContext, ref: EntityRef, record_id: str) -> Any:
    """Shared by the API and the record page: the user must be able to edit the record (in scope)."""
    svc = ctx.records()
    svc.require(ref, "update")
    row = await svc.get(ref, record_id)
    return await workflow.start(ctx.db, tenant_id_of(ctx), ctx.actor, ref, row)


@get(
    "/api/v1/plugins/{plugin_id:str}/{entity:str}/{record_id:str}/approvals",
    opt=AUTH,
    tags=["workflow"],
    summary="A record's approvals (state and history), newest first",
)
async def api_record_approvals(
    ctx: RequestContext, plugin_id: str, entity: str, record_id: str, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    ref = await entity_lookup(ctx)(plugin_id, entity)
    row = await ctx.records().get(ref, record_id)
    found = await workflow.instances_for_record(ctx.db, tenant_id_of(ctx), plugin_id, entity, str(row["id"]))
    return {"items": [workflow.instance_json(i, t) for i, t in found]}


@get(
    "/api/v1/tasks",
    opt=AUTH,
    tags=["workflow"],
    summary="Your approval tasks in the tenant: open ones, or ?all=1 for every task assigned to you",
)
async def api_tasks(
    request: HTMXRequest, ctx: RequestContext, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    pager = Pager(request)
    rows, total = await workflow.tasks_for(
        ctx.db,
        tenant_id_of(ctx),
        user_id_of(ctx),
        open_only=request.query_params.get("all") not in {"1", "true"},
        offset=pager.offset,
        limit=pager.size,
    )
    return {
        "items": [workflow.task_json(t, i) for t, i in rows],
        "total": total,
        "page": pager.page,
        "size": pager.size,
    }


@get(
    "/api/v1/tasks/{task_id:uuid}",
    opt=AUTH,
    tags=["workflow"],
    summary="One task (its assignees, requester or admins)",
)
async def api_task(
    ctx: RequestContext, task_id: uuid.UUID, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    view = await workflow.get_task(
        ctx.db, tenant_id_of(ctx), task_id, user_id_of(ctx), admin=ctx.can(workflow.ADMIN_PERMISSION)
    )
    return {
        **workflow.task_json(view.task, view.instance),
        "assignees": [e for _, e in view.assignees],
        "instance_state": view.instance.state,
    }


async def _decide(
    ctx: RequestContext, task_id: uuid.UUID, outcome: str, data: dict[str, Any] | None
) -> dict[str, Any]:
    view = await workflow.decide(
        ctx.db, tenant_id_of(ctx), ctx.actor, entity_lookup(ctx), task_id, outcome, _comment(data)
    )
    return {**workflow.task_json(view.task, view.instance), "instance_state": view.instance.state}


@post(
    "/api/v1/tasks/{task_id:uuid}/approve",
    opt=AUTH,
    tags=["workflow"],
    status_code=200,
    summary='Approve a task you are assigned (body: {"comment": ...}, optional)',
)
async def api_approve(
    ctx: RequestContext,
    task_id: uuid.UUID,
    data: dict[str, Any] | None = None,
    x_tenant: str | None = TENANT_HEADER,
) -> dict[str, Any]:
    return await _decide(ctx, task_id, "approved", data)


@post(
    "/api/v1/tasks/{task_id:uuid}/reject",
    opt=AUTH,
    tags=["workflow"],
    status_code=200,
    summary='Reject a task you are assigned; ends the approval (body: {"comment": ...})',
)
async def api_reject(
    ctx: RequestContext,
    task_id: uuid.UUID,
    data: dict[str, Any] | None = None,
    x_tenant: str | None = TENANT_HEADER,
) -> dict[str, Any]:
    return await _decide(ctx, task_id, "rejected", data)


@post(
    "/api/v1/tasks/{task_id:uuid}/reassign",
    opt=ADMIN,
    tags=["workflow"],
    status_code=200,
    summary='Give an open task to another member (body: {"user": email or id}; workflow admins)',
)
async def api_reassign(
    ctx: RequestContext, task_id: uuid.UUID, data: dict[str, Any], x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    view = await workflow.reassign(ctx.db, tenant_id_of(ctx), ctx.actor, task_id, str(data.get("user") or ""))
    return {**workflow.task_json(view.task, view.instance), "assignees": [e for _, e in view.assignees]}


@get("/api/v1/workflow/processes", opt=ADMIN, tags=["workflow"], summary="The tenant's approval processes")
async def api_processes(ctx: RequestContext, x_tenant: str | None = TENANT_HEADER) -> dict[str, Any]:
    return {
        "items": [workflow.process_json(p) for p in await workflow.list_processes(ctx.db, tenant_id_of(ctx))]
    }


@put(
    "/api/v1/workflow/processes/{plugin_id:str}/{entity:str}",
    opt=ADMIN,
    tags=["workflow"],
    summary="Create or replace an entity's approval process (name, steps[{name, selector{kind, config}, "
    "condition{kind, config}}], on_approve{field, value}, on_reject, auto_start, is_active)",
)
async def api_save_process(
    ctx: RequestContext,
    plugin_id: str,
    entity: str,
    data: dict[str, Any],
    x_tenant: str | None = TENANT_HEADER,
) -> dict[str, Any]:
    ref = await entity_lookup(ctx)(plugin_id, entity)
    return workflow.process_json(await workflow.save_process(ctx.db, tenant_id_of(ctx), ctx.actor, ref, data))


@get(
    "/api/v1/workflow/instances",
    opt=ADMIN,
    tags=["workflow"],
    summary="Stuck approvals of the tenant, with their errors",
)
async def api_stuck(ctx: RequestContext, x_tenant: str | None = TENANT_HEADER) -> dict[str, Any]:
    return {
        "items": [
            workflow.instance_json(i) for i in await workflow.stuck_instances(ctx.db, tenant_id_of(ctx))
        ]
    }


@post(
    "/api/v1/workflow/instances/{instance_id:uuid}/retry",
    opt=ADMIN,
    tags=["workflow"],
    status_code=200,
    summary="Run a stuck approval again from its current step",
)
async def api_retry(
    ctx: RequestContext, instance_id: uuid.UUID, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    return workflow.instance_json(
        await workflow.retry(ctx.db, tenant_id_of(ctx), ctx.actor, entity_lookup(ctx), instance_id)
    )


ROUTES = [
    api_submit,
    api_record_approvals,
    api_tasks,
    api_task,
    api_approve,
    api_reject,
    api_reassign,
    api_processes,
    api_save_process,
    api_stuck,
    api_retry,
]
