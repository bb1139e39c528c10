"""What people see, in Chromium on SQLite and PostgreSQL with the demo's data, in English and Chinese at
1280 and 390 px: the home workspace, the members table with its edit dialog (a refused save keeps the
dialog open with the errors and the input), error pages inside the layout in plain words, a form sent
with an expired CSRF token shown again with what was typed, and the tenant switcher's whole names (on a
phone: a full-width select in the menu, the header still one line)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from app.demo import DEMO_PASSWORD
from tests.browser.conftest import VIEWPORT
from tests.browser.test_admin_flow import edit_member, member_row, sign_in
from tests.browser.test_inventory_approval_flow import _demo
from tests.browser.test_phone import header_on_one_line, page_width

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
T = "/t/demo"


def both_widths(page: Page, shot: Any, name: str) -> None:
    page.set_viewport_size(VIEWPORT)
    shot(page, f"{name}-1280", full_page=True)
    page.set_viewport_size(PHONE)
    assert page_width(page) <= PHONE["width"], f"{name}: wider than a phone"
    assert header_on_one_line(page), f"{name}: the header wraps"
    shot(page, f"{name}-390", full_page=True)
    page.set_viewport_size(VIEWPORT)


def switch_language(page: Page, to: str) -> None:
    page.locator(f"form.lang-switch button[value={to}]").click()
    expect(page.locator("html")).to_have_attribute("lang", to)


def test_workspace_members_errors_and_switcher(
    browser: Browser, live_server: Any, settings_env: dict[str, str], shot: Any
) -> None:
    _demo(settings_env)
    context = browser.new_context(base_url=live_server.url, viewport=VIEWPORT)
    try:
        page = context.new_page()
        sign_in(page, "alice@demo.test", DEMO_PASSWORD)
        page.goto(f"{T}/")
        for section in ("tasks", "messages", "recent", "shortcuts"):
            expect(page.locator(f"#home-{section}")).to_be_visible()
        expect(page.locator("#home-recent li").first).to_be_visible()
        # The switcher shows the whole name (no cut-off): its box is as wide as its text needs.
        switcher = page.locator("#tenant-switch")
        expect(switcher.locator("option:checked")).to_have_text("Demo Company (Admin)")
        assert switcher.evaluate("e => e.scrollWidth <= e.clientWidth + 1")
        both_widths(page, shot, "home-en")

        # Members: a table; the Edit button opens the dialog.
        page.goto(f"{T}/admin/members")
        expect(page.locator("table.members input:visible")).to_have_count(0)  # no inline forms in the rows
        both_widths(page, shot, "members-en")
        dialog = edit_member(page, "bob@demo.test")
        dialog.get_by_label("Manager of bob@demo.test").fill("nobody@nowhere.test")
        dialog.get_by_label("Unit of bob@demo.test").fill("north")
        dialog.get_by_role("button", name="Save").click()
        dialog = page.locator("dialog.member-dialog[open]")
        expect(dialog).to_be_visible()  # refused: still on the members page, the dialog open
        expect(page).to_have_url(f"{live_server.url}{T}/admin/members/" + page.url.rsplit("/", 1)[-1])
        expect(dialog.locator(".field .error")).to_have_count(1)
        expect(dialog.get_by_label("Manager of bob@demo.test")).to_have_value("nobody@nowhere.test")
        expect(dialog.get_by_label("Unit of bob@demo.test")).to_have_value("north")
        both_widths(page, shot, "members-refused-en")
        dialog.get_by_label("Manager of bob@demo.test").fill("alice@demo.test")
        dialog.get_by_role("button", name="Save").click()
        expect(page.locator(".flash")).to_contain_text("Member saved")
        expect(member_row(page, "bob@demo.test")).to_contain_text("alice@demo.test · north")

        # An expired form: its entries come back with a fresh token.
        page.goto(f"{T}/admin/roles")
        page.get_by_label("Name").fill("Night shift")
        page.get_by_label("Description").fill("Works nights")
        context.clear_cookies(name="portal_csrf")
        page.get_by_role("button", name="Create role").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Your form had expired")
        expect(page.locator("nav.side")).to_be_visible()
        resubmit = page.locator("form.resubmit")
        expect(resubmit.locator("input[name=name]")).to_have_value("Night shift")
        both_widths(page, shot, "csrf-expired-en")
        resubmit.get_by_role("button", name="Send again").click()
        expect(page.locator(".flash")).to_be_visible()
        expect(page.get_by_role("heading", level=1)).not_to_have_text("Your form had expired")

        # Chinese: the same pages.
        page.goto(f"{T}/")
        switch_language(page, "zh")
        expect(page.locator("#home-tasks h2")).to_contain_text("我的审批任务")
        both_widths(page, shot, "home-zh")
        page.goto(f"{T}/admin/members")
        page.get_by_role("link", name="编辑 bob@demo.test", exact=True).click()
        expect(page.locator("dialog.member-dialog[open]")).to_contain_text("bob@demo.test")
        both_widths(page, shot, "members-dialog-zh")
        page.goto(f"{T}/no/such/page")
        expect(page.get_by_role("heading", level=1)).to_have_text("页面不存在")
        expect(page.locator("nav.side")).to_be_visible()
        both_widths(page, shot, "not-found-zh")
    finally:
        context.close()


def test_forbidden_page_and_phone_switcher(
    browser: Browser, live_server: Any, settings_env: dict[str, str], shot: Any
) -> None:
    _demo(settings_env)
    context = browser.new_context(base_url=live_server.url, viewport=VIEWPORT)
    try:
        page = context.new_page()
        sign_in(page, "bob@demo.test", DEMO_PASSWORD)
        response = page.goto(f"{T}/admin/members")
        assert response is not None and response.status == 403
        expect(page.get_by_role("heading", level=1)).to_have_text("No access")
        expect(page.locator("main")).to_contain_text("You can't see Members in Demo Company.")
        expect(page.locator("main")).to_contain_text("Ask an admin of Demo Company for access.")
        expect(page.locator("main")).not_to_contain_text("db.")
        expect(page.locator("nav.side")).to_be_visible()
        expect(page.locator("#tenant-switch")).to_be_visible()
        both_widths(page, shot, "forbidden-en")
        switch_language(page, "zh")
        page.goto(f"{T}/admin/members")
        expect(page.get_by_role("heading", level=1)).to_have_text("无权访问")
        expect(page.locator("main")).to_contain_text("Demo Company")
        both_widths(page, shot, "forbidden-zh")

        # On a phone the header's switcher gives way to a full-width one in the menu.
        page.set_viewport_size(PHONE)
        page.goto(f"{T}/")
        expect(page.locator("#tenant-switch")).to_be_hidden()
        assert header_on_one_line(page)
        page.locator("[data-menu-toggle]").click()
        menu_switch = page.locator("#tenant-switch-menu")
        expect(menu_switch).to_be_visible()
        expect(menu_switch.locator("option:checked")).to_have_text("Demo Company (Member)")
        box = menu_switch.bounding_box()
        assert box is not None and box["width"] > 300
        shot(page, "phone-switcher-zh")
    finally:
        context.close()
