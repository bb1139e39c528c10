"""Administration pages that answer questions: the audit log (the explain page: app.web.explain_pages)."""

from __future__ import annotations

import datetime as dt

from litestar import get
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template
from sqlalchemy import func, select

from app.core.models import AuditEntry, Tenant
from app.core.tenancy import tenant_is
from app.identity import directory
from app.web.context import TenantContext
from app.web.forms import T
from app.web.readable import Readable, Reader
from app.web.render import Pager, page

# --- audit ---------------------------------------------------------------------------------------


def _date(value: str | None) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC) if value else None
    except ValueError:
        return None


async def query_audit(
    ctx: TenantContext, p: Pager, action: str, actor: str, since: str, until: str
) -> list[tuple[AuditEntry, str | None]]:
    stmt = select(AuditEntry, Tenant.slug).outerjoin(Tenant, Tenant.id == AuditEntry.tenant_id)
    if ctx.tenant_id != directory.SYSTEM_UUID:
        stmt = stmt.where(tenant_is(AuditEntry, ctx.tenant_id))
    if action:
        stmt = stmt.where(AuditEntry.action.like(f"{action}%"))
    if actor:
        stmt = stmt.where(AuditEntry.actor_email.like(f"%{actor.lower()}%"))
    if p.q:
        stmt = stmt.where(AuditEntry.summary.like(f"%{p.q}%"))
    if (start := _date(since)) is not None:
        stmt = stmt.where(AuditEntry.created_at >= start)
    if (end := _date(until)) is not None:
        stmt = stmt.where(AuditEntry.created_at < end + dt.timedelta(days=1))
    p.total = (
        await ctx.db.scalar(
            select(func.count()).select_from(stmt.with_only_columns(AuditEntry.id).subquery())
        )
        or 0
    )
    rows = await ctx.db.execute(stmt.order_by(AuditEntry.created_at.desc()).offset(p.offset).limit(p.size))
    return [(a, s) for a, s in rows.all()]


@get(T("/admin/audit"), opt={"permission": "db.audit_log.select"}, include_in_schema=False)
async def audit_list(
    request: HTMXRequest,
    ctx: TenantContext,
    action: str = "",
    actor: str = "",
    since: str = "",
    until: str = "",
) -> Template:
    p = Pager(request)
    p.extra = {"action": action[:100], "actor": actor[:254], "since": since[:10], "until": until[:10]}
    rows = await query_audit(ctx, p, **p.extra)
    return await page(
        request,
        ctx,
        "admin/audit.html",
        fragment="admin/_audit_rows.html",
        p=p,
        rows=await readable_audit(ctx, rows),
        filters=p.extra,
    )


async def readable_audit(
    ctx: TenantContext, rows: list[tuple[AuditEntry, str | None]]
) -> list[tuple[AuditEntry, str | None, Readable]]:
    """Each entry with who did it (a name), the record (its entity's label, display value, link) and the
    changed fields as labels and values people read (a few batched queries for the whole page)."""
    reader = await Reader.for_request(ctx)
    items = []
    for a, _ in rows:
        reader.want_user(a.actor_id, a.actor_email)
        items.append(reader.want_record(reader.entity(a.target_type), a.target_id, a.before, a.after))
    await reader.resolve()
    return [
        (a, slug, reader.readable(reader.user(a.actor_id, a.actor_email), a.action, item))
        for (a, slug), item in zip(rows, items, strict=True)
    ]


ROUTES = [audit_list]
