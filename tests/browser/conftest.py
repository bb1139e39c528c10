"""Browser fixtures: the real app under uvicorn (per database backend) and Debian's Chromium via Playwright.

`live_server` starts `create_app(load_settings(settings_env))` on a free localhost port in a background
thread, once per test and per backend (`settings_env` is parametrized over SQLite and PostgreSQL in
tests/conftest.py). `browser` is one Chromium for all browser tests; `page` is a fresh context (own
cookies, 1280x800) per test; `shot` saves screenshots under test-artifacts/screenshots/. When /usr/bin/chromium (or $PORTAL_CHROMIUM) is missing the browser tests are
skipped, except with CI=true, where that is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from app.core.settings import load_settings
from app.server import create_app
from tests.conftest import IN_CI

CHROMIUM = Path(os.environ.get("PORTAL_CHROMIUM", "/usr/bin/chromium"))  # Debian's; override elsewhere
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
TIMEOUT_MS = 10_000


def run_off_loop(work: Any, timeout: float = 60) -> None:
    """Run `asyncio.run(work())` in a thread (Playwright's loop owns the main thread) and re-raise its
    failure here."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(work())
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{getattr(work, '__qualname__', work)} did not finish in {timeout} s"
    if failures:
        raise failures[0]


@dataclass
class LiveServer:
    url: str
    backend: str  # "sqlite" or "postgresql"


@pytest.fixture
def live_server(settings_env: dict[str, str]) -> Iterator[LiveServer]:
    backend = "sqlite" if settings_env["DATABASE_URL"].startswith("sqlite") else "postgresql"
    app = create_app(load_settings(settings_env))
    config = uvicorn.Config(
        app=app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        access_log=False,
        ws="none",
        timeout_graceful_shutdown=3,
    )
    server = uvicorn.Server(config)  # off the main thread it installs no signal handlers
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            asyncio.run(server.serve())
        except BaseException as exc:  # surfaced below instead of dying silently in the thread
            errors.append(exc)

    thread = threading.Thread(target=serve, name=f"uvicorn-{backend}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)  # polling uvicorn's own flag; nothing to await from this thread
    if not server.started:
        server.should_exit = True
        thread.join(5)
        pytest.fail(f"uvicorn did not start on {backend}: {errors[0] if errors else 'timeout'}")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield LiveServer(url=f"http://127.0.0.1:{port}", backend=backend)
    finally:
        server.should_exit = True
        thread.join(10)
        assert not thread.is_alive(), "uvicorn did not stop"
    if errors:
        raise errors[0]


def _migrate_first(request: pytest.FixtureRequest) -> None:
    """Build the migrated databases the browser tests will use *before* Playwright starts.

    Playwright's sync API keeps an asyncio loop marked as running in the main thread for as long as it
    lives, and the migrations (tests/conftest.py) call asyncio.run(), which refuses to run then. A skip
    or failure here (PostgreSQL unreachable) is cached by pytest and reported by the PostgreSQL tests
    themselves, so the SQLite half still runs.
    """
    wanted = {
        item.callspec.params.get("db_url")
        for item in request.session.items
        if item.get_closest_marker("browser") and hasattr(item, "callspec")
    }
    for backend, fixture in (("sqlite", "sqlite_template"), ("postgresql", "pg_migrated")):
        if backend in wanted:
            with contextlib.suppress(pytest.skip.Exception, pytest.fail.Exception):
                request.getfixturevalue(fixture)


@pytest.fixture(scope="package")
def browser(request: pytest.FixtureRequest) -> Iterator[Any]:
    """One Chromium for all browser tests.

    Package scope rather than session: it is closed right after the last test in tests/browser, so the
    Playwright loop (see _migrate_first) cannot break asyncio.run() in the unit and integration tests
    that run after it. Within tests/browser this is the same single browser a session fixture would be.
    """
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium)"
        if IN_CI:
            pytest.fail(f"browser tests need Chromium in CI: {message}", pytrace=False)
        pytest.skip(message)
    _migrate_first(request)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    context = browser.new_context(base_url=live_server.url, viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture
def shot(request: pytest.FixtureRequest, live_server: LiveServer) -> Any:
    """`shot(page, "members")` saves test-artifacts/screenshots/<test>-<backend>-members.png."""
    test = re.sub(r"[^\w.-]+", "_", request.node.originalname)

    def take(tab: Any, name: str, **kw: Any) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{test}-{live_server.backend}-{name}.png"
        tab.screenshot(path=str(path), **kw)
        return path

    return take
