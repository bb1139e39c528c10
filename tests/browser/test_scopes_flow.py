"""Data scopes in a real browser, on SQLite and on PostgreSQL: a tenant Admin puts carol under mid on
the members page (a cycle is refused inline), gives the Sales role a `subtree` default scope on the
role page, and mid then sees his own and carol's items, not his manager's."""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from app.access import roles
from app.audit import Actor
from app.core.db import make_alchemy_config
from app.core.settings import load_settings
from app.identity import directory, hierarchy
from app.installs import lifecycle
from app.plugins import runtime
from app.plugins.packages import read_folder
from app.records.service import RecordService
from tests.browser.test_admin_flow import edit_member, sign_in, sign_out

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
PW = "scope-password-1"
ITEMS = "/t/acme/p/inventory/inventory/items"


def _setup(settings_env: dict[str, str]) -> None:
    """Acme with inventory; alice is Admin; boss, mid (reports to boss) and carol are Sales; one item each."""

    async def work() -> None:
        settings = load_settings(settings_env)
        config = make_alchemy_config(settings)
        actor = Actor(None, "test")
        try:
            async with config.get_session() as s:
                await lifecycle.upload(
                    s, actor, read_folder(ROOT / "plugins" / "inventory"), settings, install_now=True
                )
                acme = await directory.create_tenant(s, actor, "acme", "Acme")
                await lifecycle.enable(s, actor, acme.id, "inventory")
                sales = await roles.create_role(s, actor, acme.id, "Sales")
                await roles.set_role_grants(s, actor, sales, ["db.inventory_item.*"])
                item = await runtime.entity_in_tenant(s, acme.id, "inventory", "inventory_item")
                for n, name in enumerate(("boss", "mid", "carol", "alice"), start=1):
                    user = await directory.create_user(s, actor, f"{name}@acme.test", PW, name.title())
                    role = await roles.get_role(s, acme.id, "Admin" if name == "alice" else "Sales")
                    await directory.add_member(s, actor, acme.id, user, role)
                    svc = RecordService(s, acme.id, Actor(user.id, user.email), lambda _p: True)
                    await svc.insert(item, {"sku": f"SKU-{n}0", "name": f"{name.title()}'s item"})
                await hierarchy.set_manager(
                    s, actor, acme.id, (await directory.find_user(s, "mid@acme.test")).id, "boss@acme.test"
                )
                await s.commit()
        finally:
            await config.get_engine().dispose()

    # Playwright keeps a running loop in the main thread; asyncio.run needs a thread of its own.
    failures: list[BaseException] = []
    thread = threading.Thread(target=lambda: _capture(failures, lambda: asyncio.run(work())))
    thread.start()
    thread.join()
    if failures:
        raise failures[0]


def _capture(failures: list[BaseException], run: Any) -> None:
    try:
        run()
    except BaseException as exc:
        failures.append(exc)


def reporting_form(page: Page, email: str) -> Any:
    return edit_member(page, email)


def test_admin_sets_reporting_line_and_scope_then_member_sees_subtree(
    page: Page, settings_env: dict[str, str], shot: Any
) -> None:
    _setup(settings_env)
    sign_in(page, "alice@acme.test", PW)

    # Before any scope, mid sees every row (the default scope is all).
    page.goto("/t/acme/admin/members")
    carol = reporting_form(page, "carol@acme.test")
    carol.get_by_label("Manager of carol@acme.test").fill("mid@acme.test")
    carol.get_by_label("Unit of carol@acme.test").fill("north")
    carol.get_by_role("button", name="Save").click()
    expect(page.locator(".flash")).to_contain_text("Member saved")
    expect(page.get_by_label("Manager of carol@acme.test")).to_have_value("mid@acme.test")

    boss = reporting_form(page, "boss@acme.test")
    boss.get_by_label("Manager of boss@acme.test").fill("carol@acme.test")
    boss.get_by_role("button", name="Save").click()
    alert = page.locator("dialog.member-dialog[open] .field .error")
    expect(alert).to_contain_text("would create a cycle")
    expect(alert).to_contain_text("carol@acme.test → mid@acme.test → boss@acme.test")
    shot(page, "cycle-refused")

    page.goto("/t/acme/admin/roles")
    page.get_by_role("link", name="Sales").first.click()
    page.get_by_label("Default (every entity)").select_option("subtree")
    page.get_by_role("button", name="Save data scopes").click()
    expect(page.locator(".flash")).to_contain_text("Data scopes saved")
    expect(page.get_by_label("Default (every entity)")).to_have_value("subtree")
    page.locator("#scopes").scroll_into_view_if_needed()
    shot(page, "role-scopes")
    sign_out(page)

    sign_in(page, "mid@acme.test", PW)
    page.goto(ITEMS)
    rows = page.locator("table tbody")
    expect(rows).to_contain_text("SKU-20")
    expect(rows).to_contain_text("SKU-30")
    expect(rows).not_to_contain_text("SKU-10")
    expect(rows).not_to_contain_text("SKU-40")
    expect(page.get_by_text(re.compile(r"2 total"))).to_be_visible()
    shot(page, "mid-sees-subtree")
