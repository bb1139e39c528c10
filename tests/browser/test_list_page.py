"""A generated list page in Chromium, on SQLite and PostgreSQL: sorting, opening a record and "View" ask
nothing (the bulk form's confirm prompt belongs to its button only); ticking rows after a search keeps
them ticked (leaving the search box does not reload the rows); bulk delete asks once, returns to the
same search and sort, and its Undo restores the rows; the header icons are SVG; at 390 px the table
scrolls inside its box, not the page. Screenshots at 1280 and 390 px."""

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
from app.plugins import lifecycle, runtime
from app.plugins.packages import read_folder
from app.records.service import RecordService
from tests.browser.conftest import run_off_loop
from tests.browser.test_admin_flow import flash, sign_in

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ALICE = ("alice@acme.test", "alice-password-1")
ITEMS = "/t/acme/p/inventory/inventory/items"
PHONE = {"width": 390, "height": 844}


def seed(settings_env: dict[str, str], tmp_path: Path) -> None:
    """acme with Alice (Admin), inventory (its manifest only) and 30 items."""
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
                items = await runtime.entity_in_tenant(s, tenant.id, "inventory", "inventory_item")
                svc = RecordService(s, tenant.id, Actor(alice.id, alice.email), lambda _p: True)
                for i in range(1, 31):
                    await svc.insert(
                        items,
                        {
                            "sku": f"SKU-{i:02d}",
                            "name": f"{'Widget' if i % 3 else 'Gadget'} with a rather long name {i}",
                            "quantity": i,
                            "unit": "pcs",
                            "unit_price": f"{i * 100}.50",
                            "status": "active",
                        },
                    )
                await s.commit()
        finally:
            await config.get_engine().dispose()

    run_off_loop(work, 60)


def rows(page: Page) -> Any:
    return page.locator("#rows table.records tbody tr")


def test_sort_open_and_bulk_delete_on_one_list(
    page: Page, live_server: Any, settings_env: dict[str, str], tmp_path: Path, shot: Any
) -> None:
    seed(settings_env, tmp_path)
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", on_dialog)
    sign_in(page, *ALICE)
    page.goto(ITEMS)
    expect(rows(page)).to_have_count(25)

    # The header icons are SVG drawn in the text colour (the bell emoji rendered as an empty box).
    bell = page.locator("#message-bell svg.icon-bell")
    expect(bell).to_be_visible()
    assert bell.bounding_box()["width"] >= 12
    assert page.request.get("/static/favicon.svg").headers["content-type"].startswith("image/svg")

    # Sorting asks nothing and marks the header.
    sort_link = page.locator("thead").get_by_role("link", name="SKU", exact=True)
    sort_link.click()
    expect(page).to_have_url(re.compile(r"sort=sku"))
    sku_head = page.locator("thead th", has=page.get_by_role("link", name="SKU", exact=True))
    expect(sku_head).to_have_attribute("aria-sort", "ascending")
    expect(rows(page).first).to_contain_text("SKU-01")
    quantity = rows(page).first.locator("td.num").first
    assert quantity.evaluate("td => getComputedStyle(td).textAlign") == "right"

    # Opening a record by its link, and by "View", asks nothing either.
    rows(page).first.get_by_role("link", name="SKU-01").click()
    expect(page).to_have_url(re.compile(rf"{ITEMS}/[0-9a-f-]{{36}}$"))
    page.go_back()
    expect(rows(page).first).to_contain_text("SKU-01")
    rows(page).nth(1).get_by_role("link", name="View").click()
    expect(page).to_have_url(re.compile(rf"{ITEMS}/[0-9a-f-]{{36}}$"))
    page.go_back()
    assert dialogs == [], dialogs

    # Search, then tick rows: leaving the search box must not reload (and untick) the rows.
    expect(rows(page).first).to_contain_text("SKU-01")
    page.get_by_label("Search").fill("widget")
    expect(page).to_have_url(re.compile(r"q=widget"))
    expect(rows(page)).to_have_count(20)
    fetched: list[str] = []
    page.on("request", lambda r: fetched.append(r.url) if r.url.startswith(live_server.url + ITEMS) else None)
    first, second = rows(page).nth(0), rows(page).nth(1)
    expect(first).to_contain_text("SKU-01")
    first.get_by_role("checkbox").check()
    second.get_by_role("checkbox").check()
    page.wait_for_timeout(700)  # past the search's 300 ms delay
    assert fetched == [], fetched
    expect(first.get_by_role("checkbox")).to_be_checked()
    expect(second.get_by_role("checkbox")).to_be_checked()
    shot(page, "ticked-1280")

    # Bulk delete asks once, stays on the searched, sorted list and offers Undo.
    page.get_by_role("button", name="Delete selected").click()
    expect(flash(page)).to_contain_text("Deleted 2 Item records")
    assert len(dialogs) == 1 and dialogs[0].startswith("Delete the selected item records?"), dialogs
    expect(page).to_have_url(re.compile(r"q=widget"))
    assert "sort=sku" in page.url
    expect(rows(page).first).to_contain_text("SKU-04")
    expect(page.get_by_label("Search")).to_have_value("widget")
    shot(page, "deleted-1280")

    page.set_viewport_size(PHONE)
    shot(page, "deleted-390", full_page=True)
    wrap = page.locator("#rows.table-wrap")
    sizes = page.evaluate(
        """() => ({page: document.documentElement.scrollWidth, view: window.innerWidth,
                   wrap: document.getElementById('rows').scrollWidth, box: document.getElementById('rows').clientWidth})"""
    )
    assert sizes["page"] <= sizes["view"], sizes  # the page itself does not scroll sideways
    assert sizes["wrap"] > sizes["box"], sizes  # the table scrolls inside its box
    expect(wrap).to_be_visible()

    page.get_by_role("button", name="Undo").click()
    expect(flash(page)).to_contain_text("Restored 2 Item records")
    expect(rows(page).first).to_contain_text("SKU-01")
    assert "q=widget" in page.url and len(dialogs) == 1
    shot(page, "restored-390", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})
    shot(page, "restored-1280")

    # A page past the end (say, after deleting the last page's rows) says so and links to the last page.
    page.goto(f"{ITEMS}?page=9&size=10")
    expect(page.locator("#rows")).to_contain_text("No rows on this page")
    expect(page.get_by_text("Create the first one")).to_have_count(0)
    shot(page, "past-the-end-1280")
    page.get_by_role("link", name="Go to the last page").click()
    expect(page).to_have_url(re.compile(r"page=3"))
    expect(rows(page)).to_have_count(10)
