"""Which state a list page opens in: its query string, a saved view (`?view=<id>`), or the reader's
default view when the URL has no query at all; and the view menu that list pages show.

A view is a named query of the page (app.records.views); opening one puts its parameters in place of
the query string, so everything the page does with a query (paging links, sorting, export) works on it
unchanged. The filter form never sends `view`: once the reader changes something, the URL holds the
whole state. `?view=all` is the page without any view (the way out of a default view).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from litestar.datastructures import MultiDict
from litestar.plugins.htmx import HTMXRequest

from app.access import roles
from app.access.permissions import VIEWS_SHARE
from app.core.errors import NotFound
from app.core.i18n import N_
from app.records.views import Page, ViewCache, ViewInfo, ViewService
from app.web.context import RequestContext
from app.web.records.target import Target

ALL = "all"  # ?view=all: no view, not even the default one


def page_of(target: Target) -> Page:
    return Page(target.plugin.id, target.spec.path)


def _cache(ctx: RequestContext) -> ViewCache | None:
    return getattr(ctx.services, "view_cache", None)


def view_service(ctx: RequestContext) -> ViewService:
    assert ctx.user is not None and ctx.tenant is not None
    role_id = ctx.access.role_id if ctx.access is not None else None
    # The cache's key: the tenant's counters read with this request (role names come with shares).
    version = (ctx.tenant.views_version, ctx.tenant.policy_version)
    return ViewService(ctx.db, ctx.tenant.id, ctx.actor, role_id, ctx.can, cache=_cache(ctx), version=version)


@dataclass(frozen=True)
class ShareRole:
    """A role as the share form lists it (plain values, kept across requests)."""

    id: Any
    name: str


async def share_roles(ctx: RequestContext) -> list[ShareRole]:
    """The tenant's roles for the share form, per worker under the tenant's policy_version (bumped by
    every change of a role)."""
    assert ctx.tenant is not None
    cache, key, version = _cache(ctx), ("roles", ctx.tenant.id), ctx.tenant.policy_version
    found: list[ShareRole] | None = cache.get(key, version) if cache is not None else None
    if found is None:
        found = [ShareRole(r.id, r.name) for r in await roles.tenant_roles(ctx.db, ctx.tenant.id)]
        if cache is not None:
            cache.put(key, version, found)
    return found


def view_url(target: Target, view_id: Any) -> str:
    return f"{target.url}?{urlencode({'view': str(view_id)})}"


def as_pairs(params: dict[str, str | list[str]]) -> list[tuple[str, str]]:
    return [
        (k, v) for k, values in params.items() for v in (values if isinstance(values, list) else [values])
    ]


@dataclass
class Opened:
    params: MultiDict[Any]
    view: ViewInfo | None = None  # the view the page was opened with
    push_url: str | None = None  # where the address bar should say the rows came from
    notice: str | None = None  # why the view asked for is not shown
    views: ViewService | None = None  # the service that opened it (view_menu reuses what it read)


async def open_list(request: HTMXRequest, ctx: RequestContext, target: Target, fragment: bool) -> Opened:
    raw = request.query_params
    views = view_service(ctx)
    page = page_of(target)
    if "view" in raw:
        wanted = str(raw.get("view") or "")
        rest = [(k, v) for k, v in raw.multi_items() if k != "view"]
        if wanted in ("", ALL):
            return Opened(MultiDict(rest), views=views)
        try:
            info = await views.get(page, wanted)
        except NotFound:
            return Opened(
                MultiDict(rest), notice=N_("That saved view does not exist (any more)."), views=views
            )
        given = {k for k, _ in rest}  # the query's own parameters (a page number) win over the view's
        return Opened(
            MultiDict([*(p for p in as_pairs(info.params) if p[0] not in given), *rest]), info, views=views
        )
    if not raw:
        default = await views.default(page)
        if default is not None:
            if fragment:
                # The reader cleared every filter of the default view: these are all rows, and a reload
                # of the address must show them too, not the default view again.
                return Opened(MultiDict(), push_url=f"{target.url}?view={ALL}", views=views)
            return Opened(MultiDict(as_pairs(default.params)), default, views=views)
    return Opened(raw, views=views)


async def view_menu(
    ctx: RequestContext,
    target: Target,
    state: dict[str, str | list[str]],
    state_of: Callable[[MultiDict[Any]], dict[str, str | list[str]]],
    opened: Opened,
    *,
    full: bool,
) -> dict[str, Any]:
    """The view menu of a list page: the views the reader sees, which one shows the current state (the
    one opened, or any whose settings are the list's now), and for the whole page the save form's roles."""
    infos = await (opened.views or view_service(ctx)).visible(page_of(target))
    current = None
    for info in infos:
        if state_of(MultiDict(as_pairs(info.params))) == state:
            current = info.id
            break
    out: dict[str, Any] = {
        "views": infos,
        "current_view": current,
        "opened_view": opened.view,
        "view_notice": opened.notice,
        "can_share": ctx.can(VIEWS_SHARE),
    }
    if full and out["can_share"]:
        out["share_roles"] = await share_roles(ctx)
    return out
