"""Saved views and boards in Chromium, on SQLite and PostgreSQL: save a list's filters, columns and sort
as a default view and find them again on reopening; drag a purchase order's card to another column of
the board and see the move persist; move a card with the keyboard alone. Screenshots at 1280 and
390 px, in English and Chinese."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from app.access import roles
from app.audit import Actor
from app.core.db import make_alchemy_config
from app.core.settings import load_settings
from app.identity import directory
from app.installs import lifecycle
from app.plugins import runtime
from app.plugins.packages import read_folder
from app.records.service import RecordService
from tests.browser.conftest import VIEWPORT, run_off_loop
from tests.browser.test_admin_flow import flash, sign_in

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ALICE = ("alice@acme.test", "alice-password-1")
ITEMS = "/t/acme/p/inventory/inventory/items"
BOARD = "/t/acme/p/inventory/inventory/purchase/board"
PHONE = {"width": 390, "height": 844}


def seed(settings_env: dict[str, str], tmp_path: Path) -> None:
    """acme with Alice (Admin), inventory (its manifest only), 12 items, a supplier and 4 orders."""
    folder = tmp_path / "inventory"
    shutil.copytree(
        ROOT / "plugins" / "inventory", folder, ignore=shutil.ignore_patterns("plugin.wasm", "guest")
    )

    async def work() -> None:
        settings = load_settings(settings_env)
        config = make_alchemy_config(settings)
        try:
            async with config.get_session() as s:
                actor = Actor(None, "test")
                await lifecycle.upload(s, actor, read_folder(folder), settings, install_now=True)
                tenant = await directory.create_tenant(s, actor, "acme", "Acme")
                await lifecycle.enable(s, actor, tenant.id, "inventory")
                alice = await directory.create_user(s, actor, ALICE[0], ALICE[1], "Alice")
                await directory.add_member(
                    s, actor, tenant.id, alice, await roles.get_role(s, tenant.id, "Admin")
                )
                svc = RecordService(s, tenant.id, Actor(alice.id, alice.email), lambda _p: True)
                items = await runtime.entity_in_tenant(s, tenant.id, "inventory", "inventory_item")
                for i in range(1, 13):
                    await svc.insert(
                        items,
                        {
                            "sku": f"SKU-{i:02d}",
                            "name": f"{'Widget' if i % 3 else 'Gadget'} {i}",
                            "quantity": i,
                            "unit_price": f"{i * 10}.50",
                            "status": "discontinued" if i % 4 == 0 else "active",
                        },
                    )
                suppliers = await runtime.entity_in_tenant(s, tenant.id, "inventory", "supplier")
                supplier = await svc.insert(suppliers, {"code": "NW", "name": "Northwind Traders"})
                orders = await runtime.entity_in_tenant(s, tenant.id, "inventory", "purchase_order")
                for no, status, total in (
                    ("PO-1001", "draft", "250.00"),
                    ("PO-1002", "draft", "1200.00"),
                    ("PO-1003", "submitted", "75.40"),
                    ("PO-1004", "received", "980.00"),
                ):
                    await svc.insert(
                        orders,
                        {
                            "order_no": no,
                            "status": status,
                            "supplier_id": str(supplier["id"]),
                            "total_amount": total,
                        },
                    )
                await s.commit()
        finally:
            await config.get_engine().dispose()

    run_off_loop(work, 60)


def rows(page: Page) -> Any:
    return page.locator("#rows table.records tbody tr")


def both_widths(page: Page, shot: Any, name: str, before_phone: Any = None) -> None:
    shot(page, f"{name}-1280", full_page=True)
    page.set_viewport_size(PHONE)
    if before_phone is not None:
        before_phone()
    shot(page, f"{name}-390", full_page=True)
    page.set_viewport_size(VIEWPORT)


def test_save_a_view_and_reopen_it(
    page: Page, live_server: Any, settings_env: dict[str, str], tmp_path: Path, shot: Any
) -> None:
    seed(settings_env, tmp_path)
    sign_in(page, *ALICE)
    page.goto(ITEMS)
    expect(rows(page)).to_have_count(12)
    page.get_by_label("Search", exact=True).fill("widget")
    expect(rows(page)).to_have_count(8)
    page.locator("#flt-status").select_option("active")
    expect(rows(page)).to_have_count(6)
    # Hide a column with the chooser, sort by SKU.
    page.get_by_text("Columns", exact=True).click()
    page.locator(".column-chooser").get_by_label("Unit price").uncheck()
    expect(page.locator("thead")).not_to_contain_text("Unit price")
    page.locator(".column-chooser summary").click()
    page.locator("thead").get_by_role("link", name="SKU", exact=True).click()
    expect(rows(page).first).to_contain_text("SKU-01")

    page.get_by_text("Views", exact=True).click()
    page.get_by_label("Save the current list as").fill("Active widgets")
    page.get_by_label("Open the list with this view").check()
    both_widths(page, shot, "views-menu-en")
    page.get_by_role("button", name="Save view").click()
    expect(page).to_have_url(re.compile(rf"{ITEMS}\?view=[0-9a-f-]{{36}}$"))
    expect(flash(page)).to_contain_text("Saved the view Active widgets")
    expect(rows(page)).to_have_count(6)
    expect(page.locator("thead")).not_to_contain_text("Unit price")

    # Reopening the list (no query): the default view again, with everything it saved.
    page.goto(ITEMS)
    expect(rows(page)).to_have_count(6)
    expect(rows(page).first).to_contain_text("SKU-01")
    expect(page.locator("thead")).not_to_contain_text("Unit price")
    expect(page.get_by_label("Search", exact=True)).to_have_value("widget")
    page.get_by_text("Views", exact=True).click()
    expect(page.locator("#view-list [aria-current=true]")).to_have_text("Active widgets")
    page.get_by_role("link", name="All records").click()
    expect(rows(page)).to_have_count(12)
    page.goto(ITEMS + "/views")
    expect(page.get_by_role("link", name="Active widgets")).to_be_visible()
    both_widths(page, shot, "views-page-en")

    page.goto(ITEMS)
    page.get_by_role("button", name="中文").click()
    expect(page.get_by_role("heading", name="物品")).to_be_visible()
    expect(rows(page)).to_have_count(6)
    page.get_by_text("视图", exact=True).click()
    both_widths(page, shot, "views-menu-zh")
    page.goto(ITEMS + "/views")
    both_widths(page, shot, "views-page-zh")
    page.get_by_role("button", name="English").click()


def card(page: Page, order_no: str) -> Any:
    return page.locator(".board-card", has=page.get_by_role("link", name=order_no, exact=True))


def column(page: Page, label: str) -> Any:
    return page.locator(".board-column", has=page.locator("h2", has_text=label))


def test_drag_and_keyboard_moves_on_the_board(
    page: Page, live_server: Any, settings_env: dict[str, str], tmp_path: Path, shot: Any
) -> None:
    seed(settings_env, tmp_path)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    sign_in(page, *ALICE)
    page.goto(BOARD)
    expect(column(page, "Draft").locator(".board-card")).to_have_count(2)
    both_widths(page, shot, "board-en")

    # Drag PO-1001 by its handle into Submitted.
    handle = card(page, "PO-1001").locator(".drag-handle")
    target = column(page, "Submitted").locator(".board-cards")
    handle.drag_to(target)
    expect(page.locator("#board .flash")).to_contain_text("Moved Purchase order PO-1001")
    expect(column(page, "Submitted").locator(".board-card")).to_have_count(2)
    page.reload()
    expect(column(page, "Submitted")).to_contain_text("PO-1001")
    expect(column(page, "Draft")).not_to_contain_text("PO-1001")

    # The keyboard alone: focus the card's "Move to" control, pick Approved, press Move.
    select = page.get_by_label("Move PO-1002 to")
    select.focus()
    page.keyboard.press("ArrowDown")  # Draft -> Submitted
    page.keyboard.press("ArrowDown")  # -> Approved
    expect(select).to_have_value("approved")
    page.keyboard.press("Tab")
    expect(card(page, "PO-1002").get_by_role("button", name="Move")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#board .flash")).to_contain_text("Moved Purchase order PO-1002")
    expect(column(page, "Approved")).to_contain_text("PO-1002")
    page.reload()
    expect(column(page, "Approved")).to_contain_text("PO-1002")

    page.get_by_role("button", name="中文").click()
    expect(column(page, "已批准")).to_contain_text("PO-1002")
    both_widths(page, shot, "board-zh")
    page.get_by_role("button", name="English").click()
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems
