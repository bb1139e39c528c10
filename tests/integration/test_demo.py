"""`portal serve --demo`'s data (app.demo) on both backends: an older bundled inventory is upgraded,
the demo tenant's buyer submits an order above the threshold, her manager gets the task, approves it,
and the inventory plugin's handle-event marks the order approved with the decision in its notes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from app import workflow
from app.audit import Actor
from app.core.models import Membership, PluginPackage, User
from app.demo import DEMO_PASSWORD, DEMO_PROCESS, ensure_demo
from app.identity import directory
from app.installs import lifecycle
from app.plugins.packages import read_folder
from tests.guests import BUNDLED
from tests.helpers import api_token, bearer
from tests.integration.test_events import deliver
from tests.integration.test_inventory_approval import _previous_manifest
from tests.integration.test_record_pages import in_db

PO = "/api/v1/plugins/inventory/purchase_order"


def test_demo_upgrades_inventory_and_its_buyer_needs_her_managers_approval(
    client: Any, app: Any, tmp_path: Path
) -> None:
    old = tmp_path / "inventory"
    old.mkdir()
    (old / "plugin.toml").write_text(_previous_manifest((BUNDLED / "inventory" / "plugin.toml").read_text()))

    async def setup(s: Any) -> dict[str, Any]:
        # A portal started before inventory 1.1.0: the old bundled version is installed.
        await lifecycle.upload(
            s, Actor(None, "test"), read_folder(old), app.state.settings, bundled=True, install_now=True
        )
        await s.commit()
        assert await ensure_demo(s, app.state.settings)
        assert not await ensure_demo(s, app.state.settings)  # once
        row = await s.scalar(sa.select(PluginPackage).where(PluginPackage.plugin_id == "inventory"))
        tenant = await directory.get_tenant(s, "demo")
        carol = await s.scalar(
            sa.select(Membership)
            .join(User, User.id == Membership.user_id)
            .where(Membership.tenant_id == tenant.id, User.email == "carol@demo.test")
        )
        dave = await directory.find_user(s, "dave@demo.test")
        process = await workflow.process_for(s, tenant.id, "inventory", "purchase_order")
        return {
            "version": row.version,
            "has_wasm": row.has_wasm,
            "reports_to": carol.manager_id,
            "dave": dave.id,
            "process": (process.steps, process.on_approve, process.on_reject) if process else None,
        }

    found = in_db(app, setup)
    assert (found["version"], found["has_wasm"]) == ("1.3.1", True)
    assert found["reports_to"] == found["dave"]
    steps, on_approve, on_reject = found["process"]
    assert [(s["name"], s["selector"]["kind"], s["condition"]["config"]["all"][0]["op"]) for s in steps] == [
        ("Manager approval", "manager", "gt")
    ]
    assert (
        steps[0]["condition"]["config"]["all"][0]["value"]
        == DEMO_PROCESS["steps"][0]["condition"]["config"]["all"][0]["value"]
    )
    # The end actions make the status the approval's (read-only to carol, the Buyer).
    assert on_approve == {"field": "status", "value": "approved"} and on_reject == {
        "field": "status",
        "value": "rejected",
    }

    carol = bearer(api_token(client, "carol@demo.test", DEMO_PASSWORD), "demo")
    dave = bearer(api_token(client, "dave@demo.test", DEMO_PASSWORD), "demo")
    made = client.post(PO, json={"order_no": "PO-0100", "total_amount": "4800.00"}, headers=carol)
    assert made.status_code == 201, made.text
    po = made.json()
    started = client.post(f"{PO}/{po['id']}/submit", headers=carol)
    assert started.status_code == 201 and started.json()["state"] == "running", started.text
    [task] = client.get("/api/v1/tasks", headers=dave).json()["items"]
    assert task["record_id"] == po["id"] and task["requester"] == "carol@demo.test"
    decided = client.post(f"/api/v1/tasks/{task['id']}/approve", json={"comment": "Go ahead"}, headers=dave)
    assert decided.status_code == 200, decided.text
    deliver(client, app)
    after = client.get(f"{PO}/{po['id']}", headers=carol).json()
    assert after["status"] == "approved"
    assert after["notes"] == "Approval: approved by dave@demo.test (step Manager approval): Go ahead"


def test_demo_items_sit_in_their_categories_and_fill_more_than_one_page(client: Any, app: Any) -> None:
    async def setup(s: Any) -> None:
        assert await ensure_demo(s, app.state.settings)

    in_db(app, setup)
    alice = bearer(api_token(client, "alice@demo.test", DEMO_PASSWORD), "demo")
    categories = {
        c["id"]: c["name"]
        for c in client.get("/api/v1/plugins/inventory/inventory_category", headers=alice).json()["items"]
    }
    listed = client.get("/api/v1/plugins/inventory/inventory_item?size=200", headers=alice).json()["items"]
    where = {item["name"]: categories[item["category_id"]] for item in listed}
    assert where["Hex bolt M8"] == "Hardware"
    assert where["A4 paper"] == "Office supplies"
    assert where["USB-C cable 1m"] == "Electronics"
    assert len(listed) > 25  # the list page's default page size: paging shows
    orders = client.get("/api/v1/plugins/inventory/purchase_order?size=200", headers=alice).json()["items"]
    assert len(orders) > 25  # the orders list pages too
    # Each past order's total is what its lines add up to (the rollup agrees with the typed total).
    assert all(o["lines_total"] == o["total_amount"] for o in orders if o["order_no"] != "PO-0001")
    assert {o["status"] for o in orders} >= {"received", "draft"}
