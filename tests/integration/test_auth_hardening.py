"""Security hardening of sign-in, sessions and API tokens, against the real app on both databases:
atomic login throttling under real concurrency, sessions ended by password changes and deactivation,
"sign out everywhere", and API token expiry and read-only scope."""

from __future__ import annotations

import asyncio

from typing import Any

import httpx
import sqlalchemy as sa

from app.db.engine import make_alchemy_config
from app.db.models import LoginAttempt
from app.web import auth_pages
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD

LIMIT = 5  # Settings.login_max_failures
THROTTLED = "Too many failed sign-in attempts"
WRONG = "Email or password is not correct"


async def _attempts(app: Any, attempts: list[tuple[str, str]]) -> list[httpx.Response]:
    """POST /login once per (email, client address), all at once: each attempt its own client (own
    cookies, own address), its own database session, started together on one event loop whose database
    I/O really interleaves."""
    async with app.lifespan():
        clients = [httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(ip, 40000 + i)),
                                     base_url="http://testserver.local") for i, (_, ip) in enumerate(attempts)]
        try:
            tokens = []
            for c in clients:  # the CSRF cookie and its form token, fetched before the race starts
                await c.get("/login")
                tokens.append(c.cookies["portal_csrf"])
            start = asyncio.Event()

            async def one(c: httpx.AsyncClient, email: str, token: str) -> httpx.Response:
                await start.wait()
                return await c.post("/login", data={"email": email, "password": "wrong-password-9",
                                                    "next": "/", "_csrf_token": token})

            tasks = [asyncio.create_task(one(c, email, t)) for c, (email, _), t in zip(clients, attempts, tokens, strict=True)]
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
