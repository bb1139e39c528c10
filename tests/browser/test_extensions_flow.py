"""Extension points in Chromium, on SQLite and PostgreSQL: a tenant admin configures a plugin's record
validator through the generated form (an inline error first), a clerk's generated record form then shows
the validator's error next to the field, and an auto-login verifier (created disabled, then enabled)
signs a member in from a signed link."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
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
from tests.browser.conftest import run_off_loop
from tests.browser.test_admin_flow import flash, sign_in
from tests.integration.test_extensions import extkit_package  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser

PASSWORD = "member-password-1"
ADMIN = "/t/acme/admin/extensions"
SECRET = "partner-S3CRET-77"


def setup_extkit(settings_env: dict[str, str], folder: Path) -> None:
    """extkit enabled in acme; ann is acme's Admin. In a thread: Playwright's loop owns the main thread."""

    from app.access import roles

    async def work() -> None:
        settings = load_settings(settings_env)
        config = make_alchemy_config(settings)
        try:
            async with config.get_session() as s:
                actor = Actor(None, "test")
                await lifecycle.upload(s, actor, read_folder(folder), settings, install_now=True)
                tenant = await directory.create_tenant(s, actor, "acme", "Acme")
                await lifecycle.enable(s, actor, tenant.id, "extkit")
                ann = await directory.create_user(s, actor, "ann@corp.test", PASSWORD, "Ann")
                await directory.add_member(
                    s, actor, tenant.id, ann, await roles.get_role(s, tenant.id, "Admin")
                )
                await s.commit()
        finally:
            await config.get_engine().dispose()

    run_off_loop(work, 60)


def test_admin_configures_a_validator_and_a_verifier_and_both_take_effect(
    page: Page, live_server: Any, settings_env: dict[str, str], extkit_package: Path, shot: Any
) -> None:
    setup_extkit(settings_env, extkit_package)
    sign_in(page, "ann@corp.test", PASSWORD)
    page.goto(ADMIN)
    page.get_by_role("link", name="code-pattern (extkit)").click()  # the editor loads in place (HTMX)
    form = page.locator("#extension-form")
    expect(form.get_by_role("heading")).to_contain_text("New configuration")
    expect(page).to_have_url(re.compile(r"\?new=extkit"))
    form.get_by_label("Name").fill("Order codes")
    form.get_by_role("button", name="Create").click()
    expect(page.locator("#e-pattern")).to_have_text("is required")
    shot(page, "inline-error")
    page.set_viewport_size({"width": 390, "height": 844})  # the shared editor on a phone
    shot(page, "inline-error-390", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.locator("#f-v-pattern").fill(r"[A-Z]{3}-\d+")
    page.locator("#extension-form").get_by_role("button", name="Create").click()
    expect(flash(page)).to_contain_text("Saved Order codes (enabled)")

    # The plugin's generated form now refuses a code that does not match, inline.
    page.goto("/t/acme/p/extkit/extkit/orders/new")
    page.get_by_label("Title").fill("Browser order")
    page.get_by_label("Code").fill("lower-1")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#e-code")).to_contain_text(r"must match [A-Z]{3}-\d+")
    shot(page, "validator-error")
    page.get_by_label("Code").fill("ABC-12")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#e-code")).to_have_count(0)

    # An auto-login verifier starts disabled; once enabled, its link signs ann in.
    page.goto(ADMIN)
    page.get_by_role("link", name="hmac-token (extkit)").click()
    expect(page.locator("#extension-form")).to_contain_text("An auto-login verifier starts disabled")
    page.locator("#extension-form").get_by_label("Name").fill("Partner SSO")
    page.locator("#f-v-secret").fill(SECRET)
    page.locator("#extension-form").get_by_role("button", name="Create").click()
    expect(flash(page)).to_contain_text("Saved Partner SSO (disabled)")
    row = page.locator("tr", has=page.get_by_text("Partner SSO"))
    config_id = row.locator("code").first.inner_text().strip()
    row.get_by_role("button", name="Enable").click()
    expect(flash(page)).to_contain_text("Partner SSO is now enabled")
    page.get_by_role("button", name="Sign out").click()
    expiry = int(time.time()) + 300
    signature = hmac.new(SECRET.encode(), f"ann@corp.test.{expiry}".encode(), hashlib.sha256).hexdigest()
    page.goto(f"/t/acme/auto-login/{config_id}?token=ann@corp.test.{expiry}.{signature}&next=/t/acme/tasks")
    expect(page).to_have_url(re.compile(r"/t/acme/tasks$"))
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
