"""The signed-in user's own pages: profile (name, language, email notices, password) and API tokens."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import get, post
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from app import messages
from app.core.errors import ValidationFailed
from app.core.i18n import N_
from app.core.models import utcnow
from app.identity import directory, tokens
from app.web.context import TenantContext
from app.web.forms import T, form_text
from app.web.render import page, redirect

# --- own profile ---------------------------------------------------------------------------------


@get(T("/account"), opt={"auth": True}, include_in_schema=False)
async def profile(request: HTMXRequest, ctx: TenantContext) -> Template:
    user = ctx.user
    return await page(
        request,
        ctx,
        "account/profile.html",
        errors={},
        values={
            "display_name": user.display_name,
            "language": user.language,
            "email_notifications": await messages.email_enabled(ctx.db, user.id),
        },
    )


@post(T("/account"), opt={"auth": True}, include_in_schema=False)
async def profile_save(request: HTMXRequest, ctx: TenantContext) -> Template | Redirect:
    user = ctx.user
    form = await request.form()
    values: dict[str, Any] = {
        "display_name": form_text(form, "display_name", 300),
        "language": form_text(form, "language", 10),
        "email_notifications": form.get("email_notifications") == "on",
    }
    try:
        await directory.update_profile(ctx.db, ctx.actor, user, values["display_name"], values["language"])
        if ctx.settings.smtp is not None:  # the choice is offered only when the portal can send email
            await messages.set_email_enabled(ctx.db, user.id, values["email_notifications"])
        new_password = form_text(form, "new_password", 300)
        message = N_("Profile saved")
        if new_password:
            from app.identity.passwords import verify_password

            if not verify_password(user.password_hash, form_text(form, "current_password", 1024)):
                raise ValidationFailed({"current_password": N_("This is not your current password.")})
            # Every other session of this user ends; this browser stays signed in.
            ended = await directory.set_password(
                ctx.db, ctx.actor, user, new_password, keep_session=ctx.session_token
            )
            message = N_(
                "Profile saved; password changed, %(ended)s other session(s) signed out", ended=ended
            )
    except ValidationFailed as exc:
        return await page(
            request, ctx, "account/profile.html", status_code=422, errors=exc.errors, values=values
        )
    return redirect(f"/t/{ctx.tenant.slug}/account", message)


# --- own API tokens ------------------------------------------------------------------------------


async def _tokens_page(
    request: HTMXRequest,
    ctx: TenantContext,
    *,
    secret: str | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Template:
    rows = await tokens.list_for(ctx.db, ctx.user.id)
    return await page(
        request,
        ctx,
        "account/tokens.html",
        status_code=status_code,
        rows=rows,
        secret=secret,
        errors=errors or {},
        now=utcnow(),
        scopes={key: ctx.gettext(text) for key, text in tokens.SCOPES.items()},
        expiry_options=[
            (d or "never", ctx.gettext(N_("%(days)s days"), days=d) if d else ctx.gettext(N_("Never")))
            for d in tokens.EXPIRY_CHOICES
        ],
        default_expiry=tokens.DEFAULT_EXPIRY_DAYS,
    )


def _expiry_days(raw: str) -> int | None:
    """The form's expiry choice: a number of days or "never" (-1 for anything else, which is refused)."""
    if raw == "never":
        return None
    try:
        return int(raw)
    except ValueError:
        return -1


@get(T("/account/tokens"), opt={"auth": True}, include_in_schema=False)
async def tokens_list(request: HTMXRequest, ctx: TenantContext) -> Template:
    return await _tokens_page(request, ctx)


@post(T("/account/tokens"), opt={"auth": True}, include_in_schema=False, status_code=200)
async def tokens_create(request: HTMXRequest, ctx: TenantContext) -> Template:
    form = await request.form()
    try:
        expires_days = _expiry_days(form_text(form, "expires_days", 10) or str(tokens.DEFAULT_EXPIRY_DAYS))
        if expires_days not in tokens.EXPIRY_CHOICES:
            raise ValidationFailed({"expires_days": N_("Choose one of the offered expiries.")})
        _, secret = await tokens.create(
            ctx.db,
            ctx.actor,
            ctx.user,
            form_text(form, "name", 200),
            expires_days=expires_days,
            scope=form_text(form, "scope", 10) or "full",
        )
    except ValidationFailed as exc:
        return await _tokens_page(request, ctx, errors=exc.errors, status_code=422)
    # Shown once, on this response only; it is not stored in clear anywhere.
    return await _tokens_page(request, ctx, secret=secret)


@post(T("/account/tokens/{token_id:uuid}/revoke"), opt={"auth": True}, include_in_schema=False)
async def tokens_revoke(ctx: TenantContext, token_id: uuid.UUID) -> Redirect:
    await tokens.revoke(ctx.db, ctx.actor, ctx.user.id, token_id)
    return redirect(f"/t/{ctx.tenant.slug}/account/tokens", N_("Token revoked"))


ROUTES = [profile, profile_save, tokens_list, tokens_create, tokens_revoke]
