"""Sign-in, sessions, CSRF and throttling against the real app on both databases."""

from __future__ import annotations

import asyncio
import datetime as dt

import sqlalchemy as sa

from app.audit import Actor
from app.core.db import SQLITE_WRITE_LOCK, make_alchemy_config
from app.core.models import ApiToken, Tenant, User, WebSession, utcnow
from app.identity import directory, sessions, tokens
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.helpers import csrf, login, post_form, text_of


def test_unauthenticated_html_redirects_to_login_and_back(client):
    r = client.get("/t/system/admin/roles", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=/t/system/admin/roles"
    csrf(client)
    r = post_form(
        client,
        "/login",
        {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "next": "/t/system/admin/roles"},
        follow_redirects=False,
    )
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
    r = post_form(
        client,
        "/login",
        {"email": ADMIN_EMAIL.upper(), "password": ADMIN_PASSWORD, "next": "//evil.example/x"},
        follow_redirects=False,
    )
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
    r = client.post(
        "/t/system/admin/tenants", data={"slug": "acme", "name": "Acme"}, headers={"x-csrftoken": "forged"}
    )
    assert r.status_code == 403
    assert "acme" not in client.get("/t/system/admin/tenants").text


def test_htmx_post_with_csrf_header_is_accepted(client):
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    r = client.post(
        "/t/system/admin/tenants",
        data={"slug": "acme", "name": "Acme"},
        headers={"x-csrftoken": csrf(client)},
        follow_redirects=False,
    )
    assert r.status_code == 303


def test_failed_logins_are_throttled_with_a_clear_message(client):
    client.get("/login")
    for _ in range(5):
        r = post_form(client, "/login", {"email": ADMIN_EMAIL, "password": "wrong-password-9"})
        assert "not correct" in r.text
    r = post_form(
        client, "/login", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}, follow_redirects=False
    )
    assert r.status_code == 429
    assert "Too many failed sign-in attempts" in text_of(r.text)


def test_profile_language_and_password_change(client):
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    r = post_form(
        client,
        "/t/system/account",
        {"display_name": "Root", "language": "zh", "current_password": "x", "new_password": "another-pass-9"},
    )
    assert r.status_code == 422 and "not your current password" in r.text
    r = post_form(client, "/t/system/account", {"display_name": "Root", "language": "xx"})
    assert r.status_code == 422 and "Choose one of" in r.text
    r = post_form(
        client,
        "/t/system/account",
        {
            "display_name": "Root",
            "language": "zh",
            "current_password": ADMIN_PASSWORD,
            "new_password": "another-pass-9",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert '<html lang="zh">' in client.get("/t/system/account").text
    post_form(client, "/logout", {})
    login(client, ADMIN_EMAIL, "another-pass-9")


def test_touching_a_token_or_session_survives_a_commit_in_between(app):
    """A request reads (its snapshot), another connection commits (an event delivery), then the request
    notes the token's or session's use: on SQLite that write must not fail with "database is locked"."""

    async def work() -> None:
        config = make_alchemy_config(app.state.settings)
        try:
            async with config.get_session() as s:
                user = await directory.create_user(
                    s, Actor(None, "test"), "toucher@example.test", "toucher-pass-1"
                )
                row, secret = await tokens.create(s, Actor(None, "test"), user, "t")
                web = await sessions.start(s, app.state.settings, user, old_token=None, ip="", user_agent="")
                # Last seen two minutes ago: this request writes the touch.
                await s.execute(sa.update(WebSession).values(last_seen_at=utcnow() - dt.timedelta(minutes=2)))
                await s.commit()
            for resolve in (
                lambda r: tokens.resolve(r, secret),
                lambda r: sessions.resolve(r, app.state.settings, web),
            ):
                async with config.get_session() as request, config.get_session() as other:
                    await request.scalar(sa.select(sa.func.count()).select_from(Tenant))  # the request's read
                    await other.execute(
                        sa.update(User)
                        .where(User.email == "toucher@example.test")
                        .values(display_name=sa.func.lower(User.display_name))
                    )
                    await other.commit()
                    assert await resolve(request) is not None
                    await request.commit()
            # A write request holds SQLite's write lock from its start (BEGIN IMMEDIATE): a touch's commit
            # must not leave the rest of the request in a plain deferred transaction.
            async with config.get_session() as s:
                await s.execute(sa.update(ApiToken).values(last_used_at=None))
                await s.commit()
            async with config.get_session() as request:
                await request.connection(execution_options={SQLITE_WRITE_LOCK: True})
                assert await tokens.resolve(request, secret) is not None
                conn = await request.connection()
                assert conn.sync_connection.get_execution_options().get(SQLITE_WRITE_LOCK)  # type: ignore[union-attr]
                await request.commit()
            async with config.get_session() as s:
                assert (await s.get(ApiToken, row.id)).last_used_at is not None  # type: ignore[union-attr]
                seen = await s.scalar(
                    sa.select(WebSession.last_seen_at).where(WebSession.user_id == row.user_id)
                )
                assert seen is not None and utcnow() - seen < dt.timedelta(minutes=1)
        finally:
            await config.get_engine().dispose()

    asyncio.run(work())
