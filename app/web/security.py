"""Browser-facing protections applied to every request and response in one place.

- CSRF: every state-changing request needs the token, except a JSON API call authenticated by a
  bearer token. A browser cannot attach an `Authorization` header to a cross-site request without a
  CORS preflight (the portal answers none), so such a call cannot be forged; the API ignores session
  cookies (app.web.context), so a bearer call never rides on ambient browser credentials either.
  Litestar's own `exclude=` is a regex searched anywhere in the path, so `/api/` also matched plugin
  pages such as `/t/x/p/notes/api/notes`; here the prefix is anchored.
- Security headers (CSP without inline script or style, nosniff, referrer policy) on every response,
  error pages and 404s included: a `before_send` hook sees every message the app sends.
- `Secure` on every cookie the portal sets (session, CSRF, flash) whenever it is served over HTTPS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar.config.csrf import CSRFConfig
from litestar.datastructures import MutableScopeHeaders
from litestar.middleware import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware

if TYPE_CHECKING:
    from litestar.types import Message, Receive, Scope, Send

    from app.core.settings import Settings

API_PREFIX = "/api/v1/"
HEALTH_PATH = "/health"  # app.web.health
CSRF_COOKIE = "portal_csrf"
CSRF_HEADER = "x-csrftoken"

# No inline script or style anywhere: behaviour lives in /static/portal.js, looks in /static/portal.css
# (htmx runs with allowEval off and without its injected indicator <style>; see templates/base.html).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
)


def is_bearer_api_call(scope: Scope) -> bool:
    """A call to the JSON API that authenticates with a bearer token (the only credential the API reads)."""
    if not scope["path"].startswith(API_PREFIX):
        return False
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, secret = value.decode("latin-1").partition(" ")
            return scheme.lower() == "bearer" and bool(secret.strip())
    return False


class PortalCSRFMiddleware(CSRFMiddleware):
    """Litestar's double-submit CSRF check, skipped only for bearer-token API calls."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # /health sets no CSRF cookie (load balancers call it many times a second and keep no cookies).
        if scope["type"] == "http" and (scope["path"] == HEALTH_PATH or is_bearer_api_call(scope)):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def csrf_config(settings: Settings) -> CSRFConfig:
    # No `exclude`: the bearer exemption is decided per request by PortalCSRFMiddleware. The Secure flag
    # is added per response by `security_headers` (it depends on the request's scheme).
    return CSRFConfig(
        secret=settings.secret_key,
        cookie_name=CSRF_COOKIE,
        header_name=CSRF_HEADER,
        cookie_secure=settings.secure_cookies,
    )


def csrf_middleware(settings: Settings) -> DefineMiddleware:
    """For `Litestar(middleware=...)` in place of `csrf_config=` (which would add the unconditional one).
    Templates still get `csrf_token()` / `csrf_input`: the middleware puts the token in the scope state."""
    return DefineMiddleware(PortalCSRFMiddleware, config=csrf_config(settings))


def wants_secure_cookies(settings: Settings, scope: Scope) -> bool:
    """HTTPS if the operator says so (PORTAL_SECURE_COOKIES, or a PORTAL_PUBLIC_URL of https://...) or
    the request came over TLS to the server itself. `X-Forwarded-Proto` is deliberately not read (a client
    could send it; `portal serve` runs uvicorn with proxy headers off), so behind a TLS-terminating proxy
    the operator sets PORTAL_PUBLIC_URL."""
    return (
        settings.secure_cookies
        or settings.public_url.startswith("https://")
        or scope.get("scheme") == "https"
    )


def _with_secure(cookie: bytes) -> bytes:
    attributes = [part.strip().lower() for part in cookie.split(b";")[1:]]
    return cookie if b"secure" in attributes else cookie + b"; Secure"


def security_headers(settings: Settings) -> Any:
    """A `before_send` hook: the headers on every response start, and Secure cookies over HTTPS."""

    async def hook(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        message.setdefault("headers", [])
        headers = MutableScopeHeaders.from_message(message)
        for name, value in SECURITY_HEADERS:
            if name not in headers:
                headers[name] = value
        if wants_secure_cookies(settings, scope):
            message["headers"] = [
                (k, _with_secure(v) if k.lower() == b"set-cookie" else v) for k, v in message["headers"]
            ]

    return hook


__all__ = [
    "API_PREFIX",
    "CONTENT_SECURITY_POLICY",
    "PortalCSRFMiddleware",
    "csrf_middleware",
    "is_bearer_api_call",
    "security_headers",
    "wants_secure_cookies",
]
