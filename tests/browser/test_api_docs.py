"""The API documentation page: reached from the API tokens page, Swagger UI (vendored, no CDN) renders
the tenant's record API and the whole API under the Content-Security-Policy, in English and Chinese
chrome, photographed at 1280 and 390 px."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import VIEWPORT
from tests.browser.test_csp import REPORT_VIOLATIONS, install_inventory
from tests.browser.test_i18n_flow import ALICE, both_widths, seed

pytestmark = pytest.mark.browser


def test_api_docs_page(
    browser: Any, live_server: Any, settings_env: dict[str, str], shot: Any, tmp_path: Path
) -> None:
    seed(settings_env)
    install_inventory(settings_env, tmp_path)
    context = browser.new_context(base_url=live_server.url, viewport=VIEWPORT)
    problems: list[str] = []
    outside: list[str] = []
    context.add_init_script(REPORT_VIOLATIONS)
    try:
        page = context.new_page()
        page.on("console", lambda m: problems.append(m.text) if "CSP violation" in m.text else None)
        page.on(
            "request",
            lambda r: outside.append(r.url) if not r.url.startswith((live_server.url, "data:")) else None,
        )
        page.goto("/login")
        page.get_by_label("Email").fill(ALICE[0])
        page.get_by_label("Password").fill(ALICE[1])
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        page.goto("/t/acme/account/tokens")
        page.get_by_role("link", name="API documentation").click()
        expect(page).to_have_url(f"{live_server.url}/t/acme/api/docs")
        expect(page.get_by_role("heading", name="API documentation", exact=True)).to_be_visible()
        ui = page.locator("#swagger-ui")
        expect(ui.get_by_text("Portal record API: acme")).to_be_visible()
        expect(ui.get_by_text("/api/v1/plugins/inventory/inventory_item", exact=True).first).to_be_visible()
        both_widths(page, shot, "records-en")
        page.locator("#api-doc-choice").select_option("/api/v1/openapi.json")
        expect(ui.get_by_text("/api/v1/me", exact=True).first).to_be_visible()
        page.get_by_role("button", name="中文").click()
        expect(page.get_by_role("heading", name="API 文档", exact=True)).to_be_visible()
        expect(ui.get_by_text("Portal record API: acme")).to_be_visible()
        both_widths(page, shot, "records-zh")
        assert not problems, problems
        assert not outside, outside  # no CDN: every asset is this server's
    finally:
        context.close()
