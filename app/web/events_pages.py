"""The event log: events with their delivery results per subscriber, as a page and in the JSON API.

Tenant admins see their tenant's events; in the system tenant, platform admins see every event
(platform-wide ones, with no tenant, included).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import sqlalchemy as sa
from litestar import get
from litestar.params import Parameter
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template

from app.core.errors import NotFound, ValidationFailed
from app.core.i18n import N_
from app.core.models import EventDelivery, EventRecord, Tenant
from app.events import pattern_problem
from app.identity import directory
from app.records.values import to_json
from app.web.api import TENANT_HEADER
from app.web.context import RequestContext
from app.web.readable import Readable, Reader
from app.web.render import Pager, page

PERMISSION = "db.event_log.select"
# A date or date-time the filters take (years from 1000, days to the 28th: always real dates).
DATE_OR_TIME = r"^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])(T([01][0-9]|2[0-3]):[0-5][0-9])?$"
STATUSES = ("pending", "running", "delivered", "failed", "dropped", "none")
STATUS_LABELS = {  # shown in the reader's language
    "pending": N_("pending"),
    "running": N_("running"),
    "delivered": N_("delivered"),
    "failed": N_("failed"),
    "dropped": N_("dropped"),
    "none": N_("no subscribers"),
}


@dataclass
class EventRow:
    event: EventRecord
    tenant_slug: str | None
    deliveries: list[EventDelivery] = field(default_factory=list)
    readable: Readable | None = None  # on the page only: who did what to which record, in words

    @property
    def payload_text(self) -> str:
        """Readable JSON; the template escapes it like any other text."""
        return json.dumps(self.event.payload, indent=2, ensure_ascii=False, sort_keys=True)

    @property
    def payload_summary(self) -> str:
        flat = json.dumps(self.event.payload, ensure_ascii=False)
        return flat if len(flat) <= 60 else flat[:59] + "…"

    def json(self) -> dict[str, Any]:
        e = self.event
        return {
            "id": str(e.id),
            "type": e.type,
            "source": e.source,
            "tenant_id": str(e.tenant_id) if e.tenant_id else None,
            "tenant": self.tenant_slug,
            "actor": e.actor,
            "status": e.status,
            "depth": e.depth,
            "attempts": e.attempts,
            "at": to_json(e.created_at),
            "finished_at": to_json(e.finished_at),
            "payload": e.payload,
            "deliveries": [
                {
                    "plugin": d.plugin_id,
                    "handler": d.handler,
                    "status": d.status,
                    "message": d.message or None,
                    "duration_ms": d.duration_ms,
                    "worker": d.worker,
                    "at": to_json(d.created_at),
                }
                for d in self.deliveries
            ],
        }


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _bound(value: str, name: str, *, end: bool) -> dt.datetime | None:
    """A date (the whole day) or an ISO date-time, read as UTC."""
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValidationFailed(
            {
                name: N_(
                    "%(value)s is not a date (YYYY-MM-DD) or date-time (YYYY-MM-DDTHH:MM)", value=repr(value)
                )
            }
        ) from exc
    moment = moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
    return moment + dt.timedelta(days=1) if end and len(value) <= 10 else moment


@dataclass
class EventFilters:
    type: str = ""  # a prefix ("user." / "inventory.item") or a pattern with * segments ("*.*.created")
    source: str = ""
    status: str = ""
    since: str = ""
    until: str = ""

    @classmethod
    def read(cls, type: str, source: str, status: str, since: str, until: str) -> EventFilters:
        return cls(
            type.strip()[:200],
            source.strip()[:64],
            status.strip()[:20],
            since.strip()[:32],
            until.strip()[:32],
        )

    def as_dict(self) -> dict[str, str]:
        return {
            "type": self.type,
            "source": self.source,
            "status": self.status,
            "since": self.since,
            "until": self.until,
        }

    def apply(self, stmt: sa.Select[Any]) -> sa.Select[Any]:
        errors: dict[str, str] = {}
        t = EventRecord.type
        if "*" in self.type:
            problem = pattern_problem(self.type)
            if problem:
                errors["type"] = problem
            else:
                # `*` is one whole segment: LIKE with % per segment, and exactly as many dots.
                like = ".".join("%" if part == "*" else _like(part) for part in self.type.split("."))
                dots = sa.func.length(t) - sa.func.length(sa.func.replace(t, ".", ""))
                stmt = stmt.where(t.like(like, escape="\\"), dots == self.type.count("."))
        elif self.type:
            stmt = stmt.where(t.like(_like(self.type) + "%", escape="\\"))
        if self.source:
            stmt = stmt.where(EventRecord.source == self.source)
        if self.status:
            if self.status not in STATUSES:
                errors["status"] = N_("Choose one of: %(languages)s.", languages=", ".join(STATUSES))
            stmt = stmt.where(EventRecord.status == self.status)
        for name, end in (("since", False), ("until", True)):
            try:
                moment = _bound(getattr(self, name), name, end=end)
            except ValidationFailed as exc:
                errors.update(exc.errors)
                continue
            if moment is not None:
                stmt = stmt.where(
                    EventRecord.created_at < moment if end else EventRecord.created_at >= moment
                )
        if errors:
            raise ValidationFailed(errors)
        return stmt


async def query_events(ctx: RequestContext, p: Pager, filters: EventFilters) -> list[EventRow]:
    stmt = sa.select(EventRecord, Tenant.slug).outerjoin(Tenant, Tenant.id == EventRecord.tenant_id)
    if ctx.tenant_id != directory.SYSTEM_UUID:
        stmt = stmt.where(EventRecord.tenant_id == ctx.tenant_id)
    if p.q:
        stmt = stmt.where(EventRecord.actor.like(f"%{_like(p.q.lower())}%", escape="\\"))
    stmt = filters.apply(stmt)
    p.total = (
        await ctx.db.scalar(
            sa.select(sa.func.count()).select_from(stmt.with_only_columns(EventRecord.id).subquery())
        )
        or 0
    )
    found = (
        await ctx.db.execute(
            stmt.order_by(EventRecord.created_at.desc(), EventRecord.id).offset(p.offset).limit(p.size)
        )
    ).all()
    rows = {e.id: EventRow(e, slug) for e, slug in found}
    if rows:
        for d in (
            await ctx.db.scalars(
                sa.select(EventDelivery)
                .where(EventDelivery.event_id.in_(list(rows)))
                .order_by(EventDelivery.created_at)
            )
        ).all():
            rows[d.event_id].deliveries.append(d)
    return list(rows.values())


async def read_events(ctx: RequestContext, rows: list[EventRow]) -> None:
    """A readable summary per event (names, entity labels, display values; batched for the page)."""
    reader = await Reader.for_request(ctx)
    items = []
    for row in rows:
        e, payload = row.event, row.event.payload if isinstance(row.event.payload, dict) else {}
        reader.want_user(payload.get("actor_id"), e.actor)
        entity = reader.entity(e.type) if e.type.count(".") == 2 else None
        items.append(reader.want_record(entity, payload.get("id")) if entity is not None else None)
    await reader.resolve()
    for row, item in zip(rows, items, strict=True):
        payload = row.event.payload if isinstance(row.event.payload, dict) else {}
        who = reader.user(payload.get("actor_id"), row.event.actor)
        if item is not None:
            row.readable = reader.readable(who, row.event.type, item)
        else:
            row.readable = Readable(who=who)


async def _sources(ctx: RequestContext) -> list[str]:
    stmt = sa.select(EventRecord.source).distinct().order_by(EventRecord.source)
    if ctx.tenant_id != directory.SYSTEM_UUID:
        stmt = stmt.where(EventRecord.tenant_id == ctx.tenant_id)
    return list((await ctx.db.scalars(stmt)).all())


@get("/t/{tenant:str}/admin/events", opt={"permission": PERMISSION}, include_in_schema=False)
async def events_page(
    request: HTMXRequest,
    ctx: RequestContext,
    type: str = "",
    source: str = "",
    status: str = "",
    since: str = "",
    until: str = "",
) -> Template:
    p = Pager(request)
    filters = EventFilters.read(type, source, status, since, until)
    p.extra = filters.as_dict()
    errors: dict[str, str] = {}
    try:
        rows = await query_events(ctx, p, filters)
    except ValidationFailed as exc:
        rows, errors = [], exc.errors
    await read_events(ctx, rows)
    return await page(
        request,
        ctx,
        "admin/events.html",
        fragment="admin/_event_rows.html",
        status_code=422 if errors else 200,
        p=p,
        rows=rows,
        filters=filters.as_dict(),
        errors=errors,
        statuses=STATUSES,
        status_labels=STATUS_LABELS,
        sources=await _sources(ctx),
        all_tenants=ctx.tenant_id == directory.SYSTEM_UUID,
    )


@get(
    "/api/v1/events",
    opt={"permission": PERMISSION},
    tags=["events"],
    summary="The event log with delivery results per subscriber",
)
async def events_api(
    request: HTMXRequest,
    ctx: RequestContext,
    type: str = "",
    source: str = "",
    status: Literal["", "pending", "running", "delivered", "failed", "dropped", "none"] = "",
    since: str | None = Parameter(default=None, pattern=DATE_OR_TIME, description="YYYY-MM-DD[THH:MM]"),
    until: str | None = Parameter(default=None, pattern=DATE_OR_TIME, description="YYYY-MM-DD[THH:MM]"),
    x_tenant: str | None = TENANT_HEADER,
) -> dict[str, Any]:
    p = Pager(request)
    rows = await query_events(ctx, p, EventFilters.read(type, source, status, since or "", until or ""))
    return {"items": [r.json() for r in rows], "total": p.total, "page": p.page, "size": p.size}


@get(
    "/api/v1/events/{event_id:uuid}",
    opt={"permission": PERMISSION},
    tags=["events"],
    summary="One event and its deliveries",
)
async def event_api(
    ctx: RequestContext, event_id: uuid.UUID, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    stmt = (
        sa.select(EventRecord, Tenant.slug)
        .outerjoin(Tenant, Tenant.id == EventRecord.tenant_id)
        .where(EventRecord.id == event_id)
    )
    if ctx.tenant_id != directory.SYSTEM_UUID:
        stmt = stmt.where(EventRecord.tenant_id == ctx.tenant_id)
    found = (await ctx.db.execute(stmt)).first()
    if found is None:
        raise NotFound(N_("No such event in this tenant"))
    row = EventRow(found[0], found[1])
    row.deliveries = list(
        (
            await ctx.db.scalars(
                sa.select(EventDelivery)
                .where(EventDelivery.event_id == event_id)
                .order_by(EventDelivery.created_at)
            )
        ).all()
    )
    return row.json()


ROUTES = [events_page, events_api, event_api]
