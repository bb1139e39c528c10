"""A record's page: its fields (references as links), metadata, approvals and audit history."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template
from sqlalchemy import select

from app import workflow
from app.core.models import AuditEntry
from app.manifest import FieldSpec
from app.plugins import runtime
from app.plugins.runtime import EntityRef
from app.records.query import declared
from app.records.service import RecordService
from app.records.values import display
from app.web.context import RequestContext
from app.web.records.display import STANDARD_LABELS, as_uuid, reference_labels, title, value_text
from app.web.records.related import related_lists
from app.web.records.target import Target, common, record_link_base
from app.web.render import page

HISTORY_LIMIT = 100


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
    history_rows = [(a, changes(ref, a)) for a in history]
    await label_history(svc, target, history_rows)
    meta = [
        ("Created", display(None, row.get("created_at"))),
        ("Last changed", display(None, row.get("updated_at"))),
        ("Version", str(row.get("version"))),
        ("Id", str(row["id"])),
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
    )


# --- audit history -------------------------------------------------------------------------------


@dataclass
class Change:
    label: str
    spec: FieldSpec | None
    before: Any
    after: Any
    before_text: str = ""
    after_text: str = ""


def changes(ref: EntityRef, entry: AuditEntry) -> list[Change]:
    """The changed fields of an audit row (values still raw JSON; see label_history)."""
    if entry.action == "record.create":
        return []
    before, after = entry.before or {}, entry.after or {}
    out = []
    for key in [*after, *(k for k in before if k not in after)]:
        if key in {"version", "updated_at", "updated_by"}:
            continue
        spec = declared(ref, key)
        out.append(
            Change(
                spec.label if spec else STANDARD_LABELS.get(key, key), spec, before.get(key), after.get(key)
            )
        )
    return out


async def label_history(
    svc: RecordService, target: Target, history: list[tuple[AuditEntry, list[Change]]]
) -> None:
    """Audit values for people: option labels, Yes/No, names of referenced rows (one query per field)."""
    wanted: dict[str, set[uuid.UUID]] = {}
    specs: dict[str, FieldSpec] = {}
    for _, entry_changes in history:
        for ch in entry_changes:
            if ch.spec is not None and ch.spec.type == "reference":
                specs[ch.spec.name] = ch.spec
                wanted.setdefault(ch.spec.name, set()).update(
                    u for v in (ch.before, ch.after) if isinstance(v, str) and (u := as_uuid(v)) is not None
                )
    labels: dict[str, dict[Any, str]] = {}
    for name, ids in wanted.items():
        ref = runtime.find_entity(target.plugins, specs[name].entity or "")
        labels[name] = await svc.labels(ref, ids) if ref is not None else {}
    for _, entry_changes in history:
        for ch in entry_changes:
            ch.before_text = audit_text(ch.spec, ch.before, labels)
            ch.after_text = audit_text(ch.spec, ch.after, labels)


def audit_text(spec: FieldSpec | None, value: Any, labels: dict[str, dict[Any, str]]) -> str:
    if value is None or value == "":
        return "—"
    if spec is not None:
        if spec.type == "reference" and isinstance(value, str):
            return labels.get(spec.name, {}).get(as_uuid(value), value)
        if spec.type in {"select", "boolean"}:
            return display(spec, value)
        if spec.type == "json":
            return display(spec, value)
    return str(value)[:200]
