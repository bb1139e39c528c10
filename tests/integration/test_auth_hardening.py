"""Security hardening of sign-in, sessions and API tokens, against the real app on both databases:
atomic login throttling under real concurrency, sessions ended by password changes and deactivation,
"sign out everywhere", and API token expiry and read-only scope."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier
from typing import Any

import httpx
import sqlalchemy as sa
from click.testing import CliRunner
from litestar.testing import TestClient

from app import cli
from app.core.db import make_alchemy_config
from app.core.models import ApiToken, AuditEntry, LoginAttempt, WebSession, utcnow
from app.identity import tokens
from app.web import auth_pages
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.helpers import bearer, login, post_form, text_of
from tests.integration import test_extensions as ext
from tests.integration.test_record_pages import in_db

# The extkit world's fixtures (a real auth verifier component), for the auto-login race.
extkit_package, world = ext.extkit_package, ext.world
LIMIT = 5  # Settings.login_max_failures
THROTTLED = "Too many failed sign-in attempts"
WRONG = "Email or password is not correct"


async def _attempts(app: Any, attempts: list[tuple[str, str]]) -> list[httpx.Response]:
    """POST /login once per (email, client address), all at once: each attempt its own client (own
    cookies, own address), its own database session, started together on one event loop whose database
    I/O really interleaves."""
    async with app.lifespan():
        clients = [
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, client=(ip, 40000 + i)),
                base_url="http://testserver.local",
            )
            for i, (_, ip) in enumerate(attempts)
        ]
        try:
            tokens = []
            for c in clients:  # the CSRF cookie and its form token, fetched before the race starts
                await c.get("/login")
                tokens.append(c.cookies["portal_csrf"])
            start = asyncio.Event()

            async def one(c: httpx.AsyncClient, email: str, token: str) -> httpx.Response:
                await start.wait()
                return await c.post(
                    "/login",
                    data={"email": email, "password": "wrong-password-9", "next": "/", "_csrf_token": token},
                )

            tasks = [
                asyncio.create_task(one(c, email, t))
                for c, (email, _), t in zip(clients, attempts, tokens, strict=True)
            ]
            await asyncio.sleep(0)
            start.set()
            return list(await asyncio.gather(*tasks))
        finally:
            for c in clients:
                await c.aclose()


def _count_verifications(monkeypatch: Any) -> list[int]:
    """Wrap the real password check the login handler calls, counting how often it runs."""
    calls = [0]
    real = auth_pages.verify_password

    def counting(password_hash: str | None, password: str) -> bool:
        calls[0] += 1
        return real(password_hash, password)

    monkeypatch.setattr(auth_pages, "verify_password", counting)
    return calls


async def _attempt_rows(app: Any) -> list[LoginAttempt]:
    config = make_alchemy_config(app.state.settings)
    try:
        async with config.get_session() as s:
            return list((await s.scalars(sa.select(LoginAttempt))).all())
    finally:
        await config.get_engine().dispose()


def _check_race(app: Any, monkeypatch: Any, attempts: list[tuple[str, str]]) -> None:
    calls = _count_verifications(monkeypatch)
    responses = asyncio.run(_attempts(app, attempts))
    wrong = [r for r in responses if r.status_code == 200 and WRONG in r.text]
    throttled = [r for r in responses if r.status_code == 429 and THROTTLED in r.text]
    assert len(wrong) + len(throttled) == len(attempts), [r.status_code for r in responses]
    assert calls[0] <= LIMIT, f"{calls[0]} passwords checked, limit {LIMIT}"
    assert len(wrong) == calls[0] and len(throttled) == len(attempts) - calls[0]
    # Each evaluated attempt was recorded (before its evaluation); refused ones were not.
    rows = asyncio.run(_attempt_rows(app))
    assert len(rows) == calls[0] and not any(r.succeeded for r in rows)


def test_fifty_parallel_wrong_passwords_for_one_account_check_at_most_five(app, monkeypatch):
    # Fifty addresses, one account: the per-account count must hold.
    _check_race(app, monkeypatch, [(ADMIN_EMAIL, f"10.0.0.{i}") for i in range(50)])


def test_fifty_parallel_attempts_from_one_address_check_at_most_five(app, monkeypatch):
    # One address, fifty accounts (most unknown: they are checked against a dummy hash all the same).
    _check_race(app, monkeypatch, [(f"user{i}@example.test", "10.9.9.9") for i in range(50)])


def test_fifty_parallel_refused_links_run_the_verifier_at_most_five_times(world: dict[str, Any]) -> None:
    """The refusal count is checked and the attempt recorded in one locked step before the verifier runs,
    so parallel links cannot all slip under the limit (threads share the test client's event loop, where
    the 50 requests interleave at every database and verifier call)."""
    w = world
    c = w["client"]
    broken = ext.configure(w, "extkit:bad-identity", "Broken SSO")
    c.patch(f"{ext.CONFIGS}/{broken['id']}", json={"version": 1, "enabled": True}, headers=ext.h(w))
    c.cookies.clear()
    link = f"/t/acme/auto-login/{broken['id']}"
    barrier = Barrier(50)

    def one(_: int) -> int:
        barrier.wait()
        return int(c.get(link, follow_redirects=False).status_code)

    with ThreadPoolExecutor(50) as pool:
        codes = list(pool.map(one, range(50)))
    limit = w["app"].state.settings.login_max_failures
    ran = [r for r in ext.audit_rows(w, "auth.auto_login.refused") if 'with "email" or "user_id"' in r[2]]
    assert len(ran) <= limit and codes.count(403) == len(ran) and codes.count(429) == 50 - len(ran), codes


# --- sessions end with password changes, deactivation, "sign out everywhere" ---------------------------------


def _browser(app: Any) -> TestClient:
    return TestClient(app=app, base_url="http://testserver.local")


def _signed_in(c: TestClient) -> bool:
    return c.get("/t/system/account", follow_redirects=False).status_code == 200


def _cli(settings_env: dict[str, str], *args: str) -> Any:
    """The `portal` command in-process, against the test's database."""
    result = CliRunner().invoke(cli.main, list(args), env=settings_env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_changing_the_own_password_ends_the_other_sessions_and_keeps_this_one(app):
    with _browser(app) as here, _browser(app) as elsewhere:
        login(here, ADMIN_EMAIL, ADMIN_PASSWORD)
        login(elsewhere, ADMIN_EMAIL, ADMIN_PASSWORD)
        r = post_form(
            here,
            "/t/system/account",
            {
                "display_name": "Root",
                "language": "en",
                "current_password": ADMIN_PASSWORD,
                "new_password": "fresh-pass-42",
            },
            follow_redirects=False,
        )
        assert r.status_code == 303
        assert "password changed, 1 other session(s) signed out" in here.get("/t/system/account").text
        assert _signed_in(here)
        assert not _signed_in(elsewhere)
        # A profile save without a new password ends nothing.
        login(elsewhere, ADMIN_EMAIL, "fresh-pass-42")
        post_form(
            here, "/t/system/account", {"display_name": "Root 2", "language": "en"}, follow_redirects=False
        )
        assert _signed_in(here) and _signed_in(elsewhere)


def test_cli_set_password_ends_every_session(app, settings_env):
    with _browser(app) as c:
        login(c, ADMIN_EMAIL, ADMIN_PASSWORD)
        out = _cli(settings_env, "user", "set-password", ADMIN_EMAIL, "--password", "reset-pass-42")
        assert "1 session(s) ended" in out.output
        assert not _signed_in(c)
        login(c, ADMIN_EMAIL, "reset-pass-42")


def test_deactivating_a_user_ends_their_sessions_and_revokes_their_tokens(app, settings_env):
    with _browser(app) as c:  # (the app's start creates the system tenant)
        _cli(
            settings_env,
            "user",
            "create",
            "bob@example.test",
            "--password",
            "bob-password-1",
            "--tenant",
            "system",
            "--role",
            "Admin",
        )
        secret = _cli(settings_env, "token", "create", "--user", "bob@example.test").output.strip()
        login(c, "bob@example.test", "bob-password-1")
        assert c.get("/api/v1/me", headers=bearer(secret)).status_code == 200
        _cli(settings_env, "user", "deactivate", "bob@example.test")
        assert not _signed_in(c)
        assert c.get("/api/v1/me", headers=bearer(secret)).status_code == 401
        # Reactivated, the account signs in afresh; the old session and token stay dead.
        cookie = c.cookies.get("portal_session")
        _cli(settings_env, "user", "activate", "bob@example.test")
        c.cookies.set("portal_session", cookie or "", domain="testserver.local")
        assert not _signed_in(c)
        assert c.get("/api/v1/me", headers=bearer(secret)).status_code == 401
        login(c, "bob@example.test", "bob-password-1")
    rows = in_db(app, lambda s: s.scalars(sa.select(ApiToken)))
    assert [t.revoked_at is not None for t in rows.all()] == [True]
    actions = in_db(
        app, lambda s: s.scalars(sa.select(AuditEntry.action).where(AuditEntry.action.like("user.%activate")))
    )
    assert sorted(actions.all()) == ["user.activate", "user.deactivate"]


def test_sign_out_everywhere_ends_all_sessions_including_this_one(app):
    with _browser(app) as here, _browser(app) as elsewhere:
        login(here, ADMIN_EMAIL, ADMIN_PASSWORD)
        login(elsewhere, ADMIN_EMAIL, ADMIN_PASSWORD)
        assert "Sign out everywhere" in here.get("/t/system/account").text
        # Without the CSRF token nothing happens.
        assert here.post("/t/system/account/sign-out-everywhere", follow_redirects=False).status_code == 403
        assert _signed_in(here) and _signed_in(elsewhere)
        r = post_form(here, "/t/system/account/sign-out-everywhere", {}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login"
        assert "Signed out everywhere: 2 session(s) ended." in text_of(here.get("/login").text)
        assert not _signed_in(here) and not _signed_in(elsewhere)
    count = in_db(app, lambda s: s.scalar(sa.select(sa.func.count()).select_from(WebSession)))
    assert count == 0


# --- API tokens: expiry and read-only scope --------------------------------------------------------------------


def _ui_token(c: TestClient, **form: str) -> tuple[str, str]:
    """Create a token on the token page (as a user would); its secret and the page's text."""
    r = post_form(c, "/t/system/account/tokens", {"name": "export", **form})
    assert r.status_code == 200, r.text[:500]
    match = re.search(r'<code class="secret">([^<]+)</code>', r.text)
    assert match
    return match.group(1), text_of(r.text)


def _expire(app: Any, secret_prefix: str) -> None:
    in_db(
        app,
        lambda s: s.execute(
            sa.update(ApiToken)
            .where(ApiToken.prefix == secret_prefix[:10])
            .values(expires_at=utcnow() - dt.timedelta(minutes=1))
        ),
    )


def _problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["type"] == "about:blank"
    return body


def test_token_page_offers_expiry_and_scope_and_shows_them(client):
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    form = client.get("/t/system/account/tokens").text
    assert re.search(r'<option value="90"\s+selected>90 days</option>', form)
    assert all(f'value="{v}"' in form for v in ("30", "365", "never", "full", "read"))
    full, _ = _ui_token(client)  # the defaults: 90 days, full
    reader, page = _ui_token(client, expires_days="30", scope="read")
    forever, page = _ui_token(client, expires_days="never")
    assert page.count("read-only") == 1
    rows = {t["prefix"]: t for t in client.get("/api/v1/tokens", headers=bearer(full)).json()["items"]}
    now = utcnow()
    for secret, days, scope in ((full, 90, "full"), (reader, 30, "read"), (forever, None, "full")):
        row = rows[secret[:10]]
        assert row["scope"] == scope and row["expired"] is False and row["created_at"]
        if days is None:
            assert row["expires_at"] is None
        else:
            left = dt.datetime.fromisoformat(row["expires_at"]) - now
            assert dt.timedelta(days=days - 1) < left <= dt.timedelta(days=days)
    assert rows[full[:10]]["last_used_at"] is not None  # it made the request above
    r = post_form(client, "/t/system/account/tokens", {"name": "x", "expires_days": "7"})
    assert r.status_code == 422 and "Choose one of the offered expiries" in r.text
    r = post_form(client, "/t/system/account/tokens", {"name": "x", "scope": "admin"})
    assert r.status_code == 422 and "Choose one of: full, read" in r.text
    # An expired token answers 401 and the page says "expired".
    _expire(app_of(client), reader)
    body = _problem(client.get("/api/v1/me", headers=bearer(reader)), 401)
    assert "expired" in body["detail"]
    page = text_of(client.get("/t/system/account/tokens").text)
    assert page.count("expired") == 1
    assert client.get("/api/v1/tokens", headers=bearer(full)).json()["items"][1]["expired"] is True


def app_of(client: TestClient) -> Any:
    return client.app


def test_read_only_token_may_get_and_head_only(client):
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    reader, _ = _ui_token(client, scope="read")
    client.cookies.clear()  # from here on the token alone
    assert client.get("/api/v1/me", headers=bearer(reader)).json()["user"]["email"] == ADMIN_EMAIL
    # (No API route answers HEAD today, so routing says 405 before any check; the scope itself allows it.)
    assert tokens.allows(ApiToken(scope="read"), "HEAD") and not tokens.allows(
        ApiToken(scope="read"), "PATCH"
    )
    refused = [
        client.post("/api/v1/tenants", json={"slug": "acme", "name": "Acme"}, headers=bearer(reader)),
        client.post("/api/v1/tokens", json={"name": "escalate", "scope": "full"}, headers=bearer(reader)),
        client.delete(f"/api/v1/tokens/{uuid.uuid4()}", headers=bearer(reader)),
    ]
    for r in refused:
        assert "read-only" in _problem(r, 403)["detail"]
    assert client.get("/api/v1/tenants", headers=bearer(reader)).json()["total"] == 1  # acme was not created


def test_api_token_creation_carries_the_fields_and_cannot_outlive_its_creator(client):
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    month, _ = _ui_token(client, expires_days="30")
    forever, _ = _ui_token(client, expires_days="never")
    client.cookies.clear()
    made = client.post("/api/v1/tokens", json={"name": "ci"}, headers=bearer(forever)).json()
    assert made["token"].startswith("pt_") and made["scope"] == "full" and made["expired"] is False
    left = dt.datetime.fromisoformat(made["expires_at"]) - utcnow()
    assert dt.timedelta(days=89) < left <= dt.timedelta(days=90)  # the API's default, like the page's
    made = client.post(
        "/api/v1/tokens", json={"name": "ro", "expires_days": None, "scope": "read"}, headers=bearer(forever)
    ).json()
    assert made["expires_at"] is None and made["scope"] == "read"
    # Minted by a 30-day token: "never" and 365 days both end when the minting token does.
    mine = {t["prefix"]: t for t in client.get("/api/v1/tokens", headers=bearer(month)).json()["items"]}
    for days in (None, 365):
        made = client.post(
            "/api/v1/tokens", json={"name": "longer", "expires_days": days}, headers=bearer(month)
        ).json()
        assert made["expires_at"] == mine[month[:10]]["expires_at"]
    body = _problem(
        client.post("/api/v1/tokens", json={"name": "x", "expires_days": 0}, headers=bearer(forever)), 400
    )  # the schema's bounds (documented in the OpenAPI document) refuse it before the handler
    assert any(e["key"] == "expires_days" for e in body["errors"])
    _problem(client.post("/api/v1/tokens", json={"name": "x", "scope": "root"}, headers=bearer(forever)), 400)


def test_cli_token_create_takes_expiry_and_read_only(app, settings_env):
    with _browser(app):  # (the app's start creates the admin)
        plain = _cli(settings_env, "token", "create", "--user", ADMIN_EMAIL).output.strip()
        week = _cli(
            settings_env, "token", "create", "--user", ADMIN_EMAIL, "--expires-days", "7", "--read-only"
        ).output.strip()
    rows = {t.prefix: t for t in in_db(app, lambda s: s.scalars(sa.select(ApiToken))).all()}
    assert rows[plain[:10]].expires_at is None and rows[plain[:10]].scope == "full"
    left = rows[week[:10]].expires_at - utcnow()  # type: ignore[operator]
    assert dt.timedelta(days=6) < left <= dt.timedelta(days=7) and rows[week[:10]].scope == "read"
    bad = CliRunner().invoke(
        cli.main, ["token", "create", "--user", ADMIN_EMAIL, "--expires-days", "0"], env=settings_env
    )
    assert bad.exit_code == 2 and "--expires-days" in bad.output
