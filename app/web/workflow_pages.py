"""The workflow base module on the web: the task inbox (/t/{tenant}/tasks), a task's page with approve/
reject (and reassign for admins) and the process admin page (/t/{tenant}/admin/workflow); the JSON
API is app.web.workflow_api. Submitting from a generated record page lives with the record pages (app.web.records.actions)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from litestar import get, post
from litestar.datastructures import FormMultiDict
from litestar.exceptions import PermissionDeniedException
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from app import workflow
from app.core.errors import NotFound, ValidationFailed
from app.core.i18n import N_
from app.core.nesting import loads_json
from app.extensions.builtins import OPS, FieldCondition
from app.extensions.registry import registry_of
from app.plugins import runtime
from app.plugins.runtime import EntityRef
from app.records.values import parse
from app.web.context import RequestContext
from app.web.readable import Reader
from app.web.render import Pager, page, redirect

ADMIN = {"permission": workflow.ADMIN_PERMISSION}
AUTH = {"auth": True}
FORM_STEPS = 2  # empty step rows offered below the existing ones on the process form


def tenant_id_of(ctx: RequestContext) -> uuid.UUID:
    if ctx.tenant is None:
        raise PermissionDeniedException(detail=N_("Say which tenant with the X-Tenant header (slug or id)"))
    return ctx.tenant.id


def entity_lookup(ctx: RequestContext) -> Any:
    async def resolve(plugin_id: str, entity: str) -> EntityRef:
        return await runtime.entity_in_tenant(ctx.db, tenant_id_of(ctx), plugin_id, entity)

    return resolve


def user_id_of(ctx: RequestContext) -> uuid.UUID:
    assert ctx.user is not None
    return ctx.user.id


# --- task inbox and task page --------------------------------------------------------------------


async def _inbox(request: HTMXRequest, ctx: RequestContext) -> Template:
    pager = Pager(request)
    show_all = request.query_params.get("all") in {"1", "true"}
    if show_all:
        pager.extra["all"] = "1"
    rows, total = await workflow.tasks_for(
        ctx.db,
        tenant_id_of(ctx),
        user_id_of(ctx),
        open_only=not show_all,
        offset=pager.offset,
        limit=pager.size,
    )
    pager.total = total
    reader = await Reader.for_request(ctx)
    for _, i in rows:
        reader.want_user(i.requester_id, i.requester_email)
    await reader.resolve()
    labelled = []
    for t, i in rows:
        entity = reader.entity(f"{i.plugin_id}.{i.entity}")
        what = reader.label(entity.spec.label) if entity is not None else i.entity
        labelled.append((t, i, what, reader.user(i.requester_id, i.requester_email)))
    inbox_base = f"/t/{ctx.tenant.slug}/tasks"  # type: ignore[union-attr]
    return await page(
        request,
        ctx,
        "workflow/tasks.html",
        fragment="workflow/_tasks.html",
        rows=labelled,
        p=pager,
        show_all=show_all,
        inbox_base=inbox_base,
    )


@get("/t/{tenant:str}/tasks", opt=AUTH, include_in_schema=False)
async def tasks_page(request: HTMXRequest, ctx: RequestContext) -> Template:
    return await _inbox(request, ctx)


def _snapshot_fields(
    reader: Reader, entity: EntityRef | None, snapshot: dict[str, Any]
) -> list[tuple[str, str]]:
    """The record as submitted, as people read it (labels, options, referenced rows' names)."""
    if entity is None:
        return [(k, str(v)) for k, v in snapshot.items() if k not in {"deleted_at"}]
    out = []
    for spec in entity.spec.fields:
        try:
            value = parse(spec, snapshot.get(spec.name))
        except Exception:  # a value that no longer fits an upgraded field: show it as stored
            value = snapshot.get(spec.name)
        out.append((reader.label(spec.label), reader.value(spec, value)))
    return out


async def _task_page(
    request: HTMXRequest,
    ctx: RequestContext,
    task_id: uuid.UUID,
    *,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Template:
    is_admin = ctx.can(workflow.ADMIN_PERMISSION)
    view = await workflow.get_task(ctx.db, tenant_id_of(ctx), task_id, user_id_of(ctx), admin=is_admin)
    try:
        entity: EntityRef | None = await entity_lookup(ctx)(view.instance.plugin_id, view.instance.entity)
    except NotFound:
        entity = None
    history = await workflow.instances_for_record(
        ctx.db, tenant_id_of(ctx), view.instance.plugin_id, view.instance.entity, view.instance.record_id
    )
    tasks = next((t for i, t in history if i.id == view.instance.id), [])
    reader = await Reader.for_request(ctx)
    reader.want_user(view.instance.requester_id, view.instance.requester_email)
    for t in tasks:
        reader.want_user(t.decided_by, t.decided_by_email)
    item = reader.want_record(entity, view.instance.record_id, after=view.instance.snapshot)
    await reader.resolve()
    return await page(
        request,
        ctx,
        "workflow/task.html",
        view=view,
        entity=entity,
        tasks=tasks,
        fields=_snapshot_fields(reader, entity, view.instance.snapshot),
        record=reader.record(item),  # its link when this user may open the live record
        requester=reader.user(view.instance.requester_id, view.instance.requester_email),
        names={t.decided_by_email: reader.user(t.decided_by, t.decided_by_email) for t in tasks},
        may_decide=view.may_decide(user_id_of(ctx)),
        is_admin=is_admin,
        errors=errors or {},
        status_code=status_code,
    )


@get("/t/{tenant:str}/tasks/{task_id:uuid}", opt=AUTH, include_in_schema=False)
async def task_page(request: HTMXRequest, ctx: RequestContext, task_id: uuid.UUID) -> Template:
    return await _task_page(request, ctx, task_id)


@post("/t/{tenant:str}/tasks/{task_id:uuid}/decide", opt=AUTH, include_in_schema=False, status_code=200)
async def task_decide(request: HTMXRequest, ctx: RequestContext, task_id: uuid.UUID) -> Template | Redirect:
    form = await request.form()
    outcome = {"approve": "approved", "reject": "rejected"}.get(str(form.get("outcome") or ""), "")
    try:
        view = await workflow.decide(
            ctx.db,
            tenant_id_of(ctx),
            ctx.actor,
            entity_lookup(ctx),
            task_id,
            outcome,
            str(form.get("comment") or ""),
        )
    except ValidationFailed as exc:
        return await _task_page(request, ctx, task_id, errors=exc.errors, status_code=422)
    return redirect(
        f"/t/{ctx.tenant.slug}/tasks",  # type: ignore[union-attr]
        N_("%(record)s: approved (step %(step)s)", record=view.instance.title, step=view.task.step_name)
        if outcome == "approved"
        else N_("%(record)s: rejected (step %(step)s)", record=view.instance.title, step=view.task.step_name),
    )


@post("/t/{tenant:str}/tasks/{task_id:uuid}/reassign", opt=ADMIN, include_in_schema=False, status_code=200)
async def task_reassign(request: HTMXRequest, ctx: RequestContext, task_id: uuid.UUID) -> Template | Redirect:
    form = await request.form()
    try:
        view = await workflow.reassign(
            ctx.db, tenant_id_of(ctx), ctx.actor, task_id, str(form.get("user") or "")
        )
    except ValidationFailed as exc:
        return await _task_page(request, ctx, task_id, errors=exc.errors, status_code=422)
    return redirect(
        f"/t/{ctx.tenant.slug}/tasks/{task_id}",  # type: ignore[union-attr]
        N_("Reassigned to %(names)s", names=", ".join(e for _, e in view.assignees)),
    )


# --- process admin -------------------------------------------------------------------------------


async def _entities(ctx: RequestContext) -> list[EntityRef]:
    return [
        ref
        for plugin in await runtime.enabled_for(ctx.db, tenant_id_of(ctx))
        for ref in plugin.entities.values()
    ]


@get("/t/{tenant:str}/admin/workflow", opt=ADMIN, include_in_schema=False)
async def processes_page(request: HTMXRequest, ctx: RequestContext) -> Template:
    processes = await workflow.list_processes(ctx.db, tenant_id_of(ctx))
    kinds = registry_of(ctx.db)
    described = [(p, [(s["name"], *workflow.describe_step(kinds, s)) for s in p.steps]) for p in processes]
    return await page(
        request,
        ctx,
        "workflow/processes.html",
        processes=described,
        entities=await _entities(ctx),
        stuck=await workflow.stuck_instances(ctx.db, tenant_id_of(ctx)),
    )


def _form_steps(steps: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Process steps as flat form values (one condition clause per step on the form)."""
    rows = []
    for s in steps:
        sel, cond = s["selector"], s.get("condition") or {}
        clauses = list(cond.get("config", {}).get("all") or []) if cond else []
        clause = clauses[0] if clauses else {}
        value = clause.get("value")
        rows.append(
            {
                "name": s["name"],
                "selector": sel["kind"],
                "who": str(
                    sel["config"].get("role") or sel["config"].get("user") or sel["config"].get("name") or ""
                ),
                # A configured condition (extension point) is chosen by id from a list.
                "cond_config": str(cond["config"].get("config_id") or "")
                if cond and cond["kind"] == "extension"
                else "",
                "field": str(clause.get("field") or ""),
                "op": str(clause.get("op") or ""),
                "value": ", ".join(map(str, value)) if isinstance(value, list) else str(value or ""),
                # Clauses beyond the first (set through the API) ride along unchanged.
                "extra": json.dumps(clauses[1:]) if len(clauses) > 1 else "",
                "extra_text": FieldCondition().describe({"all": clauses[1:]}) if len(clauses) > 1 else "",
            }
        )
    empty = {
        "name": "",
        "selector": "",
        "who": "",
        "field": "",
        "op": "",
        "value": "",
        "extra": "",
        "extra_text": "",
        "cond_config": "",
    }
    return rows + [empty] * FORM_STEPS


def _steps_from_form(form: FormMultiDict) -> list[dict[str, Any]]:
    names, kinds, whos = (
        form.getall("step_name", []),
        form.getall("step_selector", []),
        form.getall("step_who", []),
    )
    fields, ops, values = (
        form.getall("step_field", []),
        form.getall("step_op", []),
        form.getall("step_value", []),
    )
    extras = form.getall("step_extra", [])
    configured = form.getall("step_condition_config", [])
    steps = []
    for i, kind in enumerate(kinds):
        name = names[i] if i < len(names) else ""
        if not kind and not str(name).strip():
            continue  # an unused empty row
        who = whos[i] if i < len(whos) else ""
        step: dict[str, Any] = {
            "name": name,
            "selector": {"kind": kind, "config": {kind: who} if who else {}},
        }
        field = fields[i] if i < len(fields) else ""
        clauses = (
            [
                {
                    "field": field,
                    "op": ops[i] if i < len(ops) else "",
                    "value": values[i] if i < len(values) else "",
                }
            ]
            if field
            else []
        )
        clauses += _extra(extras[i] if i < len(extras) else "")
        chosen = configured[i] if i < len(configured) else ""
        if chosen:  # a configured condition replaces the field clauses of the row
            step["condition"] = {"kind": "extension", "config": {"config_id": chosen}}
        elif clauses:
            step["condition"] = {"kind": "fields", "config": {"all": clauses}}
        steps.append(step)
    return steps


def _extra(raw: str) -> list[dict[str, Any]]:
    """The hidden further clauses of a step (checked again by save_process like any input)."""
    if not raw:
        return []
    try:
        value = loads_json(raw, max_bytes=1_000_000)  # depth-bounded: hidden, but still form input
    except ValueError:
        return []
    return [c for c in value if isinstance(c, dict)] if isinstance(value, list) else []


def _end(form: FormMultiDict, prefix: str) -> dict[str, Any] | None:
    field = str(form.get(f"{prefix}_field") or "")
    return {"field": field, "value": form.get(f"{prefix}_value") or ""} if field else None


async def _process_form(
    request: HTMXRequest,
    ctx: RequestContext,
    entity: EntityRef,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Template:
    from app import extensions
    from app.extensions import store as extension_store

    configured = await extension_store.list_configs(ctx.db, tenant_id_of(ctx), extensions.CONDITION)
    kinds = registry_of(ctx.db)
    return await page(
        request,
        ctx,
        "workflow/process_form.html",
        entity=entity,
        values=values,
        errors=errors or {},
        selectors=kinds.selectors,
        ops=OPS,
        status_code=status_code,
        conditions=kinds.conditions,
        condition_configs=[(str(r.id), r.name) for r in configured],
        may_configure=ctx.can(extensions.ADMIN_PERMISSION),
    )


def _entity_param(request: HTMXRequest) -> tuple[str, str]:
    plugin_id, _, name = (request.query_params.get("entity") or "").partition(".")
    if not plugin_id or not name:
        raise NotFound(N_("Choose an entity (plugin.entity)"))
    return plugin_id, name


@get("/t/{tenant:str}/admin/workflow/edit", opt=ADMIN, include_in_schema=False)
async def process_edit(request: HTMXRequest, ctx: RequestContext) -> Template:
    plugin_id, name = _entity_param(request)
    entity = await entity_lookup(ctx)(plugin_id, name)
    row = await workflow.process_for_any(ctx.db, tenant_id_of(ctx), plugin_id, name)
    values: dict[str, Any] = {
        "name": f"Approve {entity.spec.label}",
        "steps": _form_steps([]),
        "auto_start": False,
        "is_active": True,
        "on_approve": {},
        "on_reject": {},
    }
    if row is not None:
        values = {
            "name": row.name,
            "steps": _form_steps(row.steps),
            "auto_start": row.auto_start,
            "is_active": row.is_active,
            "on_approve": row.on_approve or {},
            "on_reject": row.on_reject or {},
        }
    return await _process_form(request, ctx, entity, values)


@post("/t/{tenant:str}/admin/workflow/edit", opt=ADMIN, include_in_schema=False, status_code=200)
async def process_save(request: HTMXRequest, ctx: RequestContext) -> Template | Redirect:
    plugin_id, name = _entity_param(request)
    entity = await entity_lookup(ctx)(plugin_id, name)
    form = await request.form()
    steps = _steps_from_form(form)
    data = {
        "name": form.get("name"),
        "steps": steps,
        "auto_start": form.get("auto_start") == "on",
        "is_active": form.get("is_active") == "on",
        "on_approve": _end(form, "on_approve"),
        "on_reject": _end(form, "on_reject"),
    }
    try:
        async with ctx.db.begin_nested():
            await workflow.save_process(ctx.db, tenant_id_of(ctx), ctx.actor, entity, data)
    except ValidationFailed as exc:
        values = {
            **data,
            "steps": [*_form_steps(steps)[: len(steps)], *_form_steps([])],
            "on_approve": data["on_approve"] or {},
            "on_reject": data["on_reject"] or {},
        }
        return await _process_form(request, ctx, entity, values, exc.errors, 422)
    return redirect(
        f"/t/{ctx.tenant.slug}/admin/workflow",  # type: ignore[union-attr]
        N_("Saved the approval process for %(entity)s", entity=entity.spec.label),
    )


@post("/t/{tenant:str}/admin/workflow/instances/{instance_id:uuid}/retry", opt=ADMIN, include_in_schema=False)
async def instance_retry(ctx: RequestContext, instance_id: uuid.UUID) -> Redirect:
    instance = await workflow.retry(ctx.db, tenant_id_of(ctx), ctx.actor, entity_lookup(ctx), instance_id)
    level = "warning" if instance.state == "stuck" else "success"
    text = (
        f"Still stuck: {instance.error}"
        if instance.state == "stuck"
        else f"{instance.title}: {instance.state}"
    )
    return redirect(f"/t/{ctx.tenant.slug}/admin/workflow", text, level)  # type: ignore[union-attr]


ROUTES = [
    tasks_page,
    task_page,
    task_decide,
    task_reassign,
    processes_page,
    process_edit,
    process_save,
    instance_retry,
]
