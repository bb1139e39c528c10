"""The bundled inventory plugin's reaction to purchase-order approvals (its real component, built from
plugins/inventory/guest): an order above 1000 gets a task for the requester's manager; the guest's
handle-event notes each decision on the order and sets the final status; an order at or below 1000
skips the step and is still approved by the plugin; other entities' and plugins' approvals are
ignored; a deleted order is logged, not a failure; upgrading from 1.0.0 keeps the orders (both backends)."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app import workflow
from app.access import roles
from app.audit import Actor
from app.core.models import EventDelivery, EventRecord, PluginFault
from app.events import Event, emit
from app.identity import directory, hierarchy
from app.installs import lifecycle
from app.plugins import runtime
from app.plugins.packages import read_folder
from app.records.service import RecordService
from tests.guests import BUNDLED, built_plugin
from tests.helpers import api_token, bearer
from tests.integration.test_events import deliver, writing
from tests.integration.test_record_pages import in_db

ACTOR = Actor(None, "test")
PW = "approval-password-1"
PO = "/api/v1/plugins/inventory/purchase_order"
MANAGER_STEP = {
    "name": "Manager approval",
    "selector": {"kind": "manager"},
    "condition": {
        "kind": "fields",
        "config": {"all": [{"field": "total_amount", "op": "gt", "value": "1000"}]},
    },
}
FINANCE_STEP = {"name": "Finance", "selector": {"kind": "role", "config": {"role": "Finance"}}}


@pytest.fixture(scope="session")
def inventory_built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_plugin("inventory", tmp_path_factory.mktemp("bundled-po"), source=BUNDLED)


def _make_world(app: Any, package: Path, steps: list[dict[str, Any]]) -> dict[str, Any]:
    async def work(s: Any) -> dict[str, Any]:
        await lifecycle.upload(s, ACTOR, read_folder(package), app.state.settings, install_now=True)
        tenant = await directory.create_tenant(s, ACTOR, "acme", "Acme")
        await lifecycle.enable(s, ACTOR, tenant.id, "inventory")
        ids: dict[str, Any] = {"acme": tenant.id}
        grants = {
            "Buyer": ["db.purchase_order.*", "db.supplier.*"],
            "Manager": ["db.purchase_order.select"],
            "Finance": ["db.purchase_order.select"],
        }
        made = {}
        for name, patterns in grants.items():
            made[name] = await roles.create_role(s, ACTOR, tenant.id, name)
            await roles.grant(s, ACTOR, made[name], patterns)
        for name, role in (("alice", "Buyer"), ("max", "Manager"), ("fin", "Finance")):
            user = await directory.create_user(s, ACTOR, f"{name}@acme.test", PW, name.title())
            await directory.add_member(s, ACTOR, tenant.id, user, made[role])
            ids[name] = user.id
        await hierarchy.set_manager(s, ACTOR, tenant.id, ids["alice"], "max@acme.test")
        po = await runtime.entity_in_tenant(s, tenant.id, "inventory", "purchase_order")
        # No end action: setting the status is the plugin's reaction.
        await workflow.save_process(s, tenant.id, ACTOR, po, {"name": "Purchase approval", "steps": steps})
        supplier = await runtime.entity_in_tenant(s, tenant.id, "inventory", "supplier")
        await workflow.save_process(
            s,
            tenant.id,
            ACTOR,
            supplier,
            {
                "name": "Supplier approval",
                "steps": [{"name": "Manager", "selector": {"kind": "role", "config": {"role": "Manager"}}}],
            },
        )
        return ids

    return in_db(app, work)  # type: ignore[no-any-return]


class World:
    def __init__(self, client: Any, app: Any, ids: dict[str, Any]) -> None:
        self.client, self.app, self.ids = client, app, ids
        self.tokens = {n: api_token(client, f"{n}@acme.test", PW) for n in ("alice", "max", "fin")}

    def h(self, who: str) -> dict[str, str]:
        return bearer(self.tokens[who], "acme")

    def order(self, no: str, amount: str, notes: str | None = None) -> dict[str, Any]:
        body = {"order_no": no, "total_amount": amount, **({"notes": notes} if notes else {})}
        r = self.client.post(PO, json=body, headers=self.h("alice"))
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    def submit(self, record_id: str, entity: str = "purchase_order") -> dict[str, Any]:
        r = self.client.post(
            f"/api/v1/plugins/inventory/{entity}/{record_id}/submit", headers=self.h("alice")
        )
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    def tasks(self, who: str) -> list[dict[str, Any]]:
        r = self.client.get("/api/v1/tasks", headers=self.h(who))
        assert r.status_code == 200, r.text
        return r.json()["items"]  # type: ignore[no-any-return]

    def decide(self, who: str, task_id: str, verb: str, comment: str = "") -> dict[str, Any]:
        r = self.client.post(
            f"/api/v1/tasks/{task_id}/{verb}", json={"comment": comment}, headers=self.h(who)
        )
        assert r.status_code == 200, r.text
        deliver(self.client, self.app)
        return r.json()  # type: ignore[no-any-return]

    def record(self, record_id: str, entity: str = "purchase_order") -> dict[str, Any]:
        r = self.client.get(f"/api/v1/plugins/inventory/{entity}/{record_id}", headers=self.h("alice"))
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def events(self, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        async def work(s: Any) -> list[tuple[str, dict[str, Any]]]:
            rows = (
                await s.scalars(
                    sa.select(EventRecord)
                    .where(EventRecord.type.like(prefix + "%"))
                    .order_by(EventRecord.created_at)
                )
            ).all()
            return [(r.type, r.payload) for r in rows]

        return in_db(self.app, work)  # type: ignore[no-any-return]

    def deliveries(self) -> list[tuple[str, str, str]]:
        """(event type, status, message) of every handle-event delivery to inventory, plus its faults."""

        async def work(s: Any) -> list[tuple[str, str, str]]:
            rows = (
                await s.execute(
                    sa.select(EventRecord.type, EventDelivery.status, EventDelivery.message)
                    .join(EventDelivery, EventDelivery.event_id == EventRecord.id)
                    .where(EventDelivery.plugin_id == "inventory", EventDelivery.handler == "handle-event")
                    .order_by(EventRecord.created_at)
                )
            ).all()
            faults = (
                await s.scalars(sa.select(PluginFault.message).where(PluginFault.plugin_id == "inventory"))
            ).all()
            return [(r[0], r[1], r[2]) for r in rows] + [("fault", "failed", m) for m in faults]

        return in_db(self.app, work)  # type: ignore[no-any-return]


@pytest.fixture
def w(client: Any, app: Any, inventory_built: Path) -> World:
    return World(client, app, _make_world(app, inventory_built, [MANAGER_STEP]))


@pytest.fixture
def w2(client: Any, app: Any, inventory_built: Path) -> World:
    return World(client, app, _make_world(app, inventory_built, [MANAGER_STEP, FINANCE_STEP]))


def test_manager_approves_and_the_plugin_sets_the_order_approved_with_a_note(w: World) -> None:
    po = w.order("PO-1", "5000.00", notes="Urgent: stock-out")
    started = w.submit(po["id"])
    assert started["state"] == "running" and [t["step"] for t in started["tasks"]] == ["Manager approval"]
    assert w.tasks("fin") == [] and w.tasks("alice") == []
    [task] = w.tasks("max")  # the requester's manager
    assert task["record_id"] == po["id"]
    done = w.decide("max", task["id"], "approve", "Within budget")
    assert done["instance_state"] == "approved"
    after = w.record(po["id"])
    assert after["status"] == "approved"
    assert (
        after["notes"]
        == "Urgent: stock-out\nApproval: approved by max@acme.test (step Manager approval): Within budget"
    )
    # Three writes by the plugin (submitted when the task was created, the note, then the status), none
    # by the approver: no end action ran.
    assert after["version"] == 4 and after["updated_by"] is None
    assert [p["order_no"] for _, p in w.events("inventory.purchase_order.submitted")] == ["PO-1"]
    approved = w.events("inventory.purchase_order.approved")
    assert [(p["order_no"], p["order_id"], p["total_amount"]) for _, p in approved] == [
        ("PO-1", po["id"], "5000.00")
    ]
    assert w.events("inventory.purchase_order.rejected") == []
    assert w.deliveries() == [
        ("workflow.task.created", "ok", ""),
        ("workflow.task.completed", "ok", ""),
        ("workflow.instance.completed", "ok", ""),
    ]
    # What the guest read from the payloads.
    [(_, completed)] = w.events("workflow.task.completed")
    assert completed["decided_by_email"] == "max@acme.test" and completed["title"] == "PO-1"
    [(_, finished)] = w.events("workflow.instance.completed")
    assert finished["decisions"] == 1 and finished["outcome"] == "approved"


def test_manager_rejects_and_the_plugin_sets_the_order_rejected(w: World) -> None:
    po = w.order("PO-2", "2500.00")
    w.submit(po["id"])
    [task] = w.tasks("max")
    assert (
        w.decide("max", task["id"], "reject", "Too expensive,\n  ask for a quote")["instance_state"]
        == "rejected"
    )
    after = w.record(po["id"])
    assert after["status"] == "rejected"
    assert (
        after["notes"]
        == "Approval: rejected by max@acme.test (step Manager approval): Too expensive, ask for a quote"
    )
    # Submitted when the task was created, then one write: the rejection's note and status together;
    # instance.completed finds nothing left to do.
    assert after["version"] == 3
    assert [p["order_no"] for _, p in w.events("inventory.purchase_order.rejected")] == ["PO-2"]
    assert w.events("inventory.purchase_order.approved") == []
    assert [s for _, s, _ in w.deliveries()] == ["ok", "ok", "ok"]


def test_below_the_threshold_the_step_is_skipped_and_the_plugin_still_approves(w: World) -> None:
    po = w.order("PO-3", "1000.00")  # not above 1000
    started = w.submit(po["id"])
    assert started["state"] == "approved" and started["tasks"] == []
    assert w.tasks("max") == []
    deliver(w.client, w.app)
    assert w.events("workflow.task.completed") == []
    [(_, finished)] = w.events("workflow.instance.completed")
    assert finished["decisions"] == 0
    after = w.record(po["id"])
    assert after["status"] == "approved"
    assert after["notes"] == "Approval: approved without a decision (no approval step applied)"
    assert [p["order_no"] for _, p in w.events("inventory.purchase_order.approved")] == ["PO-3"]


def test_in_two_steps_only_the_final_outcome_approves(w2: World) -> None:
    w = w2
    po = w.order("PO-4", "8000.00")
    w.submit(po["id"])
    [task] = w.tasks("max")
    assert w.decide("max", task["id"], "approve", "ok from me")["instance_state"] == "running"
    halfway = w.record(po["id"])
    assert halfway["status"] == "submitted"  # one approved step is not an approved order
    assert halfway["notes"] == "Approval: approved by max@acme.test (step Manager approval): ok from me"
    assert w.events("inventory.purchase_order.approved") == []
    [fin_task] = w.tasks("fin")
    w.decide("fin", fin_task["id"], "approve")
    after = w.record(po["id"])
    assert after["status"] == "approved"
    assert after["notes"].splitlines() == [
        "Approval: approved by max@acme.test (step Manager approval): ok from me",
        "Approval: approved by fin@acme.test (step Finance)",
    ]
    assert len(w.events("inventory.purchase_order.approved")) == 1


def test_rejection_at_a_later_step_rejects(w2: World) -> None:
    w = w2
    po = w.order("PO-5", "8000.00")
    w.submit(po["id"])
    w.decide("max", w.tasks("max")[0]["id"], "approve")
    w.decide("fin", w.tasks("fin")[0]["id"], "reject", "no budget left")
    after = w.record(po["id"])
    assert (
        after["status"] == "rejected"
        and after["notes"].splitlines()[-1]
        == "Approval: rejected by fin@acme.test (step Finance): no budget left"
    )


def test_approvals_of_other_entities_and_plugins_are_ignored(w: World) -> None:
    r = w.client.post(
        "/api/v1/plugins/inventory/supplier", json={"name": "Northwind", "code": "NW"}, headers=w.h("alice")
    )
    assert r.status_code == 201, r.text
    supplier = r.json()
    w.submit(supplier["id"], "supplier")
    [task] = w.tasks("max")
    assert task["entity"] == "supplier"
    w.decide("max", task["id"], "approve", "fine")
    assert w.record(supplier["id"], "supplier")["version"] == 1  # untouched
    # The same record id and entity name, but another plugin's approval (raised as the base would).
    po = w.order("PO-6", "5000.00")

    async def foreign(s: Any) -> None:
        for kind in ("task.completed", "instance.completed"):
            await emit(
                s,
                Event(
                    f"workflow.{kind}",
                    str(w.ids["acme"]),
                    {
                        "business_id": po["id"],
                        "entity": "purchase_order",
                        "plugin": "erp",
                        "title": "PO-6",
                        "instance_id": str(uuid.uuid4()),
                        "outcome": "rejected",
                        "comment": "not yours",
                        "decided_by_email": "max@acme.test",
                        "step": "X",
                        "decisions": 1,
                    },
                    source="base",
                ),
            )

    in_db(w.app, foreign)
    deliver(w.client, w.app)
    after = w.record(po["id"])
    assert (after["status"], after["notes"], after["version"]) == ("draft", None, 1)
    assert (
        w.events("inventory.purchase_order.approved") == w.events("inventory.purchase_order.rejected") == []
    )
    assert {s for _, s, _ in w.deliveries()} == {"ok"} and len(w.deliveries()) == 5


def test_a_deleted_order_is_logged_not_a_failure(w: World, caplog: pytest.LogCaptureFixture) -> None:
    po = w.order("PO-7", "5000.00")
    w.submit(po["id"])
    deliver(w.client, w.app)  # task.created marks the live order submitted before it is deleted
    [task] = w.tasks("max")
    assert w.client.delete(f"{PO}/{po['id']}", headers=w.h("alice")).status_code == 204
    with caplog.at_level(logging.WARNING, logger="portal.plugin"):
        w.decide("max", task["id"], "approve", "too late")
    gone = [
        r.getMessage()
        for r in caplog.records
        if r.name == "portal.plugin" and "no longer exists" in r.getMessage()
    ]
    assert len(gone) == 2 and f"purchase order {po['id']} (PO-7)" in gone[0]
    assert [s for _, s, _ in w.deliveries()] == ["ok", "ok", "ok"]
    assert (
        w.events("inventory.purchase_order.approved") == w.events("inventory.purchase_order.rejected") == []
    )


def test_a_renumbered_order_is_still_found(w: World) -> None:
    po = w.order("PO-8", "5000.00")
    w.submit(po["id"])
    # The requester cannot change an order awaiting approval (app.workflow.guard); a workflow admin can.
    r = w.client.put(
        f"{PO}/{po['id']}", json={"order_no": "PO-8b", "version": po["version"]}, headers=w.h("alice")
    )
    assert r.status_code == 409 and "awaiting approval" in r.json()["detail"], r.text

    async def rename(s: Any) -> None:
        ref = await runtime.entity_in_tenant(s, w.ids["acme"], "inventory", "purchase_order")
        svc = RecordService(
            s,
            w.ids["acme"],
            ACTOR,
            {workflow.ADMIN_PERMISSION, "db.purchase_order.select", "db.purchase_order.update"}.__contains__,
        )
        current = await svc.get(ref, po["id"])
        await svc.update(ref, po["id"], {"order_no": "PO-8b"}, current["version"])

    deliver(w.client, w.app)  # the plugin marks it submitted first
    writing(w.app, rename)
    w.decide("max", w.tasks("max")[0]["id"], "approve")
    after = w.record(po["id"])
    assert (after["order_no"], after["status"]) == ("PO-8b", "approved")


def _previous_manifest(current: str) -> str:
    """The bundled manifest as 1.0.0 shipped it: auth only, no workflow subscriptions or PO outcome events,
    no line numbers or inline lines (1.2.0 adds the column and the child set), no item photo (1.3.0) nor
    its list column (1.3.1)."""
    children = current[
        current.index("# The order form edits its lines inline") : current.index(
            "]\n", current.index("children = [")
        )
        + 2
    ]
    replaced = current.replace(children, "", 1)
    position = '  { name = "position", type = "integer", label = { en = "Line no.", zh = "行号" } },\n'
    assert children and position in replaced
    replaced = replaced.replace(position, "", 1).replace('sort = "position"', 'sort = "created_at"', 1)
    for old, new in (
        ('version = "1.3.1"', 'version = "1.0.0"'),
        (
            '  { name = "photo", type = "image", label = { en = "Photo", zh = "照片" }, max_size = 5_000_000 },\n',
            "",
        ),
        ('"category_id", "status", "photo"] }', '"category_id", "status"] }'),
        (
            '  # 1.3.1: the photo\'s thumbnail in the list\n  { field = "photo", label = { en = "Photo", zh = "照片" } },\n',
            "",
        ),
        ('modules = ["auth", "workflow"]', 'modules = ["auth"]'),
        (
            'subscribed = ["workflow.task.created", "workflow.task.completed", "workflow.instance.completed"]',
            'subscribed = ["inventory.purchase_order.updated"]',
        ),
        ('  "inventory.purchase_order.approved",\n  "inventory.purchase_order.rejected",\n', ""),
    ):
        assert old in replaced, old
        replaced = replaced.replace(old, new, 1)
    return replaced


def test_upgrade_from_1_0_0_keeps_the_orders(
    client: Any, app: Any, inventory_built: Path, tmp_path: Path
) -> None:
    old = tmp_path / "inventory-1.0.0"
    old.mkdir()
    (old / "plugin.toml").write_text(_previous_manifest((BUNDLED / "inventory" / "plugin.toml").read_text()))

    async def before(s: Any) -> None:
        await lifecycle.upload(s, ACTOR, read_folder(old), app.state.settings, install_now=True, bundled=True)
        tenant = await directory.create_tenant(s, ACTOR, "acme", "Acme")
        await lifecycle.enable(s, ACTOR, tenant.id, "inventory")

    in_db(app, before)

    async def upgrade(s: Any) -> dict[str, Any]:
        tenant = await directory.get_tenant(s, "acme")
        po = await runtime.entity_in_tenant(s, tenant.id, "inventory", "purchase_order")
        row = await RecordService(s, tenant.id, ACTOR, lambda _p: True).insert(
            po, {"order_no": "PO-OLD", "total_amount": "10.00"}
        )
        await s.commit()
        upgraded = await lifecycle.upload(
            s, ACTOR, read_folder(inventory_built), app.state.settings, bundled=True
        )
        return {"version": upgraded.version, "id": str(row["id"])}

    done = in_db(app, upgrade)
    assert done["version"] == "1.3.1"

    async def check(s: Any) -> tuple[Any, ...]:
        tenant = await directory.get_tenant(s, "acme")
        [plugin] = [p for p in await runtime.enabled_for(s, tenant.id) if p.id == "inventory"]
        po = await runtime.entity_in_tenant(s, tenant.id, "inventory", "purchase_order")
        order_no = await s.scalar(
            sa.select(po.table.c.order_no).where(po.table.c.id == uuid.UUID(done["id"]))
        )
        return (
            plugin.manifest.version,
            plugin.manifest.dependencies.modules,
            plugin.manifest.events.subscribed,
            order_no,
        )

    version, modules, subscribed, order_no = in_db(app, check)
    assert (version, modules, order_no) == ("1.3.1", ("auth", "workflow"), "PO-OLD")
    assert subscribed == ("workflow.task.created", "workflow.task.completed", "workflow.instance.completed")
