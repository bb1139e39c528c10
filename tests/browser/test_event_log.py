"""The event log in a real browser: events raised through the pages appear, the HTMX filters keep
their state in the URL, payloads are collapsed and escaped."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_admin_flow import HOSTILE, add_member, create_tenant, nav, sign_in
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD

pytestmark = pytest.mark.browser


def test_admin_filters_the_event_log(page: Page, shot: Any) -> None:
    sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    create_tenant(page, "acme", "Acme Inc")
    add_member(page, "acme", "dana@acme.test", HOSTILE, "dana-password-1")

    nav(page).get_by_role("link", name="Event log").click()
    expect(page).to_have_url(re.compile(r"/t/acme/admin/events$"))
    rows = page.locator("#rows tbody tr")
    expect(rows).to_have_count(3)  # tenant.created, user.created, user.added (newest first)
    expect(rows.nth(0).locator("td").nth(1)).to_have_text("user.added")

    # Filter by type (HTMX): the rows change, the URL carries the filter, no full reload.
    page.evaluate("window.__same_page = true")
    page.get_by_label("Type").fill("user.")
    page.get_by_label("Type").press("Enter")
    expect(page).to_have_url(re.compile(r"/t/acme/admin/events\?.*\btype=user\.(&|$)"))
    expect(rows).to_have_count(2)
    page.get_by_label("Status").select_option("none")  # nobody subscribes: "no subscribers"
    expect(page).to_have_url(re.compile(r"\?.*\bstatus=none(&|$)"))
    expect(rows).to_have_count(2)
    assert page.evaluate("window.__same_page") is True

    # The payload is collapsed; opened, it shows the hostile display name as text.
    payload = rows.nth(1).locator("details")
    expect(payload.locator("pre")).to_be_hidden()
    payload.locator("summary").click()
    expect(payload.locator("pre")).to_contain_text('"display_name": "<img src=x onerror=alert(1)>"')
    expect(page.locator("img[src=x]")).to_have_count(0)
    shot(page, "filtered")

    # The URL is the state: loading it directly gives the same filtered page.
    page.goto(page.url)
    expect(page.get_by_label("Type")).to_have_value("user.")
    expect(page.get_by_label("Status")).to_have_value("none")
    expect(rows).to_have_count(2)
