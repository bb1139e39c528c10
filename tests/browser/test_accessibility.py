"""axe-core (vendored: tests/vendor/axe.min.js, version in AXE_VERSION) finds no serious or critical
accessibility violation on the main pages, in English and Chinese, at 1280 px, on both databases.

The app's Content-Security-Policy allows no inline script, so the test's browser context bypasses CSP
(Playwright's `bypass_csp`) to inject axe; the app itself is unchanged.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.test_role_matrix_flow import seed
from tests.integration.test_role_matrix import PW

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parents[1] / "vendor" / "axe.min.js"
AXE_VERSION = "4.14.1"
BLOCKING = {"serious", "critical"}
ITEMS = "/t/acme/p/inventory/inventory/items"


def axe_problems(page: Page, name: str) -> list[str]:
    """The serious and critical violations axe finds on the page as it is now, one line each."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    result = page.evaluate(
        "async () => { const r = await axe.run(document, {resultTypes: ['violations']});"
        " return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))})); }"
    )
    return [
        f"{name}: {v['impact']} {v['id']} ({v['help']}) at {json.dumps(v['nodes'])}"
        for v in result
        if v["impact"] in BLOCKING
    ]


def test_axe_is_the_pinned_version() -> None:
    assert AXE.read_text(encoding="utf-8").startswith(f"/*! axe v{AXE_VERSION}")
    assert (AXE.parent / "axe.LICENSE").exists()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_main_pages_have_no_serious_violation(
    browser: Browser, live_server: Any, settings_env: dict[str, str], tmp_path: Path, lang: str
) -> None:
    ids = seed(settings_env, tmp_path)
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1280, "height": 800}, bypass_csp=True
    )
    problems: list[str] = []
    try:
        page = context.new_page()
        if lang == "zh":
            page.goto("/login")
            page.get_by_role("button", name="中文").click()
            expect(page.locator("html")).to_have_attribute("lang", "zh")
        page.goto("/login")
        problems += axe_problems(page, "login")
        page.locator("input[name=email]").fill("alice@acme.test")
        page.locator("input[name=password]").fill(PW)
        page.locator("input[name=password]").press("Enter")
        expect(page).to_have_url(re.compile(r"/t/acme/$"))
        problems += axe_problems(page, "home")
        # A record made through its form, so that the detail page has fields and history.
        page.goto(f"{ITEMS}/new")
        problems += axe_problems(page, "record form")
        page.locator("[name=sku]").fill("A11Y-1")
        page.locator("[name=name]").fill("Hammer")
        page.locator("[name=name]").press("Enter")
        expect(page).to_have_url(re.compile(rf"{ITEMS}/[0-9a-f-]{{36}}$"))
        problems += axe_problems(page, "record detail")
        for name, url in (
            ("list", ITEMS),
            ("members", "/t/acme/admin/members"),
            ("roles", "/t/acme/admin/roles"),
            ("role matrix", f"/t/acme/admin/roles/{ids['buyer']}"),
            ("audit", "/t/acme/admin/audit"),
            ("events", "/t/acme/admin/events"),
            ("messages", "/t/acme/messages"),
            ("tasks", "/t/acme/tasks"),
            ("plugins", "/t/acme/admin/plugins"),
            ("api tokens", "/t/acme/account/tokens"),
        ):
            response = page.goto(url)
            assert response is not None and response.status == 200, (name, url)
            problems += axe_problems(page, name)
    finally:
        context.close()
    assert not problems, "\n".join(problems)
