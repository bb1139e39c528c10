"""The header's language switch: signed in it saves the user's preference, signed out a cookie does."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect

from app.core.i18n import LANGUAGE_COOKIE, supported
from app.identity import directory
from app.web.auth_pages import safe_next
from app.web.context import RequestContext

FORM = Body(media_type=RequestEncodingType.URL_ENCODED)
COOKIE_SECONDS = 365 * 24 * 3600


@post("/language", opt={"public": True}, include_in_schema=False, status_code=303)
async def switch_language(ctx: RequestContext, data: Annotated[dict[str, Any], FORM]) -> Redirect:
    language = supported(str(data.get("language") or ""))
    target = safe_next(str(data.get("next") or "/").replace("\x00", ""))
    response = Redirect(target, status_code=303)
    if language is None:
        return response
    if ctx.user is not None and ctx.user.language != language:
        await directory.update_profile(ctx.db, ctx.actor, ctx.user, ctx.user.display_name, language)
    response.set_cookie(
        LANGUAGE_COOKIE,
        language,
        max_age=COOKIE_SECONDS,
        httponly=True,
        samesite="lax",
        secure=ctx.settings.secure_cookies,
    )
    return response


ROUTES = [switch_language]
