"""An HTMX request refused for an expired CSRF token, in Chromium on SQLite and PostgreSQL, in English
and Chinese at 1280 and 390 px: nothing is swapped (the ticked rows stay ticked, the list as it was), a
message says nothing was saved, and the fresh token the answer carried makes the second try work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_admin_flow import flash, sign_in
from tests.browser.test_list_page import ALICE, ITEMS, PHONE, rows, seed

pytestmark = pytest.mark.browser


def refused_then_sent(page: Page, shot: Any, language: str, expired: str, deleted: str) -> None:
    page.goto(ITEMS)
    first = rows(page).first
    first.get_by_role("checkbox").check()
    page.context.clear_cookies(name="portal_csrf")
    page.locator("#bulk button[type=submit]").click()
    live = page.locator("#flash-live")
    expect(live).to_be_visible()
    expect(live).to_contain_text(expired)
    expect(rows(page)).to_have_count(25)  # nothing swapped: the list and the ticks are as they were
    expect(first.get_by_role("checkbox")).to_be_checked()
    shot(page, f"csrf-htmx-{language}-1280")
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(page, f"csrf-htmx-{language}-390")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.locator("#bulk button[type=submit]").click()  # the answer's fresh token: this one goes through
    expect(flash(page)).to_contain_text(deleted)


def test_an_htmx_request_with_an_expired_token_keeps_the_page_and_works_when_sent_again(
    page: Page, live_server: Any, settings_env: dict[str, str], tmp_path: Path, shot: Any
) -> None:
    seed(settings_env, tmp_path)
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, *ALICE)
    refused_then_sent(page, shot, "en", "nothing was saved", "Deleted 1 Item")
    page.locator("form.lang-switch button[value=zh]").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh")
    refused_then_sent(page, shot, "zh", "没有保存", "已删除")
