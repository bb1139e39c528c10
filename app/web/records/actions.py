"""Record actions that change state and redirect (post/redirect/get): delete, restore, bulk delete and
submit for approval."""

from __future__ import annotations

from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect

from app.core.errors import Conflict
from app.web.context import RequestContext
from app.web.records.display import title
from app.web.records.target import Target, atomic, need_action
from app.web.render import redirect

MAX_BULK = 500


async def delete(request: HTMXRequest, ctx: RequestContext, target: Target, record_id: str) -> Redirect:
    need_action(ctx, target, "delete")
    async with atomic(ctx):
        row = await ctx.records().delete(target.ref, record_id)
    return redirect(target.url, f"{title(target.ref, row)} deleted")


async def restore(request: HTMXRequest, ctx: RequestContext, target: Target, record_id: str) -> Redirect:
    need_action(ctx, target, "restore")
    try:
        async with atomic(ctx):
            row = await ctx.records().restore(target.ref, record_id)
    except Conflict as exc:  # a live record took its unique value meanwhile
        return redirect(f"{target.url}?deleted=1", exc.detail, "error")
    return redirect(f"{target.url}?deleted=1", f"{title(target.ref, row)} restored")


async def bulk_delete(request: HTMXRequest, ctx: RequestContext, target: Target) -> Redirect:
    need_action(ctx, target, "bulk_delete")
    form = await request.form()
    ids = [str(v) for v in form.getall("ids", []) if isinstance(v, str)][:MAX_BULK]
    if not ids:
        return redirect(target.url, "Nothing was selected", "info")
    async with atomic(ctx):  # all or nothing: one foreign or unknown id refuses the whole action
        count = await ctx.records().bulk_delete(target.ref, dict.fromkeys(ids))
    noun = target.ref.spec.label if count == 1 else f"{target.ref.spec.label} records"
    return redirect(target.url, f"Deleted {count} {noun}")


async def submit(request: HTMXRequest, ctx: RequestContext, target: Target, record_id: str) -> Redirect:
    """Submit for approval (the record page's button): the user must be able to edit the record."""
    from app.web.workflow_api import submit_record

    instance = await submit_record(ctx, target.ref, record_id)
    text = {
        "stuck": f"Submitted, but the approval is stuck: {instance.error}",
        "approved": "Submitted: no step applied, so it is approved",
    }.get(instance.state, "Submitted for approval")
    return redirect(
        f"{target.url}/{instance.record_id}", text, "warning" if instance.state == "stuck" else "success"
    )
