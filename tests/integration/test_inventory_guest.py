"""The bundled inventory plugin's page code (plugins/inventory/guest, built from source): stocktaking
with the version check and inventory.stock.low, the dashboard's stat cards and chart, and the default
category its on-tenant-created makes when the plugin is first enabled in a tenant."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.access import roles
from app.audit import Actor
from app.identity import directory
from app.installs import lifecycle
from app.plugins import runtime
from app.plugins.packages import read_folder
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.guests import BUNDLED, built_plugin
from tests.helpers import login, logout, post_form, text_of
from tests.integration.test_record_pages import in_db

STOCK = "/t/acme/p/inventory/inventory/stocktaking"
DASH = "/t/acme/p/inventory/inventory/dashboard"
HX = {"HX-Request": "true"}
BOB = ("bob@acme.test", "bob-password-1")


@pytest.fixture(scope="session")
def inventory_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_plugin("inventory", tmp_path_factory.mktemp("bundled"), source=BUNDLED)


@pytest.fixture
def acme(client: Any, app: Any, inventory_package: Path) -> Any:
    """Inventory (with its component) installed; acme exists, Bob is a Member; root enables it in the UI."""

    async def work(s: Any) -> None:
        actor = Actor(None, "test")
        await lifecycle.upload(s, actor, read_folder(inventory_package), app.state.settings, install_now=True)
        tenant = await directory.create_tenant(s, actor, "acme", "Acme")
        bob = await directory.create_user(s, actor, BOB[0], BOB[1])
        await directory.add_member(s, actor, tenant.id, bob, await roles.get_role(s, tenant.id, "Member"))

    in_db(app, work)
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    r = post_form(client, "/t/acme/admin/plugins/inventory/enable", {}, follow_redirects=False)
    assert r.status_code == 303, r.text[:300]
    return client


def rows(app: Any, entity: str) -> list[dict[str, Any]]:
    async def work(s: Any) -> list[dict[str, Any]]:
        tenant = await directory.get_tenant(s, "acme")
        ref = await runtime.entity_in_tenant(s, tenant.id, "inventory", entity)
        found = await s.execute(
            sa.select(ref.table).where(ref.table.c.tenant_id == tenant.id).order_by(ref.table.c.created_at)
        )
        return [dict(r) for r in found.mappings().all()]

    return in_db(app, work)  # type: ignore[no-any-return]


def add_items(client: Any, items: list[tuple[str, int, int]]) -> None:
    for sku, quantity, threshold in items:
        r = post_form(
            client,
            "/t/acme/p/inventory/inventory/items/new",
            {
                "sku": sku,
                "name": f"Item {sku}",
                "quantity": str(quantity),
                "threshold": str(threshold),
                "unit": "pcs",
                "status": "active",
            },
            follow_redirects=False,
        )
        assert r.status_code == 303, text_of(r.text)[:400]


def test_first_enable_creates_the_default_category(acme: Any, app: Any) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not rows(app, "inventory_category"):
        time.sleep(0.2)  # on-tenant-created runs in the background after the enabling commit
    cats = rows(app, "inventory_category")
    assert [(c["code"], c["name"]) for c in cats] == [("GENERAL", "General")]
    assert cats[0]["created_by"] is None  # written as the plugin, not as the admin who enabled it


def test_stocktaking_adjusts_with_the_version_check(acme: Any, app: Any) -> None:
    add_items(acme, [("A-1", 50, 10), ("B-2", 4, 10), ("C-3", 0, 5)])
    page = acme.get(STOCK)
    assert page.status_code == 200, page.text[:300]
    text = text_of(page.text)
    assert (
        "Below threshold 2" in text
        and "B-2" in text
        and "C-3" in text
        and "A-1" not in text.split("Adjust quantity")[0]
    )
    item = next(i for i in rows(app, "inventory_item") if i["sku"] == "A-1")
    before = len(app.state.bus.delivered)
    r = post_form(
        acme,
        STOCK + "/actions/adjust",
        {"item": f"{item['id']}@{item['version']}", "quantity": "3"},
        headers=HX,
    )
    assert r.status_code == 200 and "A-1 counted: 3 pcs" in text_of(r.text)
    updated = next(i for i in rows(app, "inventory_item") if i["sku"] == "A-1")
    assert (updated["quantity"], updated["version"]) == (3, 2)
    low = [e for e in app.state.bus.delivered[before:] if e.type == "inventory.stock.low"]
    assert [e.payload["sku"] for e in low] == ["A-1"]
    # The same (now stale) version again: nothing is saved, the user is told why.
    stale = post_form(
        acme,
        STOCK + "/actions/adjust",
        {"item": f"{item['id']}@{item['version']}", "quantity": "40"},
        headers=HX,
    )
    assert "Someone changed this item" in text_of(stale.text)
    assert next(i for i in rows(app, "inventory_item") if i["sku"] == "A-1")["quantity"] == 3
    bad = post_form(
        acme, STOCK + "/actions/adjust", {"item": f"{item['id']}@2", "quantity": "-1"}, headers=HX
    )
    assert "Enter a whole number of 0 or more." in text_of(bad.text)


def test_members_without_the_ui_permission_get_no_adjust_form(acme: Any, app: Any) -> None:
    add_items(acme, [("B-2", 4, 10)])
    item = rows(app, "inventory_item")[0]
    logout(acme)
    login(acme, *BOB)
    page = acme.get(STOCK)
    assert page.status_code == 200 and "B-2" in text_of(page.text)
    assert "Adjust quantity" not in page.text
    r = post_form(acme, STOCK + "/actions/adjust", {"item": f"{item['id']}@1", "quantity": "9"}, headers=HX)
    assert "You may not apply stocktaking counts." in text_of(r.text)
    assert rows(app, "inventory_item")[0]["quantity"] == 4


def test_dashboard_has_cards_and_a_chart(acme: Any) -> None:
    add_items(acme, [("A-1", 50, 10), ("B-2", 4, 10)])
    r = acme.get(DASH)
    assert r.status_code == 200, r.text[:300]
    text = text_of(r.text)
    assert "Active items 2" in text and "Below threshold 1" in text and "Open purchase orders 0" in text
    assert re.search(r"<svg[^>]*>", r.text) and "Stock by category" in text
    # The page speaks the reader's language (the host passes it to the guest).
    post_form(acme, "/language", {"language": "zh", "next": DASH})
    zh = text_of(acme.get(DASH).text)
    assert "库存仪表板" in zh and "在用物品 2" in zh and "低于阈值 1" in zh and "各类别库存" in zh
    stock = text_of(acme.get(STOCK).text)
    assert "盘点" in stock and "调整数量" in stock and "Adjust quantity" not in stock


def test_reorder_drafts_an_order_and_its_lines_in_one_host_call_or_nothing(acme: Any, app: Any) -> None:
    """The guest writes the order with its lines nested (db.save_with_children through db-insert): the
    lines' permission, formula and the order's rollups apply; refused, nothing of it is kept."""
    add_items(acme, [("A-1", 50, 10), ("B-2", 4, 10), ("C-3", 0, 5)])
    assert "Draft a purchase order" in acme.get(STOCK).text
    r = post_form(acme, STOCK + "/actions/reorder", {}, headers=HX)
    assert r.status_code == 200 and "drafted with 2 lines" in text_of(r.text), text_of(r.text)[:500]
    (order,) = rows(app, "purchase_order")
    lines = sorted(rows(app, "purchase_order_line"), key=lambda ln: ln["position"])
    skus = {i["id"]: i["sku"] for i in rows(app, "inventory_item")}
    assert [(skus[ln["item_id"]], ln["quantity"], ln["position"]) for ln in lines] == [
        ("B-2", 16, 1),
        ("C-3", 10, 2),
    ]
    assert order["line_count"] == 2 and all(ln["order_id"] == order["id"] for ln in lines)
    assert f'href="/t/acme/p/inventory/inventory/purchase/{order["id"]}"' in r.text

    # A buyer who may create orders but not lines gets no button, and the action refuses as a whole.
    async def buyer(s: Any) -> None:
        actor = Actor(None, "test")
        tenant = await directory.get_tenant(s, "acme")
        role = await roles.create_role(s, actor, tenant.id, "Orders only")
        await roles.set_role_grants(
            s,
            actor,
            role,
            ["db.purchase_order.*", "db.purchase_order_line.select", "db.inventory_item.select"],
        )
        user = await directory.create_user(s, actor, "orders@acme.test", "orders-password-1")
        await directory.add_member(s, actor, tenant.id, user, role)

    in_db(app, buyer)
    logout(acme)
    login(acme, "orders@acme.test", "orders-password-1")
    assert "Draft a purchase order" not in acme.get(STOCK).text
    refused = post_form(acme, STOCK + "/actions/reorder", {}, headers=HX)
    text = text_of(refused.text)
    assert (
        "No purchase order was drafted" in text
        and "lines[0]" in text
        and "db.purchase_order_line.insert" in text
    )
    assert len(rows(app, "purchase_order")) == 1 and len(rows(app, "purchase_order_line")) == 2
