"""Custom (and WASM dashboard) pages: the guest's render-page / handle-action output, validated and
rendered with the host's own templates, for the browser and as JSON for API clients."""

from __future__ import annotations

import json
from typing import Any

from litestar import Response, Router, get, post
from litestar.exceptions import PermissionDeniedException
from litestar.params import Parameter
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template

from app.core.db import SQLITE_WRITE_LOCK
from app.core.errors import NotFound
from app.core.i18n import N_
from app.manifest import PageSpec
from app.plugins import runtime
from app.plugins.runtime import LoadedPlugin
from app.sandbox import GuestFailure, Sandbox
from app.sandbox.host import Principal
from app.ui import parse_ui
from app.web.context import RequestContext
from app.web.errors import problem
from app.web.render import is_htmx, page

MAX_PARAMS = 50


def principal(ctx: RequestContext) -> Principal:
    """Guests called from a request act as the signed-in user, with exactly that user's permissions and data scope."""
    user = ctx.user
    assert user is not None and ctx.tenant is not None
    return Principal(
        ctx.actor,
        ctx.can,
        {
            "id": str(user.id),
            "email": user.email,
            "display_name": user.display_name,
            "language": ctx.language,  # what the reader sees: preference, switch or browser
            "tenant_id": str(ctx.tenant.id),
            "tenant_slug": ctx.tenant.slug,
        },
        scope=ctx.data_scope(),
    )


def _sandbox(request: HTMXRequest) -> Sandbox:
    return request.app.state.sandbox


# How long a page or action waits for a component that is still compiling (just installed) before it
# answers "still being compiled".
COMPILE_WAIT_SECONDS = 10.0


async def _ready(request: HTMXRequest, ctx: RequestContext, plugin: LoadedPlugin) -> None:
    """Wait for the plugin's compile, if it is still running, with the request's transaction ended first:
    the guest call itself never waits (Sandbox.call), and waiting inside a transaction — on SQLite a
    write request holds the write lock — would fail every other user's save meanwhile."""
    sandbox = _sandbox(request)
    if sandbox.compile_state(plugin) in {"ready", "none", "failed"}:
        return  # loaded or in the compile cache (the call deserializes it in milliseconds), or hopeless
    conn = await ctx.db.connection()
    locked = bool(
        conn.sync_connection and conn.sync_connection.get_execution_options().get(SQLITE_WRITE_LOCK)
    )
    await ctx.db.commit()  # nothing of the request's own is written before a guest call
    await sandbox.ready(plugin, COMPILE_WAIT_SECONDS)
    if locked:
        await ctx.db.connection(execution_options={SQLITE_WRITE_LOCK: True})


def _params(request: HTMXRequest) -> dict[str, str]:
    items = list(request.query_params.items())[:MAX_PARAMS]
    return {k: v.replace("\x00", "")[:2000] for k, v in items}


async def _form_data(request: HTMXRequest) -> dict[str, Any]:
    form = await request.form()
    out: dict[str, Any] = {}
    for key in list(form.keys())[:MAX_PARAMS]:
        if key == "_csrf_token":
            continue
        values = [v for v in form.getall(key) if isinstance(v, str)]
        out[key] = values[-1] if len(values) == 1 else values
    return out


def _failure_context(ctx: RequestContext, failure: GuestFailure) -> dict[str, Any]:
    return {"failure": failure, "is_admin": ctx.can("plugin:view")}


def _status(failure: GuestFailure) -> int:
    return 200 if failure.kind in {"compiling", "no_wasm"} else 502


async def render_page(
    request: HTMXRequest,
    ctx: RequestContext,
    plugin: LoadedPlugin,
    spec: PageSpec,
    url: str,
    common: dict[str, Any],
) -> Template:
    """GET of a custom page (or a dashboard whose plugin has page code)."""
    data: dict[str, Any] = {**common, "action_url": url + "/actions", "view": None, "failure": None}
    status = 200
    try:
        await _ready(request, ctx, plugin)
        text = await _sandbox(request).call(
            ctx.db,
            plugin,
            ctx.tenant_id,
            principal(ctx),
            "render-page",
            spec.path,
            json.dumps(_params(request)),
            bus=ctx.bus,
        )
        data["view"] = parse_ui(text or "", can=ctx.can)
    except GuestFailure as failure:
        data.update(_failure_context(ctx, failure))
        status = _status(failure)
    return await page(
        request,
        ctx,
        "records/custom.html",
        fragment="records/_custom_region.html",
        status_code=status,
        **data,
    )


async def post_action(
    request: HTMXRequest,
    ctx: RequestContext,
    plugin: LoadedPlugin,
    spec: PageSpec,
    url: str,
    action: str,
    common: dict[str, Any],
) -> Response[Any]:
    """A button or form of a custom page: handle-action's UI replaces the page region."""
    data: dict[str, Any] = {**common, "action_url": url + "/actions", "view": None, "failure": None}
    status = 200
    try:
        await _ready(request, ctx, plugin)
        text = await _sandbox(request).call(
            ctx.db,
            plugin,
            ctx.tenant_id,
            principal(ctx),
            "handle-action",
            spec.path,
            action,
            json.dumps(await _form_data(request)),
            bus=ctx.bus,
        )
        view = parse_ui(text or "", can=ctx.can)
        if view.redirect:
            if is_htmx(request):
                return Response("", status_code=200, headers={"HX-Redirect": view.redirect})
            return Response("", status_code=303, headers={"Location": view.redirect})
        data["view"] = view
    except GuestFailure as failure:
        data.update(_failure_context(ctx, failure))
        status = _status(failure)
    if is_htmx(request):
        return Template(
            template_name="records/_custom_region.html",
            context={
                "ctx": ctx,
                "can": ctx.can,
                "base": f"/t/{ctx.tenant.slug}" if ctx.tenant else "",
                **data,
            },
            status_code=status,
            headers={"Cache-Control": "no-store"},
        )
    return await page(request, ctx, "records/custom.html", status_code=status, **data)


# --- JSON API -------------------------------------------------------------------------------------

TENANT_HEADER = Parameter(
    header="X-Tenant", required=False, description="Tenant slug or id; defaults to your only tenant"
)
RULE = {"auth": True}  # permissions inside the page are the user's own, checked by the host API


async def _page_target(ctx: RequestContext, plugin_id: str, path: str) -> tuple[LoadedPlugin, PageSpec]:
    if ctx.tenant is None:
        raise PermissionDeniedException(detail=N_("Say which tenant with the X-Tenant header (slug or id)"))
    plugin = next((p for p in await runtime.enabled_for(ctx.db, ctx.tenant.id) if p.id == plugin_id), None)
    if plugin is None:
        raise NotFound(N_("Plugin %(plugin_id)s is not enabled in this tenant", plugin_id=repr(plugin_id)))
    wanted = "/" + path.strip("/")
    spec = next(
        (s for s in plugin.manifest.pages if s.path == wanted and s.type in {"custom", "dashboard"}), None
    )
    if spec is None:
        raise NotFound(N_("%(plugin_id)s has no custom page %(wanted)s", plugin_id=plugin_id, wanted=wanted))
    return plugin, spec


def _view_json(text: str | None, ctx: RequestContext) -> dict[str, Any]:
    view = parse_ui(text or "", can=ctx.can)
    return {
        "title": view.title,
        "blocks": view.blocks,
        "redirect": view.redirect,
        "toast": view.toast,
        "problems": [{"path": p.path, "message": p.message} for p in view.problems],
    }


def _failure_problem(failure: GuestFailure) -> Response[Any]:
    status = 503 if failure.kind == "compiling" else 404 if failure.kind == "no_wasm" else 502
    return problem(
        status,
        "Plugin failure",
        failure.message,
        plugin=failure.plugin_id,
        kind=failure.kind,
        disabled=failure.disabled,
    )


@get("/{plugin_id:str}/{path:path}", opt=RULE, summary="Render a custom page: the validated UI instructions")
async def api_render(
    request: HTMXRequest, ctx: RequestContext, plugin_id: str, path: str, x_tenant: str | None = TENANT_HEADER
) -> Response[Any]:
    plugin, spec = await _page_target(ctx, plugin_id, path)
    try:
        await _ready(request, ctx, plugin)
        text = await _sandbox(request).call(
            ctx.db,
            plugin,
            ctx.tenant_id,
            principal(ctx),
            "render-page",
            spec.path,
            json.dumps(_params(request)),
            bus=ctx.bus,
        )
    except GuestFailure as failure:
        return _failure_problem(failure)
    return Response(_view_json(text, ctx))


@post(
    "/{plugin_id:str}/{path:path}",
    opt=RULE,
    status_code=200,
    summary='Run an action of a custom page: body {"action": name, "data": {...}}',
)
async def api_action(
    request: HTMXRequest, ctx: RequestContext, plugin_id: str, path: str, x_tenant: str | None = TENANT_HEADER
) -> Response[Any]:
    plugin, spec = await _page_target(ctx, plugin_id, path)
    try:
        body = await request.json()
    except Exception:
        body = None
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("action"), str)
        or not isinstance(body.get("data", {}), dict)
    ):
        return problem(400, "Bad request", 'Send a JSON object {"action": "<name>", "data": {...}}')
    try:
        await _ready(request, ctx, plugin)
        text = await _sandbox(request).call(
            ctx.db,
            plugin,
            ctx.tenant_id,
            principal(ctx),
            "handle-action",
            spec.path,
            body["action"],
            json.dumps(body.get("data", {})),
            bus=ctx.bus,
        )
    except GuestFailure as failure:
        return _failure_problem(failure)
    return Response(_view_json(text, ctx))


router = Router(path="/api/v1/pages", route_handlers=[api_render, api_action], tags=["pages"])
ROUTES = [router]
