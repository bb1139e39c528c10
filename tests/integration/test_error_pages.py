"""Error pages for people: inside the layout (menu, tenant switcher), in plain words, no codes; a form
refused for its CSRF token comes back with what was typed (passwords excepted) and a fresh token."""

from __future__ import annotations

import html as html_lib
import re
from typing import Any

from app.demo import DEMO_PASSWORD, ensure_demo
from tests.helpers import CSRF_COOKIE, login, post_form
from tests.helpers import text_of as _text_of
from tests.integration.test_workflow import in_db


def text_of(page: str) -> str:
    return html_lib.unescape(_text_of(page))


def _demo(app: Any) -> None:
    async def setup(s: Any) -> None:
        await ensure_demo(s, app.state.settings)

    in_db(app, setup)


def test_forbidden_page_in_the_layout_and_in_words(client: Any, app: Any) -> None:
    _demo(app)
    login(client, "bob@demo.test", DEMO_PASSWORD)
    response = client.get("/t/demo/admin/members")
    assert response.status_code == 403
    html = response.text
    assert 'id="side-nav"' in html and 'id="tenant-switch"' in html  # the menu and the switcher
    words = text_of(html)
    assert "You can't see Members in Demo Company." in words
    assert "Ask an admin of Demo Company for access." in words
    assert "db.tenant_users" not in html and "403" not in words
    # The same in Chinese.
    post_form(client, "/language", {"language": "zh", "next": "/t/demo/"})
    zh = text_of(client.get("/t/demo/admin/members").text)
    assert "Demo Company" in zh and "You can't see" not in zh and "db.tenant_users" not in zh
    # The API keeps its machine-readable detail.
    api = client.get("/api/v1/admin/members", headers={"X-Tenant": "demo", "Accept": "application/json"})
    assert api.status_code in (401, 403, 404)


def test_not_found_page_in_the_layout(client: Any, app: Any) -> None:
    _demo(app)
    login(client, "alice@demo.test", DEMO_PASSWORD)
    response = client.get("/t/demo/no/such/page")
    assert response.status_code == 404
    assert 'id="side-nav"' in response.text and 'id="tenant-switch"' in response.text
    words = text_of(response.text)
    assert "Page not found" in words and "There is nothing at this address." in words
    assert "404" not in words


def test_expired_csrf_token_shows_the_form_again_with_the_input(client: Any, app: Any) -> None:
    _demo(app)
    login(client, "alice@demo.test", DEMO_PASSWORD)
    client.cookies.delete(CSRF_COOKIE)  # the token expired with the browser session
    sent = {"name": "Night shift", "description": "Works 22:00–06:00\nsecond line", "password": "x-secret"}
    response = client.post("/t/demo/admin/roles", data={**sent, "_csrf_token": "stale"})
    assert response.status_code == 403
    html = response.text
    assert 'id="side-nav"' in html  # in the layout
    assert "Your form had expired" in text_of(html)
    assert 'value="Night shift"' in html and "Works 22:00–06:00\nsecond line</textarea>" in html
    assert "x-secret" not in html  # never echoed
    token = re.search(r'name="_csrf_token" value="([^"]+)"', html)
    assert token and client.cookies.get(CSRF_COOKIE)  # a fresh token and its cookie
    form = re.search(r'<form method="post" action="([^"]+)" class="resubmit">', html)
    assert form and form.group(1) == "/t/demo/admin/roles"
    # Sending it again works.
    again = client.post(
        "/t/demo/admin/roles",
        data={"name": "Night shift", "description": "nights", "_csrf_token": token.group(1)},
        follow_redirects=False,
    )
    assert again.status_code == 303, again.text[:500]


def test_a_refusal_raised_as_a_message_is_shown_in_the_readers_language(client: Any, app: Any) -> None:
    _demo(app)
    login(client, "bob@demo.test", DEMO_PASSWORD)
    post_form(client, "/language", {"language": "zh", "next": "/t/demo/"})
    response = client.get("/t/system/")  # not his tenant: refused by the guard (a Litestar exception)
    assert response.status_code == 403
    words = text_of(response.text)
    assert "您不是租户 system 的成员" in words and "not a member" not in words
