"""The saved views of a list page: save the list's current state under a name (the list's view menu),
and the page's views page (`<page>/views`) to rename, share, delete them and choose one's default.
The rules (who may share, who manages shared views) are app.records.views'; a reader must be able to
see the list itself (`db.<entity>.select`) to do anything here."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qsl

from litestar.datastructures import MultiDict
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from app.access.permissions import VIEWS_ADMIN, VIEWS_SHARE
from app.core.errors import ValidationFailed
from app.core.i18n import N_
from app.web.context import RequestContext
from app.web.records import saved
from app.web.records.listing import list_state
from app.web.records.saved import page_of, view_service, view_url
from app.web.records.target import Target, atomic, common
from app.web.render import page, redirect

MAX_STATE = 4000  # characters of a saved list's query string


def _need_list(ctx: RequestContext, target: Target) -> None:
    ctx.records().require(target.ref, "select")


def _role_ids(form: Any) -> list[str]:
    return [str(v) for v in form.getall("roles", []) if isinstance(v, str)][:100]


async def views_page(
    request: HTMXRequest,
    ctx: RequestContext,
    target: Target,
    *,
    errors: dict[str, dict[str, str]] | None = None,
    given: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Template:
    """The views of this list the reader sees (and, for `ui.views.admin`, every shared one).
    `errors`/`given`: a refused form's messages and input, by view id ("new" for the save form)."""
    _need_list(ctx, target)
    infos = await view_service(ctx).visible(page_of(target), managing=True)
    can_share = ctx.can(VIEWS_SHARE)
    share_roles = await saved.share_roles(ctx) if can_share or ctx.can(VIEWS_ADMIN) else []
    return await page(
        request,
        ctx,
        "records/views.html",
        status_code=status_code,
        **common(ctx, target),
        views=infos,
        can_share=can_share,
        share_roles=share_roles,
        errors=errors or {},
        given=given or {},
    )


async def create(request: HTMXRequest, ctx: RequestContext, target: Target) -> Template | Redirect:
    """Save the list's current state (the `state` query string the rows region keeps up to date)."""
    _need_list(ctx, target)
    form = await request.form()
    name = str(form.get("name") or "")
    role_ids = _role_ids(form)
    state_query = str(form.get("state") or "")[:MAX_STATE]
    params = list_state(target.ref, target.spec, MultiDict(parse_qsl(state_query)))
    make_default = form.get("default") == "1"
    svc = view_service(ctx)
    try:
        async with atomic(ctx):
            view = await svc.create(page_of(target), name, params, role_ids)
            if make_default:
                await svc.set_default(page_of(target), view.id)
    except ValidationFailed as exc:
        given = {"name": name, "roles": role_ids, "state": state_query, "default": make_default}
        return await views_page(
            request, ctx, target, errors={"new": exc.errors}, given={"new": given}, status_code=422
        )
    return redirect(view_url(target, view.id), N_("Saved the view %(name)s", name=view.name))


async def update(
    request: HTMXRequest, ctx: RequestContext, target: Target, view_id: str
) -> Template | Redirect:
    """Rename and (for those who may) re-share a view."""
    _need_list(ctx, target)
    form = await request.form()
    name = str(form.get("name") or "")
    role_ids = _role_ids(form) if form.get("sharing") == "1" else None
    try:
        async with atomic(ctx):
            view = await view_service(ctx).update(page_of(target), view_id, name=name, role_ids=role_ids)
    except ValidationFailed as exc:
        key = str(view_id)
        given = {"name": name, "roles": role_ids}
        return await views_page(
            request, ctx, target, errors={key: exc.errors}, given={key: given}, status_code=422
        )
    return redirect(f"{target.url}/views", N_("Saved the view %(name)s", name=view.name))


async def delete(request: HTMXRequest, ctx: RequestContext, target: Target, view_id: str) -> Redirect:
    _need_list(ctx, target)
    async with atomic(ctx):
        name = await view_service(ctx).delete(page_of(target), view_id)
    return redirect(f"{target.url}/views", N_("Deleted the view %(name)s", name=name))


async def default(request: HTMXRequest, ctx: RequestContext, target: Target, view_id: str) -> Redirect:
    """Make a view the reader's default for this list (`on=0`: no default); back to the list or the
    views page (`back=views`)."""
    _need_list(ctx, target)
    form = await request.form()
    on = form.get("on") != "0"
    async with atomic(ctx):
        info = await view_service(ctx).set_default(page_of(target), uuid.UUID(view_id) if on else None)
    back = f"{target.url}/views" if form.get("back") == "views" else view_url(target, view_id)
    if info is None:
        return redirect(back, N_("The list opens without a saved view now"))
    return redirect(back, N_("The list opens with the view %(name)s now", name=info.name))
