"""Browser hardening on every response (CSP, nosniff, referrer policy), Secure cookies over HTTPS, and
the CSRF rule: bearer-token API calls are exempt, cookie-authenticated requests never are — on both
databases."""

from __future__ import annotations

import re
from typing import Any

from litestar.testing import TestClient

from app.core.settings import load_settings
from app.server import create_app
from app.web.security import CONTENT_SECURITY_POLICY
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.helpers import api_token, bearer, login

EXPECTED = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def assert_hardened(response: Any) -> None:
    for name, value in EXPECTED.items():
        assert response.headers.get(name) == value, (
            f"{response.request.url}: {name} = {response.headers.get(name)!r}"
        )


def test_csp_forbids_inline_script_and_framing():
    directives = dict(d.strip().split(" ", 1) for d in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["script-src"] == "'self'" and "unsafe" not in CONTENT_SECURITY_POLICY
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    assert directives["base-uri"] == "'self'" and directives["style-src"] == "'self'"


def test_headers_on_html_json_static_and_error_responses(client):
    assert_hardened(client.get("/login"))  # HTML, anonymous
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert_hardened(client.get("/t/system/admin/members"))  # HTML, signed in
    assert_hardened(client.get("/t/system/admin/members", headers={"HX-Request": "true"}))  # htmx fragment
    missing = client.get("/t/system/no-such-page")
    assert missing.status_code == 404
    assert_hardened(missing)  # error page
    assert_hardened(client.get("/static/portal.js"))
    refused = client.post("/t/system/admin/roles", data={"name": "x"})  # no CSRF token: the middleware's 403
    assert refused.status_code == 403
    assert_hardened(refused)
    token = api_token(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    me = client.get("/api/v1/me", headers=bearer(token))
    assert me.status_code == 200 and me.headers["content-type"].startswith("application/json")
    assert_hardened(me)
    unauthorized = client.get("/api/v1/me")
    assert unauthorized.status_code == 401
    assert_hardened(unauthorized)  # JSON problem details
    assert_hardened(client.get("/api/v1/no-such-thing", headers=bearer(token)))


def test_no_inline_script_or_handlers_in_served_pages(client):
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    for url in (
        "/t/system/",
        "/t/system/admin/members",
        "/t/system/admin/roles",
        "/t/system/admin/plugins",
        "/t/system/admin/extensions",
        "/t/system/account/tokens",
    ):
        html = client.get(url).text
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), f"inline <script> on {url}"
        assert not re.search(r"\s(on[a-z]+|hx-on[:\w-]*)=", html), f"inline event handler on {url}"
        assert " style=" not in html, f"inline style attribute on {url}"
        assert '"allowEval": false' in html


def _cookie_headers(response: Any) -> list[str]:
    return response.headers.get_list("set-cookie")


def _value(cookies: list[str], name: str) -> str:
    return next(c.split(";", 1)[0].split("=", 1)[1] for c in cookies if c.startswith(name + "="))


def _login_cookies(client: TestClient, role: str = "Clerk") -> list[str]:
    """Sign in and save a role (a redirect with a flash cookie); the Set-Cookie headers seen on the way.

    Cookies go back by hand: a client keeps Secure cookies to itself over plain http, as browsers do."""
    csrf_cookies = _cookie_headers(client.get("/login"))
    token = _value(csrf_cookies, "portal_csrf")
    jar = {"portal_csrf": token}

    def post(url: str, data: dict[str, str]) -> Any:
        client.cookies.clear()
        cookie = "; ".join(f"{k}={v}" for k, v in jar.items())
        return client.post(
            url, data={**data, "_csrf_token": token}, headers={"Cookie": cookie}, follow_redirects=False
        )

    signed_in = post("/login", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "next": "/"})
    assert signed_in.status_code == 303, signed_in.text[:300]
    jar["portal_session"] = _value(_cookie_headers(signed_in), "portal_session")
    saved = post("/t/system/admin/roles", {"name": role})
    assert saved.status_code == 303, saved.text[:300]
    jar["portal_flash"] = _value(_cookie_headers(saved), "portal_flash")
    client.cookies.clear()
    shown = client.get(
        saved.headers["location"], headers={"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())}
    )
    assert shown.status_code == 200 and role in shown.text
    flash_gone = [
        c for c in _cookie_headers(shown) if c.startswith("portal_flash=")
    ]  # shown once, then deleted
    assert flash_gone, _cookie_headers(shown)
    return csrf_cookies + _cookie_headers(signed_in) + _cookie_headers(saved) + flash_gone


def test_cookies_are_secure_when_the_public_url_is_https(settings_env):
    app = create_app(load_settings({**settings_env, "PORTAL_PUBLIC_URL": "https://portal.example.com"}))
    with TestClient(app=app, base_url="http://testserver.local") as client:
        cookies = _login_cookies(client)
    names = {c.split("=", 1)[0] for c in cookies}
    assert {"portal_csrf", "portal_session", "portal_flash"} <= names, cookies
    for cookie in cookies:
        assert re.search(r";\s*secure\b", cookie, re.I), cookie


def test_cookies_follow_the_request_scheme_without_settings(app):
    with TestClient(app=app, base_url="http://testserver.local") as client:
        plain = _login_cookies(client)
    assert plain and not any(re.search(r";\s*secure\b", c, re.I) for c in plain), plain
    with TestClient(app=app, base_url="https://testserver.local") as client:
        tls = _login_cookies(client, role="Clerk over TLS")
    assert tls and all(re.search(r";\s*secure\b", c, re.I) for c in tls), tls
    # A client's own X-Forwarded-Proto changes nothing (see app.web.security.wants_secure_cookies).
    with TestClient(app=app, base_url="http://testserver.local") as client:
        claimed = _cookie_headers(client.get("/login", headers={"X-Forwarded-Proto": "https"}))
    assert claimed and not any(re.search(r";\s*secure\b", c, re.I) for c in claimed), claimed


def test_portal_secure_cookies_still_forces_secure(settings_env):
    app = create_app(load_settings({**settings_env, "PORTAL_SECURE_COOKIES": "1"}))
    with TestClient(app=app, base_url="http://testserver.local") as client:
        cookies = _login_cookies(client)
    assert cookies and all(len(re.findall(r";\s*secure\b", c, re.I)) == 1 for c in cookies), cookies  # once


def test_bearer_api_calls_need_no_csrf_token_but_cookie_calls_do(client):
    token = api_token(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    created = client.post("/api/v1/tokens", json={"name": "by-bearer"}, headers=bearer(token))
    assert created.status_code == 201, created.text
    # The same call made with the browser session instead of the bearer token: refused by CSRF.
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    by_cookie = client.post("/api/v1/tokens", json={"name": "by-cookie"})
    assert by_cookie.status_code == 403 and "CSRF" in by_cookie.text
    # A bearer header on a non-API path exempts nothing: the page route still wants the token.
    page = client.post("/t/system/admin/roles", data={"name": "Clerk"}, headers=bearer(token))
    assert page.status_code == 403 and "expired" in page.text  # the form shown again, input kept
    # `/api/v1/` is anchored: the prefix elsewhere in a path is not the API.
    nested = client.post("/t/system/p/notes/api/v1/notes", data={"title": "x"}, headers=bearer(token))
    assert nested.status_code == 403 and "expired" in nested.text
