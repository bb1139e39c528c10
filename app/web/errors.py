"""Errors become HTML pages for people and RFC 9457 problem details for API clients."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException
from litestar.response import Redirect

from app.core.errors import PortalError, ValidationFailed
from app.core.i18n import N_

log = logging.getLogger("portal.web")


def problem(status: int, title: str, detail: str, **extra: Any) -> Response[dict[str, Any]]:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return Response(body, status_code=status, media_type="application/problem+json")


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", "")


def _html_error(
    request: Request, status: int, title: str, detail: str, errors: dict[str, str] | None, exc: Exception
) -> Response[Any]:
    from app.web.error_pages import ErrorPage

    if status == 404 and isinstance(exc, HTTPException) and not isinstance(exc, PortalError):
        detail = N_("There is nothing at this address. It may have been moved or deleted.")
    data = {"status": status, "title": title, "detail": detail, "errors": errors or {}, "hint": None}
    return ErrorPage(request, status, data, exc)


def handle_exception(request: Request, exc: Exception) -> Response[Any]:
    if isinstance(exc, NotAuthorizedException) and not _wants_json(request):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.headers.get("hx-request") == "true":
            return Response("", status_code=401, headers={"HX-Redirect": f"/login?next={quote(target)}"})
        return Redirect(f"/login?next={quote(target)}", status_code=303)
    extra: dict[str, Any]
    if isinstance(exc, ValidationFailed):
        status, title, detail, extra = exc.status_code, exc.title, exc.detail, {"errors": exc.errors}
    elif isinstance(exc, PortalError):
        status, title, detail, extra = exc.status_code, exc.title, exc.detail, {}
    elif isinstance(exc, ValidationException):
        status, title, detail = 400, N_("Bad request"), _detail(exc)
        extra = {"errors": exc.extra} if exc.extra else {}
    elif isinstance(exc, HTTPException):
        status, title, detail, extra = exc.status_code, _title(exc.status_code), _detail(exc), {}
    else:
        log.exception("Unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        status, title, detail, extra = (
            500,
            N_("Internal error"),
            N_("Something went wrong on our side; it has been logged."),
            {},
        )
    if _wants_json(request):
        return problem(status, title, detail, **extra)
    errors = extra.get("errors") if isinstance(extra.get("errors"), dict) else None
    return _html_error(request, status, title, detail, errors, exc)


def _detail(exc: HTTPException) -> str:
    """The exception's detail, still a message (`Msg`) when raised as one: a page translates it."""
    return exc.detail if isinstance(exc.detail, str) else str(exc.detail)


def _title(status: int) -> str:
    return {
        400: N_("Bad request"),
        401: N_("Sign-in required"),
        403: N_("No access"),
        404: N_("Page not found"),
        405: N_("Method not allowed"),
        409: N_("Conflict"),
        413: N_("Too large"),
        429: N_("Too many requests"),
    }.get(status, N_("Error"))


__all__ = ["MediaType", "handle_exception", "problem"]
