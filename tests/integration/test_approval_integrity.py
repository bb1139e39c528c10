"""Approvals cannot be bypassed (both backends), with the bundled inventory plugin's real component:
- the field a process's end action sets (purchase order `status`) is read-only to users without
  `ui.workflow.set-purchase_order-status`: the generated form shows it without an input, the JSON API and
  a CSV import refuse another value than the default (create) or the current one (edit); a tenant
  Admin (`*`) sets it;
- a record with an open approval cannot be changed by its requester — JSON API 409 problem details, the
  form's inline message (input kept), the WASM host API's db-update error — while a workflow admin may,
  and the workflow's end action and the inventory plugin's event-handler writes still go through."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from app import workflow
from app.access import roles
from app.identity import directory, hierarchy
from app.installs import lifecycle
from app.plugins import runtime
from app.plugins.packages import read_folder
from tests.helpers import api_token, bearer, login, post_form, text_of
from tests.integration.test_events import deliver, event_packages  # noqa: F401  (session fixture)
from tests.integration.test_inventory_approval import ACTOR, MANAGER_STEP, PO, PW, inventory_built  # noqa: F401
from tests.integration.test_record_pages import in_db

LOCKED = (
    "This purchase order is awaiting approval (step Manager approval); it can't be changed until the "
    "approval is decided."
)
PAGE = "/t/acme/p/inventory/inventory/purchase"
ITEMS = "/t/acme/p/inventory/inventory/items"
END = {
    "on_approve": {"field": "status", "value": "approved"},
    "on_reject": {"field": "status", "value": "rejected"},
}


def _world(app: Any, package: Path, probe: Path | None = None) -> None:
    async def work(s: Any) -> None:
        await lifecycle.upload(s, ACTOR, read_folder(package), app.state.settings, install_now=True)
        if probe is not None:
            await lifecycle.upload(s, ACTOR, read_folder(probe), app.state.settings, install_now=True)
        tenant = await directory.create_tenant(s, ACTOR, "acme", "Acme")
        await lifecycle.enable(s, ACTOR, tenant.id, "inventory")
        if probe is not None:
            await lifecycle.enable(s, ACTOR, tenant.id, "probe")
        grants = {
            "Buyer": [
                "db.purchase_order.*",
                "db.supplier.*",
                "db.inventory_item.*",
                "db.inventory_category.*",
                "db.probe_note.*",
            ],
            "Manager": ["db.purchase_order.select", "db.probe_note.select"],
            "Boss": ["*"],
            "Flow": ["db.purchase_order.*", "ui.workflow.admin"],
            "Setter": ["db.purchase_order.*", "ui.workflow.set-purchase_order-status"],
        }
        made = {}
        for name, patterns in grants.items():
            made[name] = await roles.create_role(s, ACTOR, tenant.id, name)
            await roles.grant(s, ACTOR, made[name], patterns)
        for name, role in (
            ("alice", "Buyer"),
            ("max", "Manager"),
            ("boss", "Boss"),
            ("flo", "Flow"),
            ("pat", "Setter"),
        ):
            user = await directory.create_user(s, ACTOR, f"{name}@acme.test", PW, name.title())
            await directory.add_member(s, ACTOR, tenant.id, user, made[role])
            if name == "alice":
                alice = user.id
        await hierarchy.set_manager(s, ACTOR, tenant.id, alice, "max@acme.test")
        po = await runtime.entity_in_tenant(s, tenant.id, "inventory", "purchase_order")
        await workflow.save_process(
            s, tenant.id, ACTOR, po, {"name": "Purchase approval", "steps": [MANAGER_STEP], **END}
        )
        item = await runtime.entity_in_tenant(s, tenant.id, "inventory", "inventory_item")
        await workflow.save_process(
            s,
            tenant.id,
            ACTOR,
            item,
            {
                "name": "Item approval",
                "steps": [{"name": "Manager", "selector": {"kind": "manager"}}],
                "on_reject": {"field": "status", "value": "discontinued"},
            },
        )
        if probe is not None:
            note = await runtime.entity_in_tenant(s, tenant.id, "probe", "probe_note")
            await workflow.save_process(
                s,
                tenant.id,
                ACTOR,
                note,
                {
                    "name": "Note approval",
                    "steps": [{"name": "Manager approval", "selector": {"kind": "manager"}}],
                },
            )

    in_db(app, work)


class World:
    def __init__(self, client: Any, app: Any) -> None:
        self.client, self.app = client, app
        self.tokens = {
            n: api_token(client, f"{n}@acme.test", PW) for n in ("alice", "max", "boss", "flo", "pat")
        }

    def h(self, who: str) -> dict[str, str]:
        return bearer(self.tokens[who], "acme")

    def submit(self, record_id: str, what: str = "inventory/purchase_order") -> None:
        r = self.client.post(f"/api/v1/plugins/{what}/{record_id}/submit", headers=self.h("alice"))
        assert r.status_code == 201, r.text
        deliver(self.client, self.app)  # the plugin reacts to the new task (marks the order submitted)


@pytest.fixture
def w(client: Any, app: Any, inventory_built: Path) -> World:
    _world(app, inventory_built)
    return World(client, app)


def test_the_decided_field_is_read_only_to_a_buyer_on_every_path(w: World) -> None:
    c = w.client
    # JSON API: a 99,999 order created already approved is refused; without a status it is a draft.
    r = c.post(
        PO, json={"order_no": "PO-X", "total_amount": "99999.00", "status": "approved"}, headers=w.h("alice")
    )
    assert r.status_code == 422, r.text
    assert "set by the approval process" in r.text and "ui.workflow.set-purchase_order-status" in r.text
    r = c.post(
        PO, json={"order_no": "PO-1", "total_amount": "99999.00", "status": "draft"}, headers=w.h("alice")
    )
    assert r.status_code == 201 and r.json()["status"] == "draft"
    po = r.json()
    r = c.put(f"{PO}/{po['id']}", json={"status": "approved", "version": po["version"]}, headers=w.h("alice"))
    assert r.status_code == 422 and "set by the approval process" in r.text
    r = c.put(f"{PO}/{po['id']}", json={"notes": "ok", "version": po["version"]}, headers=w.h("alice"))
    assert r.status_code == 200 and r.json()["status"] == "draft"
    # A tenant Admin holding `*` has the permission.
    r = c.post(
        PO, json={"order_no": "PO-B", "total_amount": "5.00", "status": "approved"}, headers=w.h("boss")
    )
    assert r.status_code == 201 and r.json()["status"] == "approved"
    # So does a role granted exactly the registered permission.
    r = c.post(
        PO, json={"order_no": "PO-P", "total_amount": "5.00", "status": "rejected"}, headers=w.h("pat")
    )
    assert r.status_code == 201 and r.json()["status"] == "rejected"

    # The generated form: the status is shown (its value), with no input; a forged one is ignored.
    login(c, "alice@acme.test", PW)
    form = c.get(f"{PAGE}/new")
    assert form.status_code == 200
    assert 'name="status"' not in form.text and 'name="order_no"' in form.text
    assert re.search(r'class="readonly">\s*draft', form.text), form.text
    made = post_form(
        c,
        f"{PAGE}/new",
        {"order_no": "PO-F", "total_amount": "99999.00", "status": "approved"},
        follow_redirects=False,
    )
    assert made.status_code == 303, text_of(made.text)[:400]
    forged = next(o for o in c.get(PO, headers=w.h("alice")).json()["items"] if o["order_no"] == "PO-F")
    assert forged["status"] == "draft"
    login(c, "boss@acme.test", PW)
    assert 'name="status"' in c.get(f"{PAGE}/new").text  # the Admin gets the input

    # CSV import (items: the item process's end action sets their status): a row setting it is refused.
    login(c, "alice@acme.test", PW)
    csv_text = "sku,name,quantity,status\nA-1,Anvil,1,active\nA-2,Axe,1,discontinued\n"
    preview = post_form(
        c, f"{ITEMS}/import", {}, files={"file": ("items.csv", csv_text.encode(), "text/csv")}
    )
    text = text_of(preview.text)
    assert "1 of 2 rows have errors" in text and "Status is set by the approval process" in text, text[:800]
    confirmed = post_form(c, f"{ITEMS}/import", {"confirm": "1", "csv": csv_text}, follow_redirects=False)
    assert confirmed.status_code == 422
    assert c.get("/api/v1/plugins/inventory/inventory_item", headers=w.h("alice")).json()["items"] == []


def test_a_pending_order_is_locked_until_decided_except_for_the_workflow_and_its_admins(w: World) -> None:
    c = w.client
    po = c.post(
        PO, json={"order_no": "PO-9", "total_amount": "5000.00", "notes": "first"}, headers=w.h("alice")
    ).json()
    w.submit(po["id"])
    current = c.get(f"{PO}/{po['id']}", headers=w.h("alice")).json()
    assert current["status"] == "submitted"  # the inventory plugin's handler wrote while pending

    # JSON API: 409 problem details with the reason.
    r = c.put(
        f"{PO}/{po['id']}", json={"total_amount": "1.00", "version": current["version"]}, headers=w.h("alice")
    )
    assert r.status_code == 409, r.text
    assert r.headers["content-type"].startswith("application/problem+json") and r.json()["detail"] == LOCKED

    # The form: the message inline, the user's input kept.
    login(c, "alice@acme.test", PW)
    edit = post_form(
        c,
        f"{PAGE}/{po['id']}",
        {
            "order_no": "PO-9",
            "total_amount": "1.00",
            "notes": "my unsaved words",
            "version": str(current["version"]),
        },
    )
    assert edit.status_code == 409
    assert LOCKED.replace("'", "&#39;") in edit.text or LOCKED in text_of(edit.text)
    assert "my unsaved words" in edit.text
    assert c.get(f"{PO}/{po['id']}", headers=w.h("alice")).json()["total_amount"] == "5000.00"

    # A workflow admin may change it (to repair an approval).
    r = c.put(
        f"{PO}/{po['id']}", json={"notes": "fixed by flo", "version": current["version"]}, headers=w.h("flo")
    )
    assert r.status_code == 200, r.text

    # The manager decides: the end action sets the status, the plugin notes the decision.
    [task] = c.get("/api/v1/tasks", headers=w.h("max")).json()["items"]
    r = c.post(f"/api/v1/tasks/{task['id']}/approve", json={"comment": "fine"}, headers=w.h("max"))
    assert r.status_code == 200 and r.json()["instance_state"] == "approved", r.text
    deliver(c, w.app)
    after = c.get(f"{PO}/{po['id']}", headers=w.h("alice")).json()
    assert after["status"] == "approved"
    assert "Approval: approved by max@acme.test (step Manager approval): fine" in after["notes"]
    # Decided: the order can be edited again (but its status stays the approval's).
    r = c.put(
        f"{PO}/{po['id']}",
        json={"notes": "delivered Monday", "version": after["version"]},
        headers=w.h("alice"),
    )
    assert r.status_code == 200 and r.json()["status"] == "approved"


def test_the_wasm_host_api_cannot_update_a_pending_record(
    client: Any, app: Any, inventory_built: Path, event_packages: dict[str, Path]
) -> None:
    _world(app, inventory_built, event_packages["probe"])
    w = World(client, app)
    notes = "/api/v1/plugins/probe/probe_note"
    pending = client.post(notes, json={"title": "mine"}, headers=w.h("alice")).json()
    free = client.post(notes, json={"title": "free"}, headers=w.h("alice")).json()
    w.submit(pending["id"], "probe/probe_note")
    login(client, "alice@acme.test", PW)
    refused = text_of(client.get("/t/acme/p/probe/probe", params={"mode": "by-id", "id": pending["id"]}).text)
    assert "refused:" in refused and "This note is awaiting approval (step Manager approval)" in refused, (
        refused[:600]
    )
    assert client.get(f"{notes}/{pending['id']}", headers=w.h("alice")).json()["title"] == "mine"
    done = text_of(client.get("/t/acme/p/probe/probe", params={"mode": "by-id", "id": free["id"]}).text)
    assert "updated another tenant" in done  # the same write on a record without an approval works
    assert client.get(f"{notes}/{free['id']}", headers=w.h("alice")).json()["title"] == "stolen"
