"""Invitations and the last Admin in Chromium, on SQLite and PostgreSQL: a tenant admin invites an
existing account, sees it pending, the invitee finds it under the bell in their own tenant, opens it and
accepts, and lands in the new tenant; the last Admin cannot step down and is told why."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from app.access import roles as role_service
from app.audit import Actor
from app.core.db import make_alchemy_config
from app.core.settings import load_settings
from app.identity import directory
from tests.browser.conftest import run_off_loop
from tests.browser.test_admin_flow import edit_member, flash, member_row, sign_in, sign_out

pytestmark = pytest.mark.browser

PW = "member-password-1"


def seed(settings_env: dict[str, str]) -> None:
    """demo ("Demo Company") with alice (Admin); other with gus (Member)."""

    async def work() -> None:
        config = make_alchemy_config(load_settings(settings_env))
        try:
            async with config.get_session() as s:
                actor = Actor(None, "test")
                for slug, name, email, role in (
                    ("demo", "Demo Company", "alice@demo.test", "Admin"),
                    ("other", "Other", "gus@other.test", "Member"),
                ):
                    tenant = await directory.create_tenant(s, actor, slug, name)
                    user = await directory.create_user(s, actor, email, PW, email.split("@")[0].title())
                    await directory.add_member(
                        s, actor, tenant.id, user, await role_service.get_role(s, tenant.id, role)
                    )
                await s.commit()
        finally:
            await config.get_engine().dispose()

    run_off_loop(work, 60)


def test_invite_accept_and_last_admin(
    page: Page, live_server: Any, settings_env: dict[str, str], shot: Any
) -> None:
    seed(settings_env)
    sign_in(page, "alice@demo.test", PW, lands_on=r"/t/demo/$")
    page.goto("/t/demo/admin/members")
    details = page.locator("details", has=page.get_by_text("Add a member"))
    details.locator("summary").click()
    details.get_by_label("Email").fill("gus@other.test")
    details.get_by_role("button", name="Add member").click()
    expect(flash(page)).to_have_text("Invitation sent to gus@other.test")
    pending = page.locator("#invitations")
    expect(pending).to_contain_text("gus@other.test")
    expect(member_row(page, "gus@other.test")).to_have_count(0)
    shot(page, "members-pending-invitation")

    # The last Admin is told why she cannot step down.
    edit_member(page, "alice@demo.test").get_by_label("Role of alice@demo.test").select_option("Member")
    page.locator("dialog[open]").get_by_role("button", name="Save").click()
    dialog = page.locator("dialog.member-dialog[open]")  # still open, saying why, the choice kept
    expect(dialog.locator(".field .error")).to_have_text(
        "Demo Company needs at least one Admin; make someone else Admin first."
    )
    expect(dialog.get_by_label("Role of alice@demo.test")).to_have_value("Member")
    expect(member_row(page, "alice@demo.test").locator(".member-role")).to_have_text("Admin")
    shot(page, "members-last-admin-refused")
    dialog.get_by_role("link", name="Cancel").click()
    expect(dialog).to_be_hidden()
    sign_out(page)

    sign_in(page, "gus@other.test", PW, lands_on=r"/t/other/$")
    expect(page.locator("#message-bell")).to_have_attribute("aria-label", "Messages: 1 unread")
    page.locator("#message-bell").click()
    item = page.locator("li[data-message]", has=page.get_by_text("Invitation to join Demo Company"))
    item.get_by_role("button", name="Open").click()
    expect(page).to_have_url(re.compile(r"/invitations/[0-9a-f-]{36}$"))
    expect(page.locator("#invitation")).to_contain_text("invites you to join Demo Company as Member")
    shot(page, "invitation")
    page.get_by_role("button", name="Accept").click()
    expect(page).to_have_url(re.compile(r"/t/demo/$"))
    expect(flash(page)).to_have_text("You joined Demo Company as Member")
