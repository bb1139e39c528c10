"""Row formulas and rollups, kept by the record service on every path: a purchase order line's amount is
quantity × unit price, its order's lines total and line count follow every line written, moved, deleted
or restored — also when 50 line edits race — on both databases."""

from __future__ import annotations

import asyncio
import re
import uuid
from decimal import Decimal
from typing import Any

from litestar.testing import TestClient

from app.audit import Actor
from app.core.db import SQLITE_WRITE_LOCK, bind_services, make_alchemy_config
from app.identity import directory
from app.plugins import runtime
from app.records.service import RecordService
from tests.helpers import post_form, text_of
from tests.integration.test_record_pages import ITEMS, in_db, make, tenants  # noqa: F401

ORDERS = "/t/acme/p/inventory/inventory/purchase"
LINES = "/t/acme/p/inventory/inventory/purchase-lines"


def order_row(app: Any, order_id: str) -> dict[str, Any]:
    async def work(s: Any) -> dict[str, Any]:
        acme = await directory.get_tenant(s, "acme")
        ref = await runtime.entity_in_tenant(s, acme.id, "inventory", "purchase_order")
        row = (await s.execute(ref.table.select().where(ref.table.c.id == uuid.UUID(order_id)))).one()
        return dict(row._mapping)

    return in_db(app, work)  # type: ignore[no-any-return]


def test_line_amounts_and_order_totals_follow_every_write(tenants: TestClient, app: Any) -> None:
    client = tenants
    item = make(client, ITEMS, {"sku": "SKU-1", "name": "Bolt", "status": "active"})
    po1 = make(client, ORDERS, {"order_no": "PO-1"})
    po2 = make(client, ORDERS, {"order_no": "PO-2"})
    assert order_row(app, po1)["lines_total"] == 0 and order_row(app, po1)["line_count"] == 0

    # A typed amount is ignored: the formula decides.
    a = make(
        client,
        LINES,
        {"order_id": po1, "item_id": item, "quantity": "3", "unit_price": "2.50", "amount": "999"},
    )
    b = make(client, LINES, {"order_id": po1, "item_id": item, "quantity": "2", "unit_price": "10.01"})
    row = order_row(app, po1)
    assert row["lines_total"] == Decimal("27.52") and row["line_count"] == 2  # 7.50 + 20.02
    page = client.get(f"{ORDERS}/{po1}")
    assert "27.52" in text_of(page.text)
    form = client.get(f"{ORDERS}/{po1}/edit").text
    assert 'name="lines_total"' not in form and "27.52" in form  # shown read-only, not an input

    # Editing a line, moving one to another order, deleting and restoring it.
    edited = post_form(
        client,
        f"{LINES}/{a}",
        {"order_id": po1, "item_id": item, "quantity": "4", "unit_price": "2.50", "version": "1"},
        follow_redirects=False,
    )
    assert edited.status_code == 303
    assert order_row(app, po1)["lines_total"] == Decimal("30.02")
    moved = post_form(
        client,
        f"{LINES}/{b}",
        {"order_id": po2, "item_id": item, "quantity": "2", "unit_price": "10.01", "version": "1"},
        follow_redirects=False,
    )
    assert moved.status_code == 303
    assert (order_row(app, po1)["lines_total"], order_row(app, po1)["line_count"]) == (Decimal("10.00"), 1)
    assert (order_row(app, po2)["lines_total"], order_row(app, po2)["line_count"]) == (Decimal("20.02"), 1)
    assert post_form(client, f"{LINES}/{a}/delete", {}, follow_redirects=False).status_code == 303
    assert (order_row(app, po1)["lines_total"], order_row(app, po1)["line_count"]) == (Decimal("0"), 0)
    assert post_form(client, f"{LINES}/{a}/restore", {}, follow_redirects=False).status_code in (303, 404)

    # The order's own version is untouched: an edit form opened before the lines changed still saves.
    assert order_row(app, po2)["version"] == 1
    saved = post_form(
        client,
        f"{ORDERS}/{po2}",
        {"order_no": "PO-2b", "status": "draft", "version": "1"},
        follow_redirects=False,
    )
    assert saved.status_code == 303, text_of(saved.text)[:400]
    assert order_row(app, po2)["lines_total"] == Decimal("20.02")


def test_fifty_racing_line_edits_leave_the_right_total(tenants: TestClient, app: Any) -> None:
    client = tenants
    item = make(client, ITEMS, {"sku": "SKU-1", "name": "Bolt", "status": "active"})
    po = make(client, ORDERS, {"order_no": "PO-R"})
    lines = [
        make(client, LINES, {"order_id": po, "item_id": item, "quantity": "1", "unit_price": "1.00"})
        for _ in range(50)
    ]
    assert order_row(app, po)["lines_total"] == Decimal("50.00")

    async def race() -> None:
        config = make_alchemy_config(app.state.settings)
        bind_services(config, app.state.services)
        sqlite = app.state.settings.is_sqlite
        try:
            async with config.get_session() as s:
                acme = await directory.get_tenant(s, "acme")
                ref = await runtime.entity_in_tenant(s, acme.id, "inventory", "purchase_order_line")
                tenant_id = acme.id

            async def edit(n: int, line_id: str) -> None:
                async with config.get_session() as s:
                    if sqlite:
                        await s.connection(execution_options={SQLITE_WRITE_LOCK: True})
                    svc = RecordService(s, tenant_id, Actor(None, "race"), lambda _p: True)
                    await svc.update(ref, line_id, {"quantity": str(n + 1)}, 1)
                    await s.commit()

            await asyncio.gather(*(edit(n, line) for n, line in enumerate(lines)))
        finally:
            await config.get_engine().dispose()

    asyncio.run(race())
    row = order_row(app, po)
    assert row["lines_total"] == Decimal(sum(range(1, 51))) and row["line_count"] == 50
    assert re.search(r"1,275\.00|1275\.00", client.get(f"{ORDERS}/{po}").text)
