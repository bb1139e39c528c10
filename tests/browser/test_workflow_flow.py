"""Approvals in Chromium, on SQLite and PostgreSQL: alice creates a purchase order above 1000 and
submits it; her manager sees the task badge, opens the task, approves with a comment; alice sees the
order approved (the end action set its status through the record service) with the step's history."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from app import workflow
from app.access import roles
from app.audit import Actor
from app.core.db import make_alchemy_config
from app.core.settings import load_settings
from app.identity import directory, hierarchy
from app.installs import lifecycle
from app.plugins import runtime
from app.plugins.packages import read_folder
from tests.browser.conftest import run_off_loop
from tests.browser.test_admin_flow import sign_in, sign_out

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
PW = "flow-password-1"
ORDERS = "/t/acme/p/inventory/inventory/purchase"


def _setup(settings_env: dict[str, str], folder: Path) -> None:
    """acme with inventory (manifest only); alice (Buyer) reports to max (Manager); a process: the
    manager approves orders above 1000, approval sets status = approved."""

    async def work() -> None:
        settings = load_settings(settings_env)
        config = make_alchemy_config(settings)
        actor = Actor(None, "test")
        try:
            async with config.get_session() as s:
                await lifecycle.upload(s, actor, read_folder(folder), settings, install_now=True)
                acme = await directory.create_tenant(s, actor, "acme", "Acme")
                await lifecycle.enable(s, actor, acme.id, "inventory")
                for name, role_name, grants in (
                    ("alice", "Buyer", ["db.purchase_order.*", "db.supplier.select"]),
                    ("max", "Manager", ["db.purchase_order.select"]),
                ):
                    role = await roles.create_role(s, actor, acme.id, role_name)
                    await roles.set_role_grants(s, actor, role, grants)
                    user = await directory.create_user(s, actor, f"{name}@acme.test", PW, name.title())
                    await directory.add_member(s, actor, acme.id, user, role)
                alice = await directory.find_user(s, "alice@acme.test")
                await hierarchy.set_manager(s, actor, acme.id, alice.id, "max@acme.test")  # type: ignore[union-attr]
                entity = await runtime.entity_in_tenant(s, acme.id, "inventory", "purchase_order")
                await workflow.save_process(
                    s,
                    acme.id,
                    actor,
                    entity,
                    {
                        "name": "Purchase approval",
                        "steps": [
                            {
                                "name": "Manager",
                                "selector": {"kind": "manager"},
                                "condition": {
                                    "kind": "fields",
                                    "config": {
                                        "all": [{"field": "total_amount", "op": "gt", "value": "1000"}]
                                    },
                                },
                            }
                        ],
                        "on_approve": {"field": "status", "value": "approved"},
                    },
                )
                await s.commit()
        finally:
            await config.get_engine().dispose()

    run_off_loop(work, 60)


def test_submit_approve_as_manager_and_see_it_approved(
    page: Page, live_server: Any, settings_env: dict[str, str], shot: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "inventory"
    shutil.copytree(
        ROOT / "plugins" / "inventory", folder, ignore=shutil.ignore_patterns("plugin.wasm", "guest")
    )
    _setup(settings_env, folder)

    sign_in(page, "alice@acme.test", PW)
    page.goto(ORDERS + "/new")
    page.get_by_label("Order no.").fill("PO-100")
    page.get_by_label("Total amount").fill("5000")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name="PO-100")).to_be_visible()
    page.get_by_role("button", name="Submit for approval").click()
    expect(page.locator("[role=status]")).to_have_text("Submitted for approval")
    expect(page.locator("#approvals [data-approval]")).to_have_attribute("data-approval", "running")
    expect(page.get_by_role("button", name="Submit for approval")).to_have_count(0)
    detail_url = page.url
    sign_out(page)

    sign_in(page, "max@acme.test", PW)
    badge = page.locator("#task-badge")
    expect(badge).to_have_attribute("aria-label", "Approval tasks: 1 open")
    badge.click()
    expect(page).to_have_url(re.compile(r"/t/acme/tasks$"))
    page.get_by_role("link", name="PO-100").click()
    expect(page.get_by_role("heading", name="The record as submitted")).to_be_visible()
    expect(page.locator("dl.record")).to_contain_text("5,000.00")
    shot(page, "task")
    page.get_by_label("Comment").fill("Within budget")
    page.get_by_role("button", name="Approve").click()
    expect(page).to_have_url(re.compile(r"/t/acme/tasks$"))
    expect(page.locator("[role=status]")).to_contain_text("PO-100: approved")
    expect(page.locator("#task-badge")).to_have_attribute("aria-label", "Approval tasks: 0 open")
    sign_out(page)

    sign_in(page, "alice@acme.test", PW)
    page.goto(detail_url)
    expect(page.locator("#approvals [data-approval]")).to_have_attribute("data-approval", "approved")
    expect(page.locator("#approvals")).to_contain_text("Within budget")
    expect(page.locator("dl.record")).to_contain_text(
        "Approved"
    )  # the end action's status, via the record service
    shot(page, "approved")
