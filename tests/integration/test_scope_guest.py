"""The WASM host API obeys the signed-in user's data scope: the bundled inventory guest (built from
source) lists, counts, aggregates and updates only rows the user may see."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from app.access import roles, scopes
from app.access.scopes import ScopeRule
from app.audit import Actor
from app.identity import directory, hierarchy
from app.installs import lifecycle
from app.plugins import runtime
from app.plugins.packages import read_folder
from app.records.service import RecordService
from tests.helpers import login, post_form, text_of
from tests.integration.test_inventory_guest import inventory_package  # noqa: F401 - the built package fixture
from tests.integration.test_record_pages import in_db

STOCK = "/t/acme/p/inventory/inventory/stocktaking"
DASH = "/t/acme/p/inventory/inventory/dashboard"
HX = {"HX-Request": "true"}
PW = "scope-password-1"


def test_guest_pages_see_only_the_users_scope(client: Any, app: Any, inventory_package: Path) -> None:
    async def work(s: Any) -> dict[str, Any]:
        actor = Actor(None, "test")
        await lifecycle.upload(s, actor, read_folder(inventory_package), app.state.settings, install_now=True)
        tenant = await directory.create_tenant(s, actor, "acme", "Acme")
        await lifecycle.enable(s, actor, tenant.id, "inventory")
        sales = await roles.create_role(s, actor, tenant.id, "Sales")
        await roles.set_role_grants(
            s,
            actor,
            sales,
            [
                "db.inventory_item.*",
                "db.inventory_category.select",
                "db.purchase_order.select",
                "ui.inventory.stocktaking-adjust",
            ],
        )
        await scopes.set_role_scopes(
            s, actor, sales, {"*": ScopeRule("subtree")}, await scopes.scope_entities(s)
        )
        ids: dict[str, Any] = {}
        for name in ("carol", "dave", "eve"):
            user = await directory.create_user(s, actor, f"{name}@acme.test", PW, name.title())
            await directory.add_member(s, actor, tenant.id, user, sales)
            ids[name] = user.id
        await hierarchy.set_manager(s, actor, tenant.id, ids["dave"], "carol@acme.test")
        item = await runtime.entity_in_tenant(s, tenant.id, "inventory", "inventory_item")
        rows = {}
        for name, sku in (("carol", "C-1"), ("dave", "D-1"), ("eve", "E-1")):
            svc = RecordService(s, tenant.id, Actor(ids[name], f"{name}@acme.test"), lambda _p: True)
            rows[name] = await svc.insert(
                item, {"sku": sku, "name": f"{name.title()} box", "quantity": 1, "threshold": 5}
            )
        return {"rows": rows, "table": item.table}

    made = in_db(app, work)
    login(client, "carol@acme.test", PW)
    dash = text_of(client.get(DASH).text)
    assert "Active items 2" in dash and "Below threshold 2" in dash
    stock = client.get(STOCK, params={"show": "all"})
    assert stock.status_code == 200, stock.text[:300]
    text = text_of(stock.text)
    assert "C-1" in text and "D-1" in text and "E-1" not in text

    eve = made["rows"]["eve"]
    forged = post_form(
        client, STOCK + "/actions/adjust", {"item": f"{eve['id']}@1", "quantity": "0"}, headers=HX
    )
    assert forged.status_code == 200 and f"No Item with id {eve['id']}" in text_of(forged.text)
    dave = made["rows"]["dave"]
    ok = post_form(
        client, STOCK + "/actions/adjust", {"item": f"{dave['id']}@1", "quantity": "9"}, headers=HX
    )
    assert "D-1 counted: 9" in text_of(ok.text)

    async def quantities(s: Any) -> dict[str, int]:
        table = made["table"]
        return dict((await s.execute(sa.select(table.c.sku, table.c.quantity))).all())

    assert in_db(app, quantities) == {"C-1": 1, "D-1": 9, "E-1": 1}
