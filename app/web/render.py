"""Rendering helpers: one URL serves the full page or, for HTMX, just the fragment."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import quote, unquote, urlencode

import sqlalchemy as sa
from litestar import Request
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from app import messages, workflow
from app.core.i18n import LANGUAGE_NAMES, Msg
from app.manifest.labels import Label
from app.web import i18n
from app.web.context import RequestContext
from app.web.menu import build_menu, plugin_menu

PAGE_SIZES = (10, 25, 50, 100)
FLASH_MSG = "\x1e"  # starts a flash cookie that holds a Msg (msgid and parameters) rather than text


def template_globals(engine: JinjaTemplateEngine, *, reload: bool = True) -> None:
    """Names every template (and every imported macro) sees: the page sizes `Pager` accepts, the
    languages of the header's switch; and the translation callables and locale filters (app.web.i18n).
    `reload`: check the template files for changes on every use (PORTAL_DEBUG); otherwise a template
    is read once per worker (the files ship with the app), sparing a stat() per template per page."""
    engine.engine.auto_reload = reload
    engine.engine.globals["page_sizes"] = PAGE_SIZES
    engine.engine.globals["language_names"] = LANGUAGE_NAMES
    i18n.install(engine.engine)


def is_htmx(request: HTMXRequest) -> bool:
    """An HTMX request for a region (a boosted link or form navigates: it wants whole pages)."""
    return bool(request.htmx) and not request.htmx.boosted


def wants_fragment(request: HTMXRequest) -> bool:
    """Whether `page(..., fragment=...)` answers with the fragment: an HTMX request for a region, but not
    a history restore (htmx asks for the whole page when its snapshot is gone)."""
    return is_htmx(request) and not request.htmx.history_restore_request


async def _badges(ctx: RequestContext, context: dict[str, Any]) -> dict[str, int]:
    """The header's unread-message bell and approval-task badge, in one statement per full page
    (fragments skip them); counts a handler already has are not asked again."""
    assert ctx.user is not None and ctx.tenant is not None
    wanted = tuple(name for name in _BADGES if name not in context)
    if not wanted:
        return {}
    row = (
        await ctx.db.execute(_badge_statement(wanted), {"tenant_id": ctx.tenant.id, "user_id": ctx.user.id})
    ).one()
    return {name: int(value or 0) for name, value in row._mapping.items()}


_BADGES: dict[str, Any] = {
    "unread_messages": messages.unread_count_query,
    "open_tasks": workflow.open_task_count_query,
}


@functools.lru_cache(maxsize=8)
def _badge_statement(wanted: tuple[str, ...]) -> sa.Select[Any]:
    """The badges' counts as one statement per combination, run with parameters (no per-request
    construction); the parameters take their types from the columns they meet."""
    ids: tuple[sa.BindParameter[Any], ...] = (sa.bindparam("tenant_id"), sa.bindparam("user_id"))
    return sa.select(*(_BADGES[n](*ids).scalar_subquery().label(n) for n in wanted))


async def page(
    request: HTMXRequest,
    ctx: RequestContext,
    template: str,
    *,
    fragment: str | None = None,
    status_code: int = 200,
    **data: Any,
) -> Template:
    """Render `template`; an HTMX request targeting a region gets `fragment` (included by the page)."""
    partial = bool(fragment) and wants_fragment(request)
    context: dict[str, Any] = {
        "ctx": ctx,
        "can": ctx.can,
        "can_any": ctx.can_any,
        "can_all": ctx.can_all,
        "base": f"/t/{ctx.tenant.slug}" if ctx.tenant else "",
        "path": request.url.path,
        **data,
    }
    if not partial:
        context["menu"] = build_menu(ctx, await plugin_menu(ctx))
        context["switcher"] = await ctx.memberships() if ctx.user else []
        context["flash"] = take_flash(request)
        if ctx.user is not None and ctx.tenant is not None:
            context.update(await _badges(ctx, context))
    headers = {"Cache-Control": "no-store"} if ctx.user else {}
    if fragment:
        headers["Vary"] = "HX-Request"  # one URL, two representations: caches must keep them apart
    response = Template(
        template_name=fragment if partial else template,
        context=context,
        status_code=status_code,
        headers=headers,
    )
    if not partial and context["flash"]:
        response.delete_cookie("portal_flash")
        if "portal_undo" in request.cookies:
            response.delete_cookie("portal_undo")
    return response


class Undo(NamedTuple):
    """A flash message's Undo button: a POST of `fields` to `action` (a path of this site)."""

    action: str
    fields: dict[str, str]


class Flash(NamedTuple):
    level: str
    message: str
    undo: Undo | None = None


def redirect(
    path: str, message: str | None = None, level: str = "success", undo: Undo | None = None
) -> Redirect:
    """303 redirect after a POST, carrying a one-shot flash message (and its Undo button) in cookies."""
    response = Redirect(path, status_code=303)
    if message:
        text = message[:200]
        if isinstance(message, Msg):  # kept as msgid and parameters: shown in the reader's language
            packed = json.dumps([message.msgid, _pack(message.params)], default=str, ensure_ascii=False)
            text = FLASH_MSG + packed if len(packed) < 1500 else text
        # Percent-encoded: cookie values must be ASCII, messages may carry any user-typed name.
        response.set_cookie(
            "portal_flash", quote(f"{level}|{text}", safe=""), max_age=30, httponly=True, samesite="lax"
        )
        if undo is not None:
            # Tied to its message: a stale Undo cookie never attaches itself to a later flash.
            value = json.dumps({"action": undo.action, "fields": undo.fields, "message": message[:200]})
            response.set_cookie(
                "portal_undo", quote(value, safe=""), max_age=30, httponly=True, samesite="lax"
            )
    return response


def _undo(raw: str, message: str) -> Undo | None:
    try:
        data = json.loads(unquote(raw))
        action, fields = data["action"], data["fields"]
    except (ValueError, KeyError, TypeError):
        return None
    if data.get("message") != message:
        return None
    # Only a path of this site, and plain string fields (the form posts them back as hidden inputs).
    if not isinstance(action, str) or not action.startswith("/") or action.startswith("//"):
        return None
    if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
        return None
    return Undo(action, {str(k): v for k, v in fields.items()})


def take_flash(request: Request) -> Flash | None:
    found = decode_flash(request.cookies.get("portal_flash"))
    if found is None:
        return None
    level, message = found
    return Flash(level, message, _undo(request.cookies.get("portal_undo") or "", str(message)[:200]))


def _pack(params: dict[str, Any]) -> dict[str, Any]:
    """A flash Msg's parameters for its cookie: nested messages and manifest labels stay translatable
    (json would keep only their English text)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Msg):
            value = {"msg": [value.msgid, _pack(value.params)]}
        elif isinstance(value, Label):
            value = {"label": value.by_language}
        out[key] = value
    return out


def _unpack(params: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict) and depth < 4:  # a cookie is user input: bounded, and only these shapes
            if isinstance(value.get("msg"), list) and len(value["msg"]) == 2:
                value = Msg(str(value["msg"][0]), _unpack(dict(value["msg"][1]), depth + 1))
            elif isinstance(value.get("label"), dict):
                value = Label({str(k): str(v) for k, v in value["label"].items()})
            else:
                value = ""
        out[str(key)] = value
    return out


def decode_flash(cookie: str | None) -> tuple[str, str] | None:
    """The (level, message) a flash cookie holds; a Msg when it was one (its str is the English text)."""
    raw = unquote(cookie or "")
    if not raw or "|" not in raw:
        return None
    level, _, message = raw.partition("|")
    shown: str = message
    if message.startswith(FLASH_MSG):
        try:
            msgid, params = json.loads(message[len(FLASH_MSG) :])
            shown = Msg(str(msgid), _unpack(dict(params)))
        except (ValueError, TypeError):
            shown = ""
    return (level if level in {"success", "info", "warning", "error"} else "info"), shown


class Pager:
    """Paging state read from the query string and written back into links."""

    def __init__(
        self, request: Request, total_hint: int | None = None, params: Mapping[str, str] | None = None
    ) -> None:
        q = request.query_params if params is None else params  # `params`: a saved view's instead
        self.q = (q.get("q") or "").strip()[:200]
        try:
            self.size = int(q.get("size") or 25)
        except ValueError:
            self.size = 25
        if self.size not in PAGE_SIZES:
            self.size = 25
        try:
            self.page = max(1, min(int(q.get("page") or 1), 100_000))
        except ValueError:
            self.page = 1
        self.total = total_hint or 0
        self.extra: dict[str, str] = {}

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    def url(self, base: str, **changes: Any) -> str:
        params: dict[str, Any] = {"q": self.q, "page": self.page, "size": self.size, **self.extra, **changes}
        params = {k: v for k, v in params.items() if v not in ("", None) and not (k == "page" and v == 1)}
        return base + ("?" + urlencode(params) if params else "")
