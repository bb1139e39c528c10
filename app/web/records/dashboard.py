"""Dashboards without page code (a count card per entity of the plugin) and custom pages (rendered by
the plugin's WebAssembly through app.web.guest_pages)."""

from __future__ import annotations

from typing import Any

from litestar import Response
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template

from app.records.query import ListQuery
from app.web import guest_pages
from app.web.context import RequestContext
from app.web.records.listing import count_text
from app.web.records.target import Target, common, page_url_for
from app.web.render import page


async def dashboard(request: HTMXRequest, ctx: RequestContext, target: Target) -> Template:
    svc = ctx.records()
    cards = []
    for ref in target.plugin.entities.values():
        if not ctx.can(ref.permission("select")):
            continue
        result = await svc.list(ref, ListQuery(size=1))
        cards.append(
            {
                "label": ref.spec.label,
                "name": ref.name,
                "total_text": count_text(result.total, result.capped),
                "url": page_url_for(ctx, [target.plugin], ref.name),
            }
        )
    return await page(request, ctx, "records/dashboard.html", **common(ctx, target), cards=cards)


async def custom(request: HTMXRequest, ctx: RequestContext, target: Target) -> Template:
    return await guest_pages.render_page(
        request, ctx, target.plugin, target.spec, target.url, common(ctx, target)
    )


async def action(request: HTMXRequest, ctx: RequestContext, target: Target, name: str) -> Response[Any]:
    """A form posted by a page the plugin's WebAssembly renders: its handle-action answers."""
    return await guest_pages.post_action(
        request, ctx, target.plugin, target.spec, target.url, name, common(ctx, target)
    )
