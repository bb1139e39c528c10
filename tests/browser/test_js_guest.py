"""The JavaScript example's custom page (sdk/js/example, built from source with componentize-js) in
Chromium at 1280 and 390 px: the table, the form, a refused note shown on the form, an added one listed."""

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

SDK = Path(__file__).resolve().parents[2] / "sdk"
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="session")
def js_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_plugin("example", tmp_path_factory.mktemp("browser-js-guest"), source=SDK / "js")


def _setup(settings_env: dict[str, str], folder: Path) -> None:
    async def work() -> None:
        settings = load_settings(settings_env)
        config = make_alchemy_config(settings)
        try:
            async with config.get_session() as s:
                actor = Actor(None, "test")
                await lifecycle.upload(s, actor, read_folder(folder), settings, install_now=True)
                tenant = await directory.create_tenant(s, actor, "acme", "Acme")
                await lifecycle.enable(s, actor, tenant.id, "js-notes")
                await s.commit()
        finally:
            await config.get_engine().dispose()

    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(work())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    if errors:
        raise errors[0]


def test_js_guest_custom_page(
    page: Page, live_server: Any, settings_env: dict[str, str], js_package: Path, shot: Any
) -> None:
    _setup(settings_env, js_package)
    sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD, lands_on=r"/t/[a-z0-9-]+/$")
    page.goto("/t/acme/p/js-notes/js-notes/board")
    region = page.locator("#plugin-region")
    expect(region).to_contain_text("No notes yet.")
    region.get_by_role("button", name="Add note").click()  # the browser's own check: required
    region.get_by_label("Title").fill("   ")
    region.get_by_role("button", name="Add note").click()
    expect(region).to_contain_text("This field is required")
    region.get_by_label("Title").fill("Written in JavaScript")
    region.get_by_role("button", name="Add note").click()
    expect(page.locator("body")).to_contain_text("Note added")
    expect(region.locator("table")).to_contain_text("Written in JavaScript")
    shot(page, "1280", full_page=True)
    page.set_viewport_size(PHONE)
    page.reload()
    expect(region.locator("table")).to_contain_text("Written in JavaScript")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    shot(page, "390", full_page=True)
