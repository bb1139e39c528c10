"""Sign-in, sign-out and the landing redirect."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Response, Template

from app import audit
from app.core.db import SQLITE_WRITE_LOCK
from app.core.i18n import N_
from app.core.identifiers import normalize_email
from app.identity import directory, sessions, throttle
from app.identity.passwords import verify_password
from app.web.context import RequestContext
from app.web.render import page, redirect

FORM = Body(media_type=RequestEncodingType.URL_ENCODED)


def safe_next(target: str | None) -> str:
    """Only local paths: no scheme, no host, no protocol-relative '//' tricks."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@get("/login", opt={"public": True}, include_in_schema=False)
async def login_form(request: HTMXRequest, ctx: RequestContext, next: str = "/") -> Template | Redirect:
    if ctx.user is not None:
        return Redirect(safe_next(next), status_code=303)
    return await page(request, ctx, "login.html", next=safe_next(next), email="", error=None)


@post("/login", opt={"public": True}, include_in_schema=False, status_code=200)
async def login(
    request: HTMXRequest, ctx: RequestContext, data: Annotated[dict[str, Any], FORM]
) -> Template | Response[Any]:
    # NUL never belongs in an address (and PostgreSQL text cannot hold it): drop it before any query.
    email = normalize_email(str(data.get("email", "")).replace("\x00", ""))[:254]
    password = str(data.get("password", ""))[:1024]
    target = safe_next(str(data.get("next") or "/").replace("\x00", ""))
    user = await directory.find_user(ctx.db, email) if email else None
    # Counted and recorded before the password is looked at, in one locked step (see app.identity.throttle).
    admission = await throttle.admit(ctx.db, ctx.settings, email, ctx.ip)
    if admission.wait:
        minutes = max(1, round(admission.wait / 60))
        return await page(
            request,
            ctx,
            "login.html",
            status_code=429,
            next=target,
            email=email,
            error=ctx.gettext(
                "Too many failed sign-in attempts. Try again in about %(minutes)s minute(s).", minutes=minutes
            ),
        )
    ok = (
        verify_password(user.password_hash if user else None, password)
        and user is not None
        and user.is_active
    )
    if not ok or user is None:
        return await page(
            request,
            ctx,
            "login.html",
            status_code=200,
            next=target,
            email=email,
            error=ctx.gettext("Email or password is not correct."),
        )
    # The argon2 check ran outside any transaction; the sign-in's writes take SQLite's write lock again.
    await ctx.db.connection(execution_options={SQLITE_WRITE_LOCK: True})
    await throttle.succeeded(ctx.db, admission)
    token = await sessions.start(
        ctx.db,
        ctx.settings,
        user,
        old_token=request.cookies.get(sessions.COOKIE),
        ip=ctx.ip,
        user_agent=request.headers.get("user-agent", ""),
    )
    if target == "/":
        own = await directory.memberships_of(ctx.db, user.id)
        target = f"/t/{own[0][0].slug}/" if own else "/"
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


@post("/logout", opt={"auth": True}, include_in_schema=False)
async def logout(request: HTMXRequest, ctx: RequestContext) -> Redirect:
    if ctx.session_token:
        await sessions.end(ctx.db, ctx.session_token)
    response = Redirect("/login", status_code=303)
    response.delete_cookie(sessions.COOKIE)
    return response


@post("/t/{tenant:str}/account/sign-out-everywhere", opt={"auth": True}, include_in_schema=False)
async def sign_out_everywhere(ctx: RequestContext) -> Redirect:
    """End every session of the signed-in user, this one included (a lost laptop, a shared computer)."""
    assert ctx.user is not None
    ended = await sessions.end_all_for(ctx.db, ctx.user.id)
    await audit.record(
        ctx.db,
        ctx.actor,
        "user.sign_out_everywhere",
        "user",
        ctx.user.id,
        summary=f"{ctx.user.email} signed out everywhere ({ended} session(s) ended)",
    )
    response = redirect(
        "/login", N_("Signed out everywhere: %(ended)s session(s) ended.", ended=ended), level="info"
    )
    response.delete_cookie(sessions.COOKIE)
    return response


@get("/", opt={"auth": True}, include_in_schema=False)
async def landing(ctx: RequestContext) -> Redirect:
    own = await ctx.memberships()
    if not own:  # a new account: its invitations (or the word that it has none yet) are all it can see
        return Redirect("/invitations", status_code=303)
    return Redirect(f"/t/{own[0][0].slug}/", status_code=303)


@get("/account/no-tenant", opt={"auth": True}, include_in_schema=False)
async def no_tenant(request: HTMXRequest, ctx: RequestContext) -> Template:
    return await page(
        request,
        ctx,
        "error.html",
        status_code=200,
        status="",
        title=N_("No tenant yet"),
        detail=N_("Your account is not a member of any tenant. Ask a tenant administrator to add you."),
    )


ROUTES = [login_form, login, logout, sign_out_everywhere, landing, no_tenant]
