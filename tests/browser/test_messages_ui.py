"""Notifications in Chromium, on SQLite and PostgreSQL: the header bell counts unread messages, the inbox
marks one read in place (HTMX, the bell follows out of band), filters unread with the state in the URL,
opening a message's link marks it read, and a hostile title stays text."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from app import messages
from app.access import roles as role_service
from app.audit import Actor
from app.core.db import make_alchemy_config
from app.core.settings import load_settings
from app.identity import directory
from tests.browser.conftest import run_off_loop
from tests.browser.test_admin_flow import sign_in

pytestmark = pytest.mark.browser

ALICE = ("alice@acme.test", "alice-password-1")
HOSTILE = '<img src=x onerror="window.__pwned=1">'


def seed(settings_env: dict[str, str]) -> None:
    """acme with alice and three messages for her. In a thread: Playwright's loop owns the main thread."""

    async def work() -> None:
        config = make_alchemy_config(load_settings(settings_env))
        try:
            async with config.get_session() as s:
                actor = Actor(None, "test")
                tenant = await directory.create_tenant(s, actor, "acme", "Acme")
                user = await directory.create_user(s, actor, ALICE[0], ALICE[1], "Alice")
                await directory.add_member(
                    s, actor, tenant.id, user, await role_service.get_role(s, tenant.id, "Member")
                )
                await messages.notify(
                    s,
                    tenant.id,
                    [user.id],
                    f"Order {HOSTILE}",
                    f"Body {HOSTILE}",
                    "/t/acme/account",
                    source="workflow",
                    actor=actor,
                )
                for title in ("Second", "Third"):
                    await messages.notify(s, tenant.id, [user.id], title, source="workflow", actor=actor)
                await s.commit()
        finally:
            await config.get_engine().dispose()

    run_off_loop(work, 60)


def bell(page: Page) -> Any:
    return page.locator("#message-bell")


def test_bell_inbox_mark_read_and_open(
    page: Page, live_server: Any, settings_env: dict[str, str], shot: Any
) -> None:
    seed(settings_env)
    sign_in(page, *ALICE)
    expect(bell(page)).to_have_attribute("aria-label", "Messages: 3 unread")
    bell(page).click()
    expect(page).to_have_url(re.compile(r"/t/acme/messages\?unread=1$"))
    items = page.locator("li[data-message]")
    expect(items).to_have_count(3)
    expect(page.get_by_text(f"Order {HOSTILE}")).to_be_visible()  # shown as text, not markup
    assert page.evaluate("window.__pwned") is None
    shot(page, "inbox")

    # mark "Second" read in place: the list (still filtered) and the bell update, the page stays
    url = page.url
    items.filter(has_text="Second").get_by_role("button", name="Mark read").click()
    expect(items).to_have_count(2)
    expect(bell(page)).to_have_attribute("aria-label", "Messages: 2 unread")
    assert page.url == url

    page.get_by_role("link", name="All", exact=True).click()
    expect(page).to_have_url(re.compile(r"/t/acme/messages(\?size=25)?$"))
    expect(items).to_have_count(3)
    expect(items.last).to_contain_text("Second")  # read ones after the unread

    # following the link marks it read
    items.filter(has_text="Order").get_by_role("button", name="Open").click()
    expect(page).to_have_url(re.compile(r"/t/acme/account$"))
    expect(bell(page)).to_have_attribute("aria-label", "Messages: 1 unread")

    page.goto("/t/acme/messages")
    page.get_by_role("button", name="Mark all read").click()
    expect(bell(page)).to_have_attribute("aria-label", "Messages: 0 unread")
    expect(page.locator("li.unread")).to_have_count(0)
    assert page.evaluate("window.__pwned") is None
