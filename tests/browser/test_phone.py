"""Phone-sized screens in Chromium, on SQLite and PostgreSQL, with the demo's data: at 390x844 every main
page fits the width (no horizontal scroll of the page itself), the header stays on one line, and the menu
is hidden behind the header's menu button until it is opened (and closes again, also with Escape).
Without script the same button still opens the menu (its link's :target). At 1280 px the menu is always
shown and the button is not."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from app.demo import DEMO_PASSWORD
from tests.browser.test_admin_flow import sign_in
from tests.browser.test_inventory_approval_flow import ORDERS, _demo

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
T = "/t/demo"
PAGES = {  # name: path; the record page is reached from the list (its id is the database's)
    "home": f"{T}/",
    "list": ORDERS,
    "form": f"{ORDERS}/new",
    "members": f"{T}/admin/members",
    "roles": f"{T}/admin/roles",
    "plugins": f"{T}/admin/plugins",
    "messages": f"{T}/messages",
    "tasks": f"{T}/tasks",
}


WIDE = """() => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
  .slice(0, 8).map(e => `${e.tagName}.${e.className} right=${Math.round(e.getBoundingClientRect().right)}`)"""


def page_width(page: Page) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth"))


ONE_LINE = """() => {
  const boxes = [...document.querySelectorAll('header.top > *')]
    .map(e => e.getBoundingClientRect()).filter(r => r.width > 1 && r.height > 1);
  return Math.max(...boxes.map(r => r.top)) < Math.min(...boxes.map(r => r.bottom));
}"""


def header_on_one_line(page: Page) -> bool:
    """Every visible item of the header shares a line with every other one (none wrapped below)."""
    return bool(page.evaluate(ONE_LINE))


def assert_fits(page: Page, shot: Any, name: str) -> None:
    """The page does not scroll sideways, the header is one line, the menu is closed."""
    assert page_width(page) <= PHONE["width"], (
        f"{name}: {page.url} is {page_width(page)} px wide: {page.evaluate(WIDE)}"
    )
    assert header_on_one_line(page), f"{name}: the header wraps"
    expect(page.locator("nav.side")).to_be_hidden()
    expect(page.get_by_role("button", name="Menu")).to_be_visible()
    shot(page, f"phone-{name}", full_page=True)


def test_phone_pages_fit_and_menu_opens(
    browser: Browser, live_server: Any, settings_env: dict[str, str], shot: Any
) -> None:
    _demo(settings_env)
    context = browser.new_context(base_url=live_server.url, viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        page.goto("/login")
        assert page_width(page) <= PHONE["width"]
        shot(page, "phone-login")
        sign_in(page, "alice@demo.test", DEMO_PASSWORD)

        for name, path in PAGES.items():
            page.goto(path)
            expect(page.locator("main h1").first).to_be_visible()
            assert_fits(page, shot, name)

        page.goto(f"{ORDERS}?q=PO-0001")  # the demo has more than a page of orders
        page.get_by_role("link", name="PO-0001").first.click()
        expect(page.get_by_role("heading", name="PO-0001")).to_be_visible()
        assert_fits(page, shot, "record")

        # The menu button opens the navigation and closes it again.
        button = page.get_by_role("button", name="Menu")
        nav = page.locator("nav.side")
        expect(button).to_have_attribute("aria-expanded", "false")
        expect(button).to_have_attribute("aria-controls", "side-nav")
        button.click()
        expect(button).to_have_attribute("aria-expanded", "true")
        expect(nav).to_be_visible()
        expect(nav.get_by_role("link", name="Members")).to_be_visible()
        assert page_width(page) <= PHONE["width"]
        shot(page, "phone-menu-open")
        button.click()
        expect(button).to_have_attribute("aria-expanded", "false")
        expect(nav).to_be_hidden()
        assert "#" not in page.url  # the script handled it: no :target jump

        # Escape closes it and gives the focus back to the button; a menu link navigates.
        button.click()
        expect(nav).to_be_visible()
        page.keyboard.press("Escape")
        expect(nav).to_be_hidden()
        expect(button).to_be_focused()
        page.keyboard.press("Space")
        expect(nav).to_be_visible()
        nav.get_by_role("link", name="Roles").click()
        expect(page).to_have_url(re.compile(r"/t/demo/admin/roles$"))
        expect(page.locator("nav.side")).to_be_hidden()

        # In Chinese (longer "English" switch, translated label) the header still fits on one line.
        page.get_by_role("button", name="中文").click()
        menu_zh = page.get_by_role("button", name="菜单")
        expect(menu_zh).to_be_visible()
        assert header_on_one_line(page)
        assert page_width(page) <= PHONE["width"]
        menu_zh.click()
        expect(page.locator("nav.side").get_by_role("link", name="成员")).to_be_visible()
        shot(page, "phone-zh-menu-open")
    finally:
        context.close()


def test_phone_menu_without_script(
    browser: Browser, live_server: Any, settings_env: dict[str, str], shot: Any
) -> None:
    _demo(settings_env)
    context = browser.new_context(base_url=live_server.url, viewport=PHONE, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto("/login")
        page.get_by_label("Email").fill("alice@demo.test")
        page.get_by_label("Password").fill(DEMO_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(re.compile(r"/t/demo/$"))
        nav = page.locator("nav.side")
        expect(nav).to_be_hidden()
        page.get_by_role("button", name="Menu").click()
        expect(page).to_have_url(re.compile(r"#side-nav$"))
        expect(nav).to_be_visible()
        assert page_width(page) <= PHONE["width"]
        shot(page, "phone-menu-no-script")
    finally:
        context.close()


def test_desktop_menu_always_shown(
    page: Page, live_server: Any, settings_env: dict[str, str], shot: Any
) -> None:
    _demo(settings_env)
    sign_in(page, "alice@demo.test", DEMO_PASSWORD)
    for path in (f"{T}/", ORDERS):
        page.goto(path)
        expect(page.locator("nav.side")).to_be_visible()
        expect(page.locator("nav.side").get_by_role("link", name="Members")).to_be_visible()
        expect(page.get_by_role("button", name="Menu")).to_be_hidden()
        expect(page.get_by_role("button", name="Sign out")).to_have_text("Sign out")
        expect(page.locator("header.top .user-name")).to_have_text("Alice Admin")
        assert header_on_one_line(page)
    shot(page, "desktop")
