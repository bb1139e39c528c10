"""A record's page: its fields (references as links), metadata, approvals and audit history."""

from __future__ import annotations

from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template
from sqlalchemy import select

from app import workflow
from app.core.i18n import N_
from app.core.models import AuditEntry
from app.records.values import display
from app.web.context import RequestContext
from app.web.readable import CHANGED, CREATED, DELETED, RESTORED, Reader
from app.web.records.display import reference_labels, title, value_text
from app.web.records.files import file_links
from app.web.records.related import related_lists
from app.web.records.target import Target, common, record_link_base
from app.web.render import page

HISTORY_LIMIT = 100
# The history's "What" in the reader's language; the stored summary (English) for other actions.
ACTIONS = {
    "record.create": CREATED,
    "record.update": CHANGED,
    "record.delete": DELETED,
    "record.restore": RESTORED,
}


async def detail(request: HTMXRequest, ctx: RequestContext, target: Target, record_id: str) -> Template:
    svc = ctx.records()
    ref = target.ref
    row = await svc.get(ref, record_id)
    labels = await reference_labels(svc, target, ref.spec.fields, [row])
    fields = []
    for fspec in ref.spec.fields:
        value = row.get(fspec.name)
        href = None
        if fspec.type == "reference" and value is not None:
            base = record_link_base(ctx, target, fspec.entity)
            href = f"{base}/{value}" if base else None
        text = value_text(fspec, value, labels.get(fspec.name))
        fields.append((fspec, text, href, fspec.type in {"json", "text"}))
    history = (
        await ctx.db.scalars(
            select(AuditEntry)
            .where(
                AuditEntry.tenant_id == ctx.tenant_id,
                AuditEntry.target_type == f"{ref.plugin_id}.{ref.name}",
                AuditEntry.target_id == str(row["id"]),
            )
            .order_by(AuditEntry.created_at.desc())
            .limit(HISTORY_LIMIT)
        )
    ).all()
    reader = Reader(ctx, target.plugins)
    items = []
    for a in history:
        reader.want_user(a.actor_id, a.actor_email)
        items.append(reader.want_record(ref, None, a.before, a.after))
    await reader.resolve()
    history_rows = [
        (
            a,
            reader.user(a.actor_id, a.actor_email),
            reader.changes(item) if a.action != "record.create" else [],
            ACTIONS.get(a.action, a.summary),
        )
        for a, item in zip(history, items, strict=True)
    ]
    meta = [
        (N_("Created"), display(None, row.get("created_at"))),
        (N_("Last changed"), display(None, row.get("updated_at"))),
        (N_("Version"), str(row.get("version"))),
        (N_("Id"), str(row["id"])),
    ]
    approvals = await workflow.instances_for_record(
        ctx.db, ctx.tenant_id, ref.plugin_id, ref.name, str(row["id"])
    )
    process = await workflow.process_for(ctx.db, ctx.tenant_id, ref.plugin_id, ref.name)
    busy = any(i.state in workflow.ACTIVE_STATES for i, _ in approvals)
    can_submit = process is not None and not busy and ctx.can(ref.permission("update"))
    return await page(
        request,
        ctx,
        "records/detail.html",
        **common(ctx, target),
        row=row,
        fields=fields,
        meta=meta,
        history=history_rows,
        title=title(ref, row, labels),
        approvals=approvals,
        can_submit=can_submit,
        related=await related_lists(ctx, target, row["id"]),
        files={
            f.name: file_links(target.url, row["id"], f, row.get(f.name))
            for f in ref.spec.fields
            if f.is_file
        },
    )
