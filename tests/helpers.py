"""Small helpers for driving the app like a browser or an API client would."""

from __future__ import annotations

import re
from typing import Any

from litestar.testing import TestClient

CSRF_COOKIE = "portal_csrf"


def csrf(client: TestClient) -> str:
    token = client.cookies.get(CSRF_COOKIE)
    if not token:
        client.get("/login")
        token = client.cookies.get(CSRF_COOKIE)
    assert token, "the CSRF cookie should be set by any GET"
    return token


def post_form(client: TestClient, url: str, data: dict[str, Any] | list[tuple[str, str]], **kw: Any) -> Any:
    items = list(data.items()) if isinstance(data, dict) else list(data)
    form: dict[str, Any] = {}
    for key, value in items:
        form.setdefault(key, []).append(value)
    form["_csrf_token"] = csrf(client)
    return client.post(url, data=form, **kw)


def login(client: TestClient, email: str, password: str) -> Any:
    client.get("/login")
    response = post_form(
        client, "/login", {"email": email, "password": password, "next": "/"}, follow_redirects=False
    )
    assert response.status_code == 303, (
        f"login as {email} failed: {response.status_code} {response.text[:300]}"
    )
    return response


def logout(client: TestClient) -> None:
    post_form(client, "/logout", {}, follow_redirects=False)


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def api_token(client: TestClient, email: str, password: str) -> str:
    """Sign in through the UI and create a token there, as a user would."""
    login(client, email, password)
    tenant_home = client.get("/", follow_redirects=False).headers["location"]
    page = post_form(client, tenant_home.rstrip("/") + "/account/tokens", {"name": "tests"})
    match = re.search(r'<code class="secret">([^<]+)</code>', page.text)
    assert match, page.text[:500]
    logout(client)
    client.cookies.clear()
    return match.group(1)


def bearer(token: str, tenant: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if tenant:
        headers["X-Tenant"] = tenant
    return headers
