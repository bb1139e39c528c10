"""Extension points on the web: the JSON API for tenant admins (/api/v1/extensions/...), the admin pages
(/t/{tenant}/admin/extensions) and the public auto-login route (/t/{tenant}/auto-login/{config_id})."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from litestar import get, post
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template
from litestar.types import ControllerRouterHandler

from app import audit, extensions
from app.audit import Actor
from app.core.db import SQLITE_WRITE_LOCK
from app.core.errors import Forbidden, NotFound, PortalError, ValidationFailed
from app.core.i18n import N_
from app.core.models import Membership, User
from app.extensions import store
from app.identity import directory, sessions, throttle
from app.identity.directory import SYSTEM_UUID
from app.manifest import EXTENSION_POINTS
from app.plugins import config_values
from app.plugins.config_values import secret_box
from app.web.auth_pages import safe_next
from app.web.config_form import ConfigForm
from app.web.context import RequestContext
from app.web.extensions_api import API_ROUTES, tenant_of
from app.web.plugin_admin import Failure
from app.web.render import page, redirect

ADMIN = {"permission": extensions.ADMIN_PERMISSION}


# --- admin pages -----------------------------------------------------------------------------------------


@dataclass
class Editor:
    """The edit form of one configuration (new: `config_id` empty)."""

    implementation: extensions.Implementation
    config_id: str = ""
    name: str = ""
    version: int | None = None
    enabled: bool = True
    values: dict[str, str] = field(default_factory=dict)  # key -> text shown (never a secret)
    secrets_set: set[str] = field(default_factory=set)
    errors: dict[str, str] = field(default_factory=dict)


def _admin_url(ctx: RequestContext) -> str:
    return f"/t/{ctx.tenant.slug}/admin/extensions"  # type: ignore[union-attr]


async def _admin_page(
    request: HTMXRequest,
    ctx: RequestContext,
    editor: Editor | None = None,
    failure: Failure | None = None,
    status_code: int = 200,
) -> Template:
    tenant_id = tenant_of(ctx)
    impls = await extensions.implementations(ctx.db, tenant_id)
    by_key = {i.key: i for i in impls}
    rows = await store.list_configs(ctx.db, tenant_id)
    if editor is None and failure is None:
        wanted_new, wanted_edit = request.query_params.get("new"), request.query_params.get("edit")
        try:
            if wanted_new:
                impl, _plugin = await extensions.implementation(ctx.db, tenant_id, wanted_new)
                editor = Editor(impl, enabled=impl.point != extensions.AUTH_VERIFIER)
            elif wanted_edit:
                row = await store.get(ctx.db, tenant_id, wanted_edit)
                impl, _plugin = await extensions.implementation(
                    ctx.db, tenant_id, f"{row.plugin_id or 'base'}:{row.implementation}"
                )
                editor = Editor(
                    impl,
                    str(row.id),
                    row.name,
                    row.version,
                    row.is_enabled,
                    {k: config_values.display(None, v) for k, v in (row.plain_values or {}).items()},
                    set(row.secret_values or {}),
                )
        except NotFound as exc:
            failure, status_code = Failure(404, N_("Not found"), exc.detail, [], []), 404
    points = [
        (
            p,
            extensions.POINT_LABELS[p],
            extensions.POINT_HELP[p],
            [i for i in impls if i.point == p],
            [(r, by_key.get(f"{r.plugin_id or 'base'}:{r.implementation}")) for r in rows if r.point == p],
        )
        for p in EXTENSION_POINTS
    ]
    return await page(
        request,
        ctx,
        "extensions/index.html",
        fragment="configs/_editor.html",
        status_code=status_code,
        points=points,
        editor=editor,
        form=_form(_admin_url(ctx), editor) if editor else None,
        failure=failure,
        fields=editor.implementation.fields if editor else (),
        admin_url=_admin_url(ctx),
    )


def _form(admin_url: str, editor: Editor) -> ConfigForm:
    impl, is_new = editor.implementation, not editor.config_id
    starts_off = impl.point == extensions.AUTH_VERIFIER and is_new
    return ConfigForm(
        action=admin_url,
        form_id="extension-form",
        title=N_("New configuration") if is_new else N_("Edit “%(name)s”", name=editor.name),
        is_new=is_new,
        hidden=(("config_id", editor.config_id), ("implementation", impl.key)),
        subtitle=impl.label,
        code=impl.key,
        description=impl.description,
        toggle_name="enabled",
        toggle_label=N_("Enabled"),
        toggle_on=editor.enabled,
        note=N_("An auto-login verifier starts disabled; enable it from the list once it is configured.")
        if starts_off
        else "",
    )


async def _admin_fail(
    request: HTMXRequest, ctx: RequestContext, exc: PortalError, editor: Editor | None
) -> Template:
    await ctx.db.rollback()
    for obj in (ctx.user, ctx.tenant):
        if obj is not None:
            await ctx.db.refresh(obj)
    if isinstance(exc, ValidationFailed) and editor is not None:
        editor.errors = exc.errors
        return await _admin_page(request, ctx, editor, status_code=exc.status_code)
    return await _admin_page(request, ctx, editor, Failure.of(exc), exc.status_code)


def _form_text(form: Any, key: str) -> str:
    value = form.get(key)
    return value if isinstance(value, str) else ""


def _form_int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


@get("/t/{tenant:str}/admin/extensions", opt=ADMIN, include_in_schema=False)
async def admin_index(request: HTMXRequest, ctx: RequestContext) -> Template:
    """Points, their implementations and the tenant's configurations; `?new=<implementation>` or
    `?edit=<id>` adds the editor (HTMX gets the editor alone)."""
    return await _admin_page(request, ctx)


@post("/t/{tenant:str}/admin/extensions", opt=ADMIN, include_in_schema=False, status_code=200)
async def admin_save(request: HTMXRequest, ctx: RequestContext) -> Template | Redirect:
    form = await request.form()
    tenant_id = tenant_of(ctx)
    config_id = _form_text(form, "config_id")
    editor: Editor | None = None
    try:
        if config_id:
            row = await store.get(ctx.db, tenant_id, config_id)
            key = f"{row.plugin_id or 'base'}:{row.implementation}"
        else:
            key = _form_text(form, "implementation")
        impl, _plugin = await extensions.implementation(ctx.db, tenant_id, key)
        editor = Editor(
            impl,
            config_id,
            _form_text(form, "name"),
            _form_int(form.get("version")),
            (form.get("enabled") == "on" and impl.point != extensions.AUTH_VERIFIER)
            or (bool(config_id) and form.get("enabled") == "on"),
        )
        # Secrets typed into the form are never echoed back, even when the form must be shown again.
        editor.values = {f.key: _form_text(form, f"v.{f.key}") for f in impl.fields if not f.secret}
        values: dict[str, Any] = {f.key: _form_text(form, f"v.{f.key}") for f in impl.fields}
        clear = tuple(f.key for f in impl.fields if f.secret and form.get(f"clear.{f.key}") == "on")
        req = store.SaveRequest(
            values=values,
            name=editor.name,
            implementation=key,
            version=editor.version,
            enabled=form.get("enabled") == "on",
            clear_secrets=clear,
            from_form=True,
        )
        if config_id:
            editor.secrets_set = set(row.secret_values or {})
            saved = await store.update(
                ctx.db, ctx.actor, secret_box(ctx.settings.secret_key), tenant_id, config_id, req
            )
        else:
            saved = await store.create(ctx.db, ctx.actor, secret_box(ctx.settings.secret_key), tenant_id, req)
    except PortalError as exc:
        return await _admin_fail(request, ctx, exc, editor)
    return redirect(
        _admin_url(ctx),
        N_("Saved %(name)s (enabled)", name=saved.name)
        if saved.is_enabled
        else N_("Saved %(name)s (disabled)", name=saved.name),
    )


@post(
    "/t/{tenant:str}/admin/extensions/{config_id:str}/enabled",
    opt=ADMIN,
    include_in_schema=False,
    status_code=200,
)
async def admin_toggle(request: HTMXRequest, ctx: RequestContext, config_id: str) -> Template | Redirect:
    form = await request.form()
    on = form.get("enabled") == "on"
    try:
        row = await store.update(
            ctx.db,
            ctx.actor,
            secret_box(ctx.settings.secret_key),
            tenant_of(ctx),
            config_id,
            store.SaveRequest(
                values=None,  # type: ignore[arg-type]
                version=_form_int(form.get("version")),
                enabled=on,
            ),
        )
    except PortalError as exc:
        return await _admin_fail(request, ctx, exc, None)
    return redirect(
        _admin_url(ctx),
        N_("%(name)s is now enabled", name=row.name) if on else N_("%(name)s is now disabled", name=row.name),
    )


@post(
    "/t/{tenant:str}/admin/extensions/{config_id:str}/delete",
    opt=ADMIN,
    include_in_schema=False,
    status_code=200,
)
async def admin_delete(request: HTMXRequest, ctx: RequestContext, config_id: str) -> Template | Redirect:
    form = await request.form()
    try:
        row = await store.get(ctx.db, tenant_of(ctx), config_id)
        name = row.name
        await store.delete(ctx.db, ctx.actor, tenant_of(ctx), config_id, _form_int(form.get("version")))
    except PortalError as exc:
        return await _admin_fail(request, ctx, exc, None)
    return redirect(_admin_url(ctx), N_("Deleted %(name)s", name=name))


PAGE_ROUTES = [admin_index, admin_save, admin_toggle, admin_delete]


# --- auto-login through an auth verifier ------------------------------------------------------------------

# Never handed to a verifier: the portal's own credentials and anti-forgery tokens.
WITHHELD_HEADERS = frozenset({"cookie", "authorization", "proxy-authorization", "x-csrftoken", "x-tenant"})
MAX_HEADERS, MAX_VALUE = 50, 4096
REFUSED = "This sign-in link was not accepted. Ask for a new link, or sign in with your password."


def verifier_request(request: HTMXRequest, tenant_slug: str) -> dict[str, Any]:
    """What a verifier sees of the link's request: its query, headers without the portal's credentials,
    the tenant and the time (guests have no clock of their own worth trusting, and no network)."""
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        if name.lower() in WITHHELD_HEADERS or len(headers) >= MAX_HEADERS:
            continue
        headers[name.lower()] = value[:MAX_VALUE]
    query = {k: str(v)[:MAX_VALUE] for k, v in list(request.query_params.items())[:MAX_HEADERS]}
    return {"tenant": tenant_slug, "query": query, "headers": headers, "now": int(time.time())}


@get("/t/{tenant:str}/auto-login/{config_id:str}", opt={"public": True}, include_in_schema=False)
async def auto_login(
    request: HTMXRequest, ctx: RequestContext, tenant: str, config_id: str, next: str | None = None
) -> Redirect:
    """Sign a member in from a link carrying a third-party token, checked by an enabled auth verifier."""
    if ctx.settings.is_sqlite:  # a GET that writes (session, throttle, audit): take the write lock up front
        await ctx.db.connection(execution_options={SQLITE_WRITE_LOCK: True})
    found = await directory.find_tenant(ctx.db, tenant)
    if found is None or not found.is_active:
        raise NotFound(N_("No such sign-in link"))
    try:  # a disabled, deleted or unavailable verifier is simply not there
        resolved = await extensions.resolve(ctx.db, found.id, config_id, extensions.AUTH_VERIFIER)
    except NotFound:
        raise NotFound(N_("No such sign-in link")) from None
    # Per link and address: refusals from one address must not lock everybody out of a shared link.
    key = f"auto-login:{resolved.config.id}:{ctx.ip}"[:254]
    anonymous = Actor(None, "auto-login", ctx.ip)
    # Counted and recorded as a refusal before the verifier runs, in one locked step (app.identity.throttle).
    admission = await throttle.admit(ctx.db, ctx.settings, key, ctx.ip)
    # admit committed: the rest of this GET writes again (audit, session), under SQLite's write lock.
    await ctx.db.connection(execution_options={SQLITE_WRITE_LOCK: True})
    if admission.wait:
        await audit.record(
            ctx.db,
            anonymous,
            "auth.auto_login.refused",
            "extension_config",
            resolved.config.id,
            tenant_id=found.id,
            summary=f"Auto-login through {resolved.config.name!r} refused: "
            "too many refused links from this address",
        )
        await ctx.db.commit()
        raise TooManyAttempts("Too many sign-in links were refused. Try again later.")
    reason = ""
    user: User | None = None
    try:
        identity = await extensions.verify_auth(
            ctx.db, found.id, resolved.config.id, verifier_request(request, found.slug)
        )
        if identity.user_id is not None:
            user = await ctx.db.get(User, identity.user_id)
        elif identity.email:
            user = await directory.find_user(ctx.db, identity.email)
        if user is None or not user.is_active:
            reason = f"{identity.email or identity.user_id} is not an active user"
        elif (
            await ctx.db.scalar(
                sa.select(Membership.id).where(
                    Membership.tenant_id == found.id, Membership.user_id == user.id
                )
            )
            is None
        ):
            reason = f"{user.email} is not a member of this tenant"
        elif (
            await ctx.db.scalar(
                sa.select(Membership.id).where(
                    Membership.tenant_id == SYSTEM_UUID, Membership.user_id == user.id
                )
            )
            is not None
        ):
            # A tenant's verifier must not mint sessions carrying platform-wide powers.
            reason = f"{user.email} is a platform member; platform members sign in with their password"
    except extensions.Refused as exc:
        reason = f"the verifier refused the link: {exc}"
    except extensions.ExtensionFailed as exc:
        reason = f"the verifier failed: {exc.detail}"
    if reason or user is None:
        await audit.record(
            ctx.db,
            anonymous,
            "auth.auto_login.refused",
            "extension_config",
            resolved.config.id,
            tenant_id=found.id,
            summary=f"Auto-login through {resolved.config.name!r} refused: {reason}"[:500],
        )
        await ctx.db.commit()
        raise Forbidden(REFUSED)
    await throttle.succeeded(ctx.db, admission)
    token = await sessions.start(
        ctx.db,
        ctx.settings,
        user,
        old_token=request.cookies.get(sessions.COOKIE),
        ip=ctx.ip,
        user_agent=request.headers.get("user-agent", ""),
    )
    await audit.record(
        ctx.db,
        Actor(user.id, user.email, ctx.ip),
        "auth.auto_login",
        "extension_config",
        resolved.config.id,
        tenant_id=found.id,
        summary=f"{user.email} signed in through the auto-login verifier {resolved.config.name!r}",
    )
    target = safe_next(next) if next else f"/t/{found.slug}/"
    response = Redirect(target, status_code=303)
    response.set_cookie(
        sessions.COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=ctx.settings.secure_cookies,
        max_age=ctx.settings.session_absolute_seconds,
    )
    return response


class TooManyAttempts(PortalError):
    status_code = 429
    title = "Too many attempts"


ROUTES: list[ControllerRouterHandler] = [*API_ROUTES, *PAGE_ROUTES, auto_login]
