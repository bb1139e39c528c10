"""Every main page under the Content-Security-Policy, in Chromium, on SQLite and PostgreSQL: no inline
script, handler or style is refused (a `securitypolicyviolation` or a console error fails the test),
htmx runs without eval, and the behaviour moved to static/portal.js still works (tenant switcher, filter
form, select-all, Enter in a picker, confirmation before delete)."""

from __future__ import annotations

import re
import shutil
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
from tests.browser.test_admin_flow import sign_in
from tests.browser.test_custom_pages import probe_package, setup_probe  # noqa: F401 (fixture)
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ITEMS = "/t/acme/p/inventory/inventory/items"
# Reported from inside the page: init scripts are not subject to the page's CSP.
REPORT_VIOLATIONS = """document.addEventListener("securitypolicyviolation", (e) =>
  console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI} ${e.sample || ""}`));"""
# Console errors about HTTP statuses (the favicon's 404, the probe action's deliberate 502), not policy.
HTTP_STATUS_NOISE = ("Failed to load resource", "Response Status Error Code")


def install_inventory(settings_env: dict[str, str], target: Path) -> None:
    """The bundled inventory plugin as manifest only (generated pages), enabled in acme."""
    folder = target / "inventory"
    shutil.copytree(
        ROOT / "plugins" / "inventory", folder, ignore=shutil.ignore_patterns("plugin.wasm", "guest")
    )

    async def work() -> None:
        config = make_alchemy_config(load_settings(settings_env))
        try:
            async with config.get_session() as s:
                actor = Actor(None, "test")
                await lifecycle.upload(
                    s, actor, read_folder(folder), load_settings(settings_env), install_now=True
                )
                await lifecycle.enable(s, actor, (await directory.get_tenant(s, "acme")).id, "inventory")
                await s.commit()
        finally:
            await config.get_engine().dispose()

    run_off_loop(work)


def visit(page: Page, url: str) -> None:
    response = page.goto(url)
    assert response is not None and response.status == 200, f"{url}: {response and response.status}"
    assert "script-src 'self'" in response.headers.get("content-security-policy", ""), url
    expect(page.locator("main")).to_be_visible()


def htmx_get(page: Page, action: Any, fragment: str) -> None:
    """Do `action` and wait for the htmx GET it triggers (its URL contains `fragment`)."""
    with page.expect_response(
        lambda r: fragment in r.url and r.request.headers.get("hx-request") == "true"
    ) as got:
        action()
    assert got.value.status == 200


def test_every_main_page_runs_under_the_csp(
    page: Page, live_server: Any, settings_env: dict[str, str], probe_package: Path, tmp_path: Path
) -> None:
    setup_probe(settings_env, probe_package)  # acme, with the probe's WASM custom page and its config fields
    install_inventory(settings_env, tmp_path)
    problems: list[str] = []
    page.context.add_init_script(REPORT_VIOLATIONS)
    page.on(
        "console",
        lambda m: (
            problems.append(f"{page.url} {m.type}: {m.text}")
            if (m.type == "error" and not m.text.startswith(HTTP_STATUS_NOISE))
            or "Content Security Policy" in m.text
            else None
        ),
    )
    page.on("pageerror", lambda e: problems.append(f"{page.url} pageerror: {e}"))
    dialogs: list[str] = []

    sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    visit(page, "/t/acme/")
    # The tenant switcher (data-navigate-tenant) goes to the chosen tenant at once.
    page.locator("#tenant-switch").select_option("system")
    expect(page).to_have_url(re.compile(r"/t/system/$"))
    visit(page, "/t/system/admin/tenants")

    # Generated record pages: form, detail, list with search, filters, select-all, import, dashboard.
    visit(page, f"{ITEMS}/new")
    page.locator("#f-sku").fill("CSP-1")
    page.locator("#f-name").fill("Widget")
    page.get_by_role("button", name="Create").click()
    expect(page).to_have_url(re.compile(rf"{ITEMS}/[0-9a-f-]{{36}}$"))
    expect(page.locator("main")).to_contain_text("Widget")
    visit(page, ITEMS)
    htmx_get(page, lambda: page.locator("#q").fill("Widg"), "q=Widg")
    # Leaving the search box fires the filter form's `change` trigger: one more rows request, which would
    # replace the rows (and their checkboxes) under the select-all click below. Let it land first.
    page.locator("#q").blur()
    page.wait_for_load_state("networkidle")
    expect(page.locator("#rows")).to_contain_text("Widget")
    assert not re.search(r"[?&]\w+=(&|$)", page.url), f"empty filters kept in {page.url}"  # data-drop-empty
    assert page.locator("#q").get_attribute("value") == "Widg"  # data-sync-attributes
    select_all = page.get_by_label("Select all on this page")
    select_all.check()
    expect(page.locator("input[name=ids]").first).to_be_checked()
    select_all.uncheck()
    expect(page.locator("input[name=ids]").first).not_to_be_checked()
    visit(page, f"{ITEMS}/import")
    visit(page, "/t/acme/p/inventory/inventory/dashboard")
    visit(page, "/t/acme/p/inventory/inventory/purchase-lines/new")
    picker = page.locator("input[data-no-enter-submit]").first
    picker.press("Enter")  # must not submit the form
    expect(page).to_have_url(re.compile(r"/purchase-lines/new$"))

    # The probe's WASM page; its button posts through htmx and the region shows the answer.
    visit(page, "/t/acme/p/probe/probe?mode=xss")
    page.locator("#plugin-region button").first.click()
    expect(page.locator("#plugin-region .error-panel")).to_contain_text("unknown action noop")

    # Administration.
    visit(page, "/t/acme/admin/members")
    htmx_get(page, lambda: page.locator("#q").fill("root"), "q=root")
    visit(page, "/t/acme/admin/roles")
    page.get_by_role("link", name="Admin", exact=True).first.click()
    expect(page).to_have_url(re.compile(r"/admin/roles/[0-9a-f-]{36}$"))
    for url in (
        "/t/acme/admin/audit",
        "/t/acme/admin/events",
        "/t/acme/admin/explain",
        "/t/acme/account/tokens",
        "/t/acme/account",
        "/t/acme/admin/plugins",
        "/t/acme/admin/plugins/probe",
        "/t/acme/admin/plugins/probe/config",
        "/t/acme/admin/extensions",
        "/t/acme/admin/workflow",
        "/t/acme/tasks",
        "/t/acme/messages",
    ):
        visit(page, url)
    # A confirmation moved from onsubmit= to data-confirm: dismissing it keeps the plugin installed.
    page.goto("/t/acme/admin/plugins")
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.locator("#plugin-inventory").get_by_role("button", name="Uninstall").click()
    assert dialogs and dialogs[0].startswith("Uninstall inventory?"), dialogs
    expect(page.locator("#plugin-inventory")).to_contain_text("installed")
    assert problems == [], "\n".join(problems)

    # The detector works: an injected inline script and style attribute are refused and reported.
    page.evaluate("""() => { const s = document.createElement("script"); s.textContent = "window.__ran = 1";
                             document.body.append(s); document.querySelector("main").setAttribute("style", "color:red"); }""")
    for _ in range(40):  # the reports arrive as console events, asynchronously
        if any("script-src" in p for p in problems) and any("style-src" in p for p in problems):
            break
        page.wait_for_timeout(50)
    assert page.evaluate("() => window.__ran") is None
    assert any("script-src" in p for p in problems) and any("style-src" in p for p in problems), problems
