"""Sign-in, sessions, CSRF and throttling against the real app on both databases."""

from __future__ import annotations

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.helpers import csrf, login, post_form, text_of


def test_unauthenticated_html_redirects_to_login_and_back(client):
    r = client.get("/t/system/admin/roles", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=/t/system/admin/roles"
    csrf(client)
    r = post_form(client, "/login", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD,
                                     "next": "/t/system/admin/roles"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/t/system/admin/roles"
    assert "Roles of Platform" in client.get("/t/system/admin/roles").text


def test_unauthenticated_json_gets_problem_details(client):
    r = client.get("/api/v1/me")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["status"] == 401


def test_wrong_password_shows_message_and_open_redirect_is_refused(client):
    client.get("/login")
    r = post_form(client, "/login", {"email": ADMIN_EMAIL, "password": "nope-nope-1", "next": "/"})
    assert "Email or password is not correct" in r.text
    r = post_form(client, "/login", {"email": ADMIN_EMAIL.upper(), "password": ADMIN_PASSWORD,
                                     "next": "//evil.example/x"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/t/")


def test_session_rotates_at_login_and_logout_ends_it(client):
    client.get("/login")
    client.cookies.set("portal_session", "attacker-fixed-value", domain="testserver.local")
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    token = client.cookies.get("portal_session")
    assert token and token != "attacker-fixed-value"
    assert client.get("/t/system/", follow_redirects=False).status_code == 200
    post_form(client, "/logout", {}, follow_redirects=False)
    client.cookies.clear()
    client.cookies.set("portal_session", token, domain="testserver.local")
    assert client.get("/t/system/", follow_redirects=False).status_code == 303


def test_forged_csrf_token_is_refused(client):
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    r = client.post("/t/system/admin/tenants", data={"slug": "acme", "name": "Acme", "_csrf_token": "forged"})
    assert r.status_code == 403
    r = client.post("/t/system/admin/tenants", data={"slug": "acme", "name": "Acme"},
                    headers={"x-csrftoken": "forged"})
    assert r.status_code == 403
    assert "acme" not in client.get("/t/system/admin/tenants").text


def test_htmx_post_with_csrf_header_is_accepted(client):
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    r = client.post("/t/system/admin/tenants", data={"slug": "acme", "name": "Acme"},
                    headers={"x-csrftoken": csrf(client)}, follow_redirects=False)
    assert r.status_code == 303


def test_failed_logins_are_throttled_with_a_clear_message(client):
    client.get("/login")
    for _ in range(5):
        r = post_form(client, "/login", {"email": ADMIN_EMAIL, "password": "wrong-password-9"})
        assert "not correct" in r.text
    r = post_form(client, "/login", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}, follow_redirects=False)
    assert r.status_code == 429
    assert "Too many failed sign-in attempts" in text_of(r.text)


def test_profile_language_and_password_change(client):
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    r = post_form(client, "/t/system/account", {"display_name": "Root", "language": "zh", "current_password": "x",
                                                "new_password": "another-pass-9"})
    assert r.status_code == 422 and "not your current password" in r.text
    r = post_form(client, "/t/system/account", {"display_name": "Root", "language": "xx"})
    assert r.status_code == 422 and "Choose one of" in r.text
    r = post_form(client, "/t/system/account", {"display_name": "Root", "language": "zh",
                                                "current_password": ADMIN_PASSWORD, "new_password": "another-pass-9"},
                  follow_redirects=False)
    assert r.status_code == 303
    assert '<html lang="zh">' in client.get("/t/system/account").text
    post_form(client, "/logout", {})
    login(client, ADMIN_EMAIL, "another-pass-9")
