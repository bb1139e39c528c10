"""The demo's purchase-order approval in Chromium, on SQLite and PostgreSQL, with the bundled inventory
plugin's real component: carol (Buyer) creates an order above 1000 and submits it; her manager dave
sees the task badge, opens the task and approves with a comment; the order's page then shows the
plugin's reaction (status Approved, the decision in Notes), written by its handle-event after the
decision committed."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from app.core.db import make_alchemy_config
from app.core.settings import load_settings
from app.demo import DEMO_PASSWORD, ensure_demo
from tests.browser.conftest import run_off_loop
from tests.browser.test_admin_flow import sign_in, sign_out

pytestmark = pytest.mark.browser

ORDERS = "/t/demo/p/inventory/inventory/purchase"
NOTE = "Approval: approved by dave@demo.test (step Manager approval): Within budget"


def _demo(settings_env: dict[str, str]) -> None:
    """`portal serve --demo`'s data (bundled plugins built and installed, tenant demo, the process)."""

    async def work() -> None:
        settings = load_settings(settings_env)
        config = make_alchemy_config(settings)
        try:
            async with config.get_session() as s:
                assert await ensure_demo(s, settings)
                await s.commit()
        finally:
            await config.get_engine().dispose()

    run_off_loop(work, 180)


def _reload_until(page: Page, *texts: str, timeout: float = 20.0) -> None:
    """Reload the record page until its fields show every one of `texts` (the plugin's writes land after
    delivery: right after the decision commits, or at the next sweep)."""
    record = page.locator("dl.record")
    deadline = time.monotonic() + timeout
    while not all(t in record.inner_text() for t in texts):
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{texts!r} did not all appear on {page.url}; the page shows: {record.inner_text()!r}"
            )
        page.wait_for_timeout(250)
        page.reload()


def test_buyer_submits_manager_approves_plugin_marks_the_order(
    page: Page, live_server: Any, settings_env: dict[str, str], shot: Any
) -> None:
    _demo(settings_env)

    sign_in(page, "carol@demo.test", DEMO_PASSWORD)
    page.goto(ORDERS + "/new")
    page.get_by_label("Order no.").fill("PO-2001")
    page.get_by_label("Total amount").fill("4800")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name="PO-2001")).to_be_visible()
    expect(page.locator("dl.record")).to_contain_text("Draft")
    page.get_by_role("button", name="Submit for approval").click()
    expect(page.locator("[role=status]")).to_have_text("Submitted for approval")
    expect(page.locator("#approvals [data-approval]")).to_have_attribute("data-approval", "running")
    detail_url = page.url
    sign_out(page)

    sign_in(page, "dave@demo.test", DEMO_PASSWORD)
    badge = page.locator("#task-badge")
    expect(badge).to_have_attribute("aria-label", "Approval tasks: 1 open")
    badge.click()
    expect(page).to_have_url(re.compile(r"/t/demo/tasks$"))
    page.get_by_role("link", name="PO-2001").click()
    expect(page.locator("dl.record")).to_contain_text("4,800.00")
    expect(page.locator("body")).to_contain_text(
        "Carol"
    )  # the requester by name (issue 14: names, not ids or emails)
    page.get_by_label("Comment").fill("Within budget")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("[role=status]")).to_contain_text("PO-2001: approved")
    expect(page.locator("#task-badge")).to_have_attribute("aria-label", "Approval tasks: 0 open")

    # The manager may read orders: the plugin's reaction is on the order itself.
    page.goto(detail_url)
    expect(page.locator("#approvals [data-approval]")).to_have_attribute("data-approval", "approved")
    _reload_until(page, NOTE, "Approved")  # the note, and the status (capitalised: the select's label)
    sign_out(page)

    sign_in(page, "carol@demo.test", DEMO_PASSWORD)
    page.goto(detail_url)
    expect(page.locator("dl.record")).to_contain_text(NOTE)
    expect(page.locator("dl.record")).to_contain_text("Approved")
    shot(page, "approved-by-plugin")
