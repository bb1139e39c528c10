"""The message base module on the web: the inbox page (/t/{tenant}/messages) and the JSON API
(/api/v1/messages). Both show only the signed-in user's own messages in the request's tenant."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import get, post
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from app import messages
from app.core.errors import PortalError
from app.core.i18n import N_
from app.web.api import TENANT_HEADER
from app.web.context import RequestContext
from app.web.render import Pager, is_htmx, page

LIST = "messages/_list.html"


def _pager(request: HTMXRequest) -> Pager:
    pager = Pager(request)
    if request.query_params.get("unread") in {"1", "true"}:
        pager.extra["unread"] = "1"
    return pager


def _owner(ctx: RequestContext) -> tuple[uuid.UUID, uuid.UUID]:
    assert ctx.user is not None
    if ctx.tenant is None:
        raise PortalError(N_("Say which tenant with the X-Tenant header (slug or id)"))
    return ctx.tenant.id, ctx.user.id


async def _inbox(request: HTMXRequest, ctx: RequestContext, *, oob_bell: bool = False) -> Template:
    pager = _pager(request)
    tenant_id, user_id = _owner(ctx)
    unread_only = "unread" in pager.extra
    inbox = await messages.list_for(
        ctx.db, tenant_id, user_id, unread_only=unread_only, offset=pager.offset, limit=pager.size
    )
    pager.total = inbox.total
    if (
        pager.page > pager.pages and inbox.total
    ):  # the last page emptied by marking read: show the new last one
        pager.page = pager.pages
        inbox = await messages.list_for(
            ctx.db, tenant_id, user_id, unread_only=unread_only, offset=pager.offset, limit=pager.size
        )
    base = f"/t/{ctx.tenant.slug}/messages"  # type: ignore[union-attr]
    return await page(
        request,
        ctx,
        "messages/inbox.html",
        fragment=LIST,
        rows=inbox.rows,
        p=pager,
        unread_only=unread_only,
        unread_messages=inbox.unread,
        inbox_base=base,
        oob=oob_bell,
        state_url=pager.url(base),
    )


def _back(request: HTMXRequest, ctx: RequestContext) -> Redirect:
    return Redirect(_pager(request).url(f"/t/{ctx.tenant.slug}/messages"), status_code=303)  # type: ignore[union-attr]


@get("/t/{tenant:str}/messages", opt={"auth": True}, include_in_schema=False)
async def inbox_page(request: HTMXRequest, ctx: RequestContext) -> Template:
    return await _inbox(request, ctx)


@post(
    "/t/{tenant:str}/messages/{message_id:uuid}/read",
    opt={"auth": True},
    include_in_schema=False,
    status_code=200,
)
async def inbox_mark_read(
    request: HTMXRequest, ctx: RequestContext, message_id: uuid.UUID
) -> Template | Redirect:
    await messages.mark_read(ctx.db, *_owner(ctx), message_id)
    return await _inbox(request, ctx, oob_bell=True) if is_htmx(request) else _back(request, ctx)


@post("/t/{tenant:str}/messages/read-all", opt={"auth": True}, include_in_schema=False, status_code=200)
async def inbox_mark_all_read(request: HTMXRequest, ctx: RequestContext) -> Template | Redirect:
    await messages.mark_all_read(ctx.db, *_owner(ctx))
    return await _inbox(request, ctx, oob_bell=True) if is_htmx(request) else _back(request, ctx)


@post("/t/{tenant:str}/messages/{message_id:uuid}/open", opt={"auth": True}, include_in_schema=False)
async def inbox_open(request: HTMXRequest, ctx: RequestContext, message_id: uuid.UUID) -> Redirect:
    """Following a message's link marks it read (a POST with CSRF, then a redirect to the link)."""
    row = await messages.mark_read(ctx.db, *_owner(ctx), message_id)
    target = messages.check_link(row.link)  # stored links were checked; checked again before redirecting
    return Redirect(target, status_code=303) if target else _back(request, ctx)


# --- JSON API -----------------------------------------------------------------------------------


@get(
    "/api/v1/messages",
    opt={"auth": True},
    tags=["messages"],
    summary="Your messages in the tenant: unread first; ?unread=1 for unread only, ?page, ?size",
)
async def api_messages(
    request: HTMXRequest, ctx: RequestContext, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    pager = _pager(request)
    tenant_id, user_id = _owner(ctx)
    inbox = await messages.list_for(
        ctx.db, tenant_id, user_id, unread_only="unread" in pager.extra, offset=pager.offset, limit=pager.size
    )
    return {
        "items": [messages.message_json(m) for m in inbox.rows],
        "total": inbox.total,
        "unread": inbox.unread,
        "page": pager.page,
        "size": pager.size,
    }


@post(
    "/api/v1/messages/{message_id:uuid}/read",
    opt={"auth": True},
    tags=["messages"],
    status_code=200,
    summary="Mark one of your messages read",
)
async def api_mark_read(
    ctx: RequestContext, message_id: uuid.UUID, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    return messages.message_json(await messages.mark_read(ctx.db, *_owner(ctx), message_id))


@post(
    "/api/v1/messages/read-all",
    opt={"auth": True},
    tags=["messages"],
    status_code=200,
    summary="Mark all your messages in the tenant read",
)
async def api_mark_all_read(ctx: RequestContext, x_tenant: str | None = TENANT_HEADER) -> dict[str, Any]:
    return {"marked": await messages.mark_all_read(ctx.db, *_owner(ctx)), "unread": 0}


ROUTES = [
    inbox_page,
    inbox_mark_read,
    inbox_mark_all_read,
    inbox_open,
    api_messages,
    api_mark_read,
    api_mark_all_read,
]
