"""Error pages for people: inside the normal layout (menu, tenant switcher), in plain words.

The exception handler (app.web.errors) is synchronous, but the layout needs the database (menu, switcher,
badges) and the words need the tenant's plugins (an entity's label). So the handler answers with an
`ErrorPage`, whose ASGI response does that work when it is sent. Anything failing there (a broken
transaction after a database error, a request that never reached the guard) leaves the plain layout:
an error page never fails itself.

A form refused for its CSRF token (it sat open past the token's life, or the cookie was cleared) comes
back as a form with what the person typed and a fresh token, to send again: nothing typed is lost but
passwords, which are never echoed.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from litestar import Request, Response
from litestar.datastructures import UploadFile
from litestar.middleware.csrf import generate_csrf_token
from litestar.response import Template
from litestar.utils.scope.state import ScopeState

from app.core.i18n import N_, Msg
from app.web.context import STATE_KEY, MissingPermission, RequestContext, _attach_tenant, resolve_context
from app.web.i18n import localize
from app.web.security import CSRF_COOKIE, csrf_config

log = logging.getLogger("portal.web")

CSRF_FAILED = "CSRF token verification failed"  # Litestar's CSRFMiddleware says exactly this
_TENANT_PATH = re.compile(r"^/t/([^/]+)(?:/|$)")
_SECRET_NAMES = re.compile(r"pass|secret|token", re.I)

VERBS = {
    "select": N_("You can't see %(what)s in %(tenant)s."),
    "insert": N_("You can't add %(what)s in %(tenant)s."),
    "update": N_("You can't change %(what)s in %(tenant)s."),
    "delete": N_("You can't delete %(what)s in %(tenant)s."),
}
OTHER = N_("You can't use this page in %(tenant)s.")
ASK = N_("Ask an admin of %(tenant)s for access.")


class ErrorPage(Response[Any]):
    """An HTML error page rendered when sent (see the module's docstring)."""

    def __init__(self, request: Request, status: int, data: dict[str, Any], exc: Exception) -> None:
        super().__init__(content=None, status_code=status)
        self.request, self.status, self.data, self.exc = request, status, data, exc

    def to_asgi_response(self, app: Any, request: Request, **kwargs: Any) -> Any:
        page = self

        async def send_page(scope: Any, receive: Any, send: Any) -> None:
            response = await page.build()
            await response.to_asgi_response(None, request, **kwargs)(scope, receive, send)

        return send_page

    async def build(self) -> Response[Any]:
        from app.web.render import page, wants_fragment

        request, data = self.request, dict(self.data)
        csrf_cookie = None
        if str(getattr(self.exc, "detail", "")) == CSRF_FAILED:
            if request.headers.get("hx-request"):
                return await self._refresh_in_place()
            csrf_cookie = await self._resubmit(data)
        ctx = await _context(request)
        response: Response[Any] | None = None
        if ctx is not None and ctx.user is not None:
            if ctx.tenant is not None:
                if self.status == 403 and csrf_cookie is None:
                    data["hint"] = Msg(ASK, {"tenant": ctx.tenant.name})
                if isinstance(self.exc, MissingPermission):
                    data["detail"] = await _in_words(ctx, self.exc.permission)
            try:
                response = await page(
                    request,  # type: ignore[arg-type]
                    ctx,
                    "error.html",
                    fragment="_error.html",
                    status_code=self.status,
                    **data,
                )
            except Exception:  # the layout is a courtesy: the error itself must still be shown
                log.warning("Error page without the layout for %s", request.url.path, exc_info=True)
        if response is None:
            fragment = bool(request.headers.get("hx-request")) and wants_fragment(request)  # type: ignore[arg-type]
            response = Template(
                template_name="_error.html" if fragment else "error.html",
                context={"ctx": ctx, "can": (lambda _p: False), "path": request.url.path, **data},
                status_code=self.status,
                headers={"Cache-Control": "no-store"},
            )
        if csrf_cookie is not None:
            response.set_cookie(**csrf_cookie)
        return response

    async def _refresh_in_place(self) -> Response[Any]:
        """An HTMX request refused for its token: nothing is swapped (the form and what was typed stay
        on the page); the page gets a fresh token and a message through the `portal:csrf-expired` event
        (static/portal.js), and the person sends again."""
        request = self.request
        ctx = await _context(request)
        token, cookie = _fresh_token(request)
        message = localize(ctx, N_("Your page had expired, so nothing was saved. Send it again."))
        event = {"portal:csrf-expired": {"token": token, "message": message}}
        response: Response[Any] = Response(
            content=message,
            status_code=self.status,
            media_type="text/plain",
            headers={"HX-Reswap": "none", "HX-Trigger": json.dumps(event), "Cache-Control": "no-store"},
        )
        response.set_cookie(**cookie)
        return response

    async def _resubmit(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """Put the posted fields and a fresh token into `data`; the cookie to set with it, if new."""
        request = self.request
        try:
            form = await request.form()
        except Exception:
            form = None
        fields: list[tuple[str, str]] = []
        dropped = False
        for name, value in form.multi_items() if form is not None else ():
            if name == "_csrf_token":
                continue
            if isinstance(value, UploadFile) or _SECRET_NAMES.search(name):
                dropped = True
                continue
            fields.append((name, str(value)))
        _token, cookie = _fresh_token(request)
        data.update(
            title=N_("Your form had expired"),
            detail=N_("For your safety nothing was saved. Check what you entered and send it again."),
            resubmit={"action": request.url.path, "query": request.url.query, "fields": fields},
            resubmit_dropped=dropped,
            hint=None,
        )
        return cookie


def _fresh_token(request: Request) -> tuple[str, dict[str, Any]]:
    """A new CSRF token, put where the layout's `csrf_input` / `csrf_token()` read it, and its cookie."""
    config = csrf_config(request.app.state.settings)
    token = generate_csrf_token(secret=config.secret)
    ScopeState.from_scope(request.scope).csrf_token = token
    cookie = {
        "key": CSRF_COOKIE,
        "value": token,
        "path": config.cookie_path,
        "httponly": config.cookie_httponly,
        "samesite": config.cookie_samesite,
        "secure": config.cookie_secure,
    }
    return token, cookie


async def _context(request: Request) -> RequestContext | None:
    """The request's context; resolved here when the request failed before the guard (CSRF, no route)."""
    ctx = request.scope.get("state", {}).get(STATE_KEY)
    if ctx is not None:
        return ctx
    if request.url.path.startswith(("/static/", "/api/")):
        return None
    try:
        if "path_params" not in request.scope or not request.scope["path_params"]:
            found = _TENANT_PATH.match(request.url.path)
            request.scope["path_params"] = {"tenant": found.group(1)} if found else {}
        ctx = await resolve_context(request)
        if ctx.user is not None:
            await _attach_tenant(request, ctx)
        return ctx
    except Exception:  # not a member, no such tenant...: the page shows without a tenant
        found_ctx = request.scope.get("state", {}).get(STATE_KEY)
        if found_ctx is not None:
            found_ctx.tenant = found_ctx.access = None
        return found_ctx


async def _in_words(ctx: RequestContext, permission: str) -> Msg:
    """'You can't see Members in Demo Company.' for db.tenant_users.select; never the code itself."""
    from app.access.matrix import Describer
    from app.plugins import runtime

    assert ctx.tenant is not None
    tenant = ctx.tenant.name
    parts = permission.split(".")
    if len(parts) == 3 and parts[0] == "db" and parts[2] in VERBS:
        try:
            label = Describer(await runtime.enabled_for(ctx.db, ctx.tenant.id)).label(parts[1])
        except Exception:
            label = parts[1].replace("_", " ")
        what = Msg(label, {}) if type(label) is str else label
        return Msg(VERBS[parts[2]], {"what": what, "tenant": tenant})
    return Msg(OTHER, {"tenant": tenant})


__all__ = ["CSRF_FAILED", "ErrorPage"]
