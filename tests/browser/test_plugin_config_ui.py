"""Named plugin configurations in Chromium, on SQLite and PostgreSQL: the tenant admin fills the form the
probe's `[[config.fields]]` generate (an inline error first), keeps two configurations, edits one in the
editor HTMX loads in place, switches the active one, and the probe's WASM page shows what `config-get`
answers after each change. The secret is never sent back to the browser."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_admin_flow import flash, sign_in
from tests.browser.test_custom_pages import probe_package, setup_probe  # noqa: F401 (fixture)
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD

pytestmark = pytest.mark.browser

CONFIG = "/t/acme/admin/plugins/probe/config"
PROBE = "/t/acme/p/probe/probe?mode=config"
SECRET = "browser-S3CRET-4d1e"


def guest_says(page: Page, key: str) -> str:
    page.goto(PROBE)
    text = page.locator("#plugin-region").get_by_text(re.compile(rf"^{key}=")).inner_text()
    return text.split("=", 1)[1]


def test_admin_keeps_two_configurations_and_the_plugin_follows_the_active_one(
    page: Page, live_server: Any, settings_env: dict[str, str], probe_package: Path, shot: Any
) -> None:
    setup_probe(settings_env, probe_package)
    sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert guest_says(page, "greeting") == '"hello"'  # nothing configured: the declared default

    page.goto("/t/acme/admin/plugins/probe")
    page.get_by_role("link", name="Configuration…").click()
    expect(page).to_have_url(re.compile(rf"{CONFIG}$"))
    form = page.locator("#config-form")  # no configuration yet: the new form is open
    expect(form.get_by_role("heading", name="New configuration")).to_be_visible()
    form.get_by_label("Name").fill("Main")
    form.locator("#f-v-greeting").fill("bonjour")
    form.locator("#f-v-limit").fill("lots")
    form.locator("#f-v-currency").select_option("usd")
    form.locator("#f-v-api_key").fill(SECRET)
    form.get_by_role("button", name="Create").click()
    expect(page.locator("#e-limit")).to_have_text("'lots' is not a whole number")
    expect(page.locator("#f-v-greeting")).to_have_value("bonjour")  # kept
    expect(page.locator("#f-v-api_key")).to_have_value("")  # a typed secret is never echoed
    shot(page, "inline-error")
    page.locator("#f-v-limit").fill("7")
    page.locator("#f-v-api_key").fill(SECRET)
    page.locator("#config-form").get_by_role("button", name="Create").click()
    expect(flash(page)).to_contain_text("Saved configuration Main (active)")
    assert guest_says(page, "greeting") == '"bonjour"'
    assert guest_says(page, "limit") == "7" and guest_says(page, "api_key") == f'"{SECRET}"'

    # A second configuration, then the editor of the first loaded in place (HTMX) with the URL pushed.
    page.goto(CONFIG)
    page.get_by_role("link", name="New configuration").click()
    expect(page).to_have_url(re.compile(r"\?new$"))
    editor = page.locator("#config-form")
    editor.get_by_label("Name").fill("Quiet")
    editor.locator("#f-v-greeting").fill("psst")
    editor.locator("#f-v-api_key").fill("other-key")
    editor.get_by_role("button", name="Create").click()
    expect(flash(page)).to_contain_text("Saved configuration Quiet")
    row = page.locator("#config-list tbody tr", has_text="Main")
    expect(row.locator(".badge")).to_have_text("active")
    with page.expect_request(lambda r: "edit=Main" in r.url) as sent:
        row.get_by_role("link", name="Edit").click()
    assert sent.value.headers.get("hx-request") == "true"
    expect(page).to_have_url(re.compile(r"\?edit=Main$"))
    expect(page.locator("#config-form h2")).to_have_text("Edit “Main”")
    expect(page.locator("#f-v-api_key")).to_have_value("")
    expect(page.locator("#config-form")).to_contain_text("•••• (set)")
    assert SECRET not in page.content()
    shot(page, "editor")
    page.set_viewport_size({"width": 390, "height": 844})  # the shared editor on a phone
    shot(page, "editor-390", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.locator("#f-v-greeting").fill("hallo")
    page.locator("#config-form").get_by_role("button", name="Save").click()  # the blank secret is kept
    expect(flash(page)).to_contain_text("Saved configuration Main")
    assert guest_says(page, "greeting") == '"hallo"' and guest_says(page, "api_key") == f'"{SECRET}"'

    # Switch: the plugin reads Quiet from its next call on.
    page.goto(CONFIG)
    page.locator("#config-list tbody tr", has_text="Quiet").get_by_role("button", name="Make active").click()
    expect(flash(page)).to_contain_text("Quiet is now the active configuration")
    expect(page.locator("#config-list")).to_contain_text("The plugin reads Quiet")
    assert guest_says(page, "greeting") == '"psst"' and guest_says(page, "limit") == "10"
    page.goto(CONFIG)
    page.get_by_role("button", name="Use no configuration (defaults)").click()
    expect(flash(page)).to_contain_text("No configuration is active")
    assert guest_says(page, "greeting") == '"hello"' and guest_says(page, "api_key") == "None"
