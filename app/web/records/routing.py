"""The routes of generated plugin pages and the table that sends each sub-path to its handler.

A plugin's pages are runtime data (its manifest's `[[ui.pages]]`, paths of any depth, longest prefix
wins), and Litestar's `{path:path}` parameter can only end a route, so `<page>/new` or `<page>/<id>/edit`
cannot be Litestar routes of their own. Two catch-all routes (GET and POST) resolve the page
(`target.resolve`); `find` then matches what is left of the path against the shapes in `TABLE`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Response, get, post
from litestar.plugins.htmx import HTMXRequest

from app.core.db import transaction_from_here
from app.core.errors import NotFound
from app.core.i18n import N_, phrase
from app.web.context import RequestContext
from app.web.records import (
    actions,
    board,
    csv_import,
    csv_io,
    dashboard,
    detail,
    files,
    forms,
    import_jobs,
    inline,
    listing,
    lookup,
    views,
)
from app.web.records.display import as_uuid
from app.web.records.target import Target, resolve

PREFIX = "/t/{tenant:str}/p/{plugin_id:str}"
RULE = {"auth": True}  # db.<entity>.<op> is checked by the record service
# GET pages start without a transaction (app.core.db.READS_ONLY); handlers outside READS (plugin code,
# anything that may write) get one before they run.
READ_RULE = {**RULE, "reads": True}

Handler = Callable[..., Awaitable[Response[Any]]]
ID, NAME = "{id}", "{name}"  # a record id (a UUID); any one segment

# Page kinds: "crud"; "dashboard" (built-in count cards); "custom" (a placeholder: the plugin has no
# page code); "guest" (a custom or dashboard page the plugin's WebAssembly renders).
TABLE: tuple[tuple[str, str, str, Handler], ...] = (
    ("GET", "crud", "", listing.list_page),
    ("GET", "crud", "new", forms.new),
    ("GET", "crud", "export.csv", csv_io.export),
    ("GET", "crud", "import", csv_import.import_form),
    ("GET", "crud", "import/jobs/{id}", import_jobs.job_page),
    ("GET", "crud", "import/jobs/{id}/refused.csv", import_jobs.refused_rows),
    ("GET", "crud", "lookup", lookup.lookup),
    ("GET", "crud", "views", views.views_page),
    ("GET", "crud", "board", board.board_page),
    ("GET", "crud", "inline/{name}", inline.add_row),
    ("GET", "crud", "{id}", detail.detail),
    ("GET", "crud", "{id}/edit", forms.edit),
    ("GET", "crud", "{id}/files/{id}", files.download),
    ("GET", "crud", "{id}/files/{id}/thumbnail", files.thumbnail),
    ("POST", "crud", "", forms.create),
    ("POST", "crud", "new", forms.create),
    ("POST", "crud", "import", csv_import.import_post),
    ("POST", "crud", "import/jobs/{id}/cancel", import_jobs.cancel),
    ("POST", "crud", "bulk-delete", actions.bulk_delete),
    ("POST", "crud", "bulk-restore", actions.bulk_restore),
    ("POST", "crud", "views", views.create),
    ("POST", "crud", "views/{id}", views.update),
    ("POST", "crud", "views/{id}/delete", views.delete),
    ("POST", "crud", "views/{id}/default", views.default),
    ("POST", "crud", "{id}/move", board.move),
    ("POST", "crud", "{id}", forms.update),
    ("POST", "crud", "{id}/edit", forms.update),
    ("POST", "crud", "{id}/delete", actions.delete),
    ("POST", "crud", "{id}/restore", actions.restore),
    ("POST", "crud", "{id}/submit", actions.submit),
    ("GET", "dashboard", "", dashboard.dashboard),
    ("GET", "custom", "", dashboard.custom),
    ("GET", "guest", "", dashboard.custom),
    ("POST", "guest", "actions/{name}", dashboard.action),
)


# The GET handlers that only read records (through the record service) and settings; and the custom
# page, whose guest call begins the transaction itself at its first write (app.sandbox.host
# CallContext.before_write): a page whose guest only reads sends no BEGIN, SAVEPOINT, RELEASE, COMMIT.
READS: frozenset[Handler] = frozenset(
    {
        listing.list_page,
        detail.detail,
        forms.new,
        forms.edit,
        lookup.lookup,
        views.views_page,
        dashboard.custom,
        import_jobs.job_page,  # the import job's row: read only (the job writes it)
        import_jobs.refused_rows,
    }
)


def _index(
    table: tuple[tuple[str, str, str, Handler], ...],
) -> dict[tuple[str, str], list[tuple[tuple[str, ...], Handler]]]:
    """(method, kind) -> [(segments, handler)], each segment a literal, ID or NAME."""
    out: dict[tuple[str, str], list[tuple[tuple[str, ...], Handler]]] = {}
    for method, page_kind, shape, handler in table:
        out.setdefault((method, page_kind), []).append((tuple(s for s in shape.split("/") if s), handler))
    return out


DISPATCH = _index(TABLE)


def kind(target: Target) -> str:
    if target.spec.type == "crud":
        return "crud"
    return "guest" if target.has_page_code else target.spec.type


def _match(shape: tuple[str, ...], rest: list[str]) -> list[str] | None:
    """The ID and NAME segments of `rest` if it has this shape, else None."""
    if len(shape) != len(rest):
        return None
    params = []
    for want, seg in zip(shape, rest, strict=True):
        if want == NAME or (want == ID and as_uuid(seg) is not None):
            params.append(seg)
        elif want != seg:
            return None
    return params


def find(method: str, target: Target) -> tuple[Handler, list[str]] | None:
    for shape, handler in DISPATCH.get((method, kind(target)), ()):
        params = _match(shape, target.rest)
        if params is not None:
            return handler, params
    return None


@get(PREFIX + "/{path:path}", opt=READ_RULE, include_in_schema=False)
async def plugin_page(request: HTMXRequest, ctx: RequestContext, plugin_id: str, path: str) -> Response[Any]:
    target = await resolve(ctx, plugin_id, path)
    found = find("GET", target)
    if found is None:
        raise NotFound(N_("%(name)s has no page %(rest)s", name=target.spec.name, rest="/".join(target.rest)))
    handler, params = found
    if handler not in READS:
        await transaction_from_here(ctx.db)
    return await handler(request, ctx, target, *params)


@post(
    PREFIX + "/{path:path}",
    opt=RULE,
    include_in_schema=False,
    status_code=200,
    request_max_body_size=files.FORM_MAX_BYTES,  # record forms carry file fields' uploads
)
async def plugin_page_post(
    request: HTMXRequest, ctx: RequestContext, plugin_id: str, path: str
) -> Response[Any]:
    target = await resolve(ctx, plugin_id, path)
    found = find("POST", target)
    if found is None:
        raise NotFound(
            N_(
                "%(name)s accepts no form at %(path)s",
                name=target.spec.name,
                path="/".join(target.rest) or phrase(N_("this address")),
            )
        )
    handler, params = found
    return await handler(request, ctx, target, *params)


ROUTES = [plugin_page, plugin_page_post]
