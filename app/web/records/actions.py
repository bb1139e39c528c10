"""Record actions that change state and redirect (post/redirect/get): delete, restore, bulk delete and
its undo, and submit for approval."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect

from app.core.errors import Conflict
from app.core.i18n import N_
from app.records.restore import batch_token, delete_batch, parse_token, restore_batch
from app.web.context import RequestContext
from app.web.records.display import title
from app.web.records.target import Target, allowed, atomic, need_action
from app.web.render import Undo, redirect

MAX_BULK = 500


async def delete(request: HTMXRequest, ctx: RequestContext, target: Target, record_id: str) -> Redirect:
    need_action(ctx, target, "delete")
    async with atomic(ctx):
        row = await ctx.records().delete(target.ref, record_id)
    return redirect(target.url, N_("%(record)s deleted", record=title(target.ref, row)))


async def restore(request: HTMXRequest, ctx: RequestContext, target: Target, record_id: str) -> Redirect:
    need_action(ctx, target, "restore")
    try:
        async with atomic(ctx):
            row = await ctx.records().restore(target.ref, record_id)
    except Conflict as exc:  # a live record took its unique value meanwhile
        return redirect(f"{target.url}?deleted=1", exc.detail, "error")
    return redirect(f"{target.url}?deleted=1", N_("%(record)s restored", record=title(target.ref, row)))


def _back(target: Target, query: object) -> str:
    """The list URL the user came from: this page's path with their query string, re-encoded (never
    another path)."""
    params = parse_qsl(str(query or "")[:2000], keep_blank_values=False)
    return target.url + ("?" + urlencode(params) if params else "")


def _counted(target: Target, count: int, restored: bool) -> str:
    entity = target.ref.spec.label
    if restored:
        if count == 1:
            return N_("Restored %(count)s %(entity)s", count=count, entity=entity)
        return N_("Restored %(count)s %(entity)s records", count=count, entity=entity)
    if count == 1:
        return N_("Deleted %(count)s %(entity)s", count=count, entity=entity)
    return N_("Deleted %(count)s %(entity)s records", count=count, entity=entity)


async def bulk_delete(request: HTMXRequest, ctx: RequestContext, target: Target) -> Redirect:
    """Delete the ticked rows and return to the same list (search, filters, sort, page); the flash
    offers Undo when the user may restore."""
    need_action(ctx, target, "bulk_delete")
    form = await request.form()
    back = _back(target, form.get("back"))
    ids = [str(v) for v in form.getall("ids", []) if isinstance(v, str)][:MAX_BULK]
    if not ids:
        return redirect(back, N_("Nothing was selected"), "info")
    async with atomic(ctx):  # all or nothing: one foreign or unknown id refuses the whole action
        count, at = await delete_batch(ctx.records(), target.ref, dict.fromkeys(ids))
    undo = None
    if allowed(ctx, target)["restore"]:
        undo = Undo(f"{target.url}/bulk-restore", {"batch": batch_token(at), "back": urlsplit(back).query})
    return redirect(back, _counted(target, count, restored=False), undo=undo)


async def bulk_restore(request: HTMXRequest, ctx: RequestContext, target: Target) -> Redirect:
    """Undo of a bulk delete: restore the rows of that batch (see app.records.restore)."""
    need_action(ctx, target, "restore")
    form = await request.form()
    back = _back(target, form.get("back"))
    at = parse_token(str(form.get("batch") or ""))
    if at is None:
        return redirect(back, N_("Nothing to undo"), "info")
    try:
        async with atomic(ctx):  # all or nothing: a unique clash keeps every row of the batch deleted
            count = await restore_batch(ctx.records(), target.ref, at)
    except Conflict as exc:
        return redirect(back, exc.detail, "error")
    return redirect(back, _counted(target, count, restored=True))


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
