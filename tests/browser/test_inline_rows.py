"""A purchase order's lines edited inline on its form, in Chromium, on SQLite and PostgreSQL, with the
demo's data: add a line (htmx), edit one, remove one, move one; a bad quantity comes back marked on its
row with everything typed kept; the save writes it all and the record page shows the new total. The
form is looked at in English and Chinese, at 1280 and 390 px."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from app.demo import DEMO_PASSWORD
from tests.browser.test_admin_flow import sign_in
from tests.browser.test_inventory_approval_flow import ORDERS, _demo
from tests.browser.test_phone import PHONE, page_width

pytestmark = pytest.mark.browser

WIDE = {"width": 1280, "height": 900}


def rows(page: Page) -> Any:
    return page.locator("#inline-lines tbody[data-inline-row]")


def cell(page: Page, n: int, field: str) -> Any:
    return rows(page).nth(n).locator(f"[name$='-{field}']")


def money(text: str) -> Decimal:
    return Decimal(re.sub(r"[^0-9.]", "", text))


def test_order_form_adds_edits_removes_and_moves_lines(
    page: Page, live_server: Any, settings_env: dict[str, str], shot: Any
) -> None:
    _demo(settings_env)
    page.set_viewport_size(WIDE)
    sign_in(page, "alice@demo.test", DEMO_PASSWORD)
    page.goto(f"{ORDERS}?q=PO-0001")  # the demo has more than a page of orders
    page.get_by_role("link", name="PO-0001").first.click()
    expect(page.get_by_role("heading", name="PO-0001")).to_be_visible()
    record_url = page.url
    page.get_by_role("link", name="Edit").first.click()
    expect(page.get_by_role("group", name="Lines")).to_be_visible()
    expect(rows(page)).to_have_count(3)
    expect(rows(page).nth(0).locator("[data-row-number]")).to_have_text("1")
    first_item = cell(page, 0, "item_id").input_value()
    shot(page, "edit-1280-en", full_page=True)

    # Add a line: htmx brings one empty row, numbered 4, with the quantity's default.
    page.get_by_role("button", name="Add purchase order line").click()
    expect(rows(page)).to_have_count(4)
    expect(rows(page).nth(3).locator("[data-row-number]")).to_have_text("4")
    expect(cell(page, 3, "quantity")).to_have_value("1")
    expect(rows(page).nth(3).locator("input[type=search]")).to_be_focused()  # portal.js: the new row
    cell(page, 3, "item_id").select_option(first_item)
    cell(page, 3, "quantity").fill("2")
    cell(page, 3, "unit_price").fill("3.50")
    # Move it up one place (in the page, no request), edit the first line, remove the second.
    rows(page).nth(3).get_by_role("button", name="Move up").click()
    expect(cell(page, 2, "quantity")).to_have_value("2")
    expect(rows(page).nth(2).locator("[data-row-number]")).to_have_text("3")
    cell(page, 0, "quantity").fill("1.5")
    rows(page).nth(1).get_by_label("Remove").check()
    page.get_by_role("button", name="Save").click()

    # Refused: the bad quantity is marked on its row; everything typed is still there.
    expect(page.locator(".flash.error")).to_contain_text("Please correct the marked field")
    expect(rows(page).nth(0).locator(".error")).to_contain_text("Enter a whole number")
    expect(cell(page, 0, "quantity")).to_have_attribute("aria-invalid", "true")
    expect(cell(page, 0, "quantity")).to_have_value("1.5")
    expect(cell(page, 2, "quantity")).to_have_value("2")
    expect(cell(page, 2, "unit_price")).to_have_value("3.50")
    expect(rows(page).nth(1).get_by_label("Remove")).to_be_checked()
    shot(page, "error-1280-en", full_page=True)

    cell(page, 0, "quantity").fill("11")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(record_url)
    expect(page.locator(".flash")).to_contain_text("saved")
    # The record page: three lines left (the removed one gone, the new one moved above the last), the
    # total from the rollup.
    related = page.locator("section.related").filter(has_text="Lines")
    expect(related.locator("tbody tr")).to_have_count(3)
    page.get_by_role("link", name="Edit").first.click()
    expect(rows(page)).to_have_count(3)
    expect(cell(page, 0, "quantity")).to_have_value("11")
    expect(cell(page, 1, "quantity")).to_have_value("2")
    expect(cell(page, 2, "quantity")).to_have_value("25")
    amounts = [money(rows(page).nth(i).locator("td").nth(4).inner_text()) for i in range(3)]
    assert amounts[1] == Decimal("7.00"), amounts
    total = page.locator(".field", has_text="Lines total").locator(".readonly").inner_text()
    assert money(total) == sum(amounts), (total, amounts)
    shot(page, "saved-1280-en", full_page=True)

    # Chinese, and a phone's width: every row is a card, nothing wider than the screen.
    page.get_by_role("button", name="中文").click()
    expect(page.get_by_role("group", name="明细")).to_be_visible()
    expect(page.get_by_role("button", name="添加采购订单行")).to_be_visible()
    shot(page, "edit-1280-zh", full_page=True)
    page.set_viewport_size(PHONE)
    page.reload()
    expect(rows(page)).to_have_count(3)
    assert page_width(page) <= PHONE["width"], page_width(page)
    shot(page, "edit-390-zh", full_page=True)
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("group", name="Lines")).to_be_visible()
    page.get_by_role("button", name="Add purchase order line").click()
    expect(rows(page)).to_have_count(4)
    assert page_width(page) <= PHONE["width"], page_width(page)
    shot(page, "edit-390-en", full_page=True)


CUSTOMERS = "/t/demo/p/crm/crm/customers"


def test_customer_form_edits_contacts_and_tags_inline(
    page: Page, live_server: Any, settings_env: dict[str, str], shot: Any
) -> None:
    _demo(settings_env)
    page.set_viewport_size(WIDE)
    sign_in(page, "alice@demo.test", DEMO_PASSWORD)
    page.goto(CUSTOMERS)
    page.get_by_role("link", name="ACM").first.click()  # the list links its first column, the code
    page.get_by_role("link", name="Edit").first.click()
    contacts = page.locator("#inline-contacts tbody[data-inline-row]")
    tags = page.locator("#inline-tags tbody[data-inline-row]")
    expect(contacts).to_have_count(1)
    expect(tags).to_have_count(2)
    expect(page.locator("#inline-contacts [data-move]")).to_have_count(0)  # contacts have no order field
    # A second contact (name, job title), one tag less; saved with the customer.
    page.get_by_role("button", name="Add contact").click()
    expect(contacts).to_have_count(2)
    contacts.nth(1).locator("[name$='-name']").fill("Mei Chen")
    contacts.nth(1).locator("[name$='-title']").fill("Purchasing lead")
    tags.nth(1).get_by_label("Remove").check()
    shot(page, "customer-1280-en", full_page=True)
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash")).to_contain_text("saved")
    expect(page.locator("section.related").filter(has_text="Contacts")).to_contain_text("Mei Chen")
    page.get_by_role("link", name="Edit").first.click()
    expect(contacts).to_have_count(2)
    expect(tags).to_have_count(1)
    page.get_by_role("button", name="中文").click()
    expect(page.get_by_role("group", name="联系人")).to_be_visible()
    shot(page, "customer-1280-zh", full_page=True)
    page.set_viewport_size(PHONE)
    page.reload()
    assert page_width(page) <= PHONE["width"], page_width(page)
    shot(page, "customer-390-zh", full_page=True)
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("group", name="Tags")).to_be_visible()
    shot(page, "customer-390-en", full_page=True)
