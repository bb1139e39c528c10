"""Custom pages rendered from a real component's UI JSON, in Chromium: hostile text and URLs in every
slot stay inert, buttons post through HTMX and the region shows the plugin's answer or its failure."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from app.audit import Actor
from app.core.db import make_alchemy_config
from app.core.settings import load_settings
from app.identity import directory
from app.installs import lifecycle
from app.plugins.packages import read_folder
from tests.browser.test_admin_flow import sign_in
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.guests import built_plugin

pytestmark = pytest.mark.browser


@pytest.fixture(scope="session")
def probe_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_plugin("probe", tmp_path_factory.mktemp("browser-guests"))


def setup_probe(settings_env: dict[str, str], folder: Path) -> None:
    """Install and enable the probe in acme. In a thread: Playwright's loop owns the main thread."""

    async def work() -> None:
        settings = load_settings(settings_env)
        config = make_alchemy_config(settings)
        try:
            async with config.get_session() as s:
                actor = Actor(None, "test")
                await lifecycle.upload(s, actor, read_folder(folder), settings, install_now=True)
                tenant = await directory.create_tenant(s, actor, "acme", "Acme")
                await lifecycle.enable(s, actor, tenant.id, "probe")
                await s.commit()
        finally:
            await config.get_engine().dispose()

    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: _run(work, errors))
    thread.start()
    thread.join(60)
    if errors:
        raise errors[0]


def _run(work: Any, errors: list[BaseException]) -> None:
    try:
        asyncio.run(work())
    except BaseException as exc:
        errors.append(exc)


def test_hostile_ui_json_stays_inert(
    page: Page, live_server: Any, settings_env: dict[str, str], probe_package: Path, shot: Any
) -> None:
    setup_probe(settings_env, probe_package)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD, lands_on=r"/t/[a-z0-9-]+/$")
    page.goto("/t/acme/p/probe/probe?mode=xss")
    region = page.locator("#plugin-region")
    expect(region).to_contain_text("<script>window.__pwned=1</script>")  # shown as text
    assert page.evaluate("() => window.__pwned") is None
    assert page.locator("#plugin-region script").count() == 0
    assert page.locator("#plugin-region img").count() == 0
    hrefs = page.eval_on_selector_all("#plugin-region [href]", "els => els.map(e => e.getAttribute('href'))")
    assert not [h for h in hrefs if h.strip().lower().startswith(("javascript:", "data:"))], hrefs
    shot(page, "xss")
    # The button posts the plugin's (hostile) data through HTMX; the answer replaces the region, inertly.
    page.locator("#plugin-region button").first.click()
    expect(region.locator(".error-panel[data-kind='error']")).to_contain_text("unknown action noop")
    assert page.evaluate("() => window.__pwned") is None
    assert dialogs == []


def test_action_round_trip_and_failure_panel(
    page: Page, live_server: Any, settings_env: dict[str, str], probe_package: Path
) -> None:
    setup_probe(settings_env, probe_package)
    sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD, lands_on=r"/t/[a-z0-9-]+/$")
    page.goto("/t/acme/p/probe/probe?mode=hello")
    expect(page.locator("#plugin-region")).to_contain_text("notes=0")
    page.goto("/t/acme/p/probe/probe?mode=err")
    panel = page.locator(".error-panel")
    expect(panel).to_contain_text("probe")
    expect(panel).to_contain_text("the probe refuses")
    expect(page.locator("body")).not_to_contain_text("Traceback")
