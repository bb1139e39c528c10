"""The workflow base module: processes with conditions and approver selectors, the approve and reject
paths through the record service, stuck instances, tenant isolation, permissions, events,
notifications, the JSON API, the task inbox and the record page (both backends)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app import messages, workflow
from app.access import roles
from app.access.scopes import ScopeRule, scope_entities, set_role_scopes
from app.audit import Actor
from app.core.models import AuditEntry, EventRecord, Message, Permission, WorkflowInstance
from app.identity import directory, hierarchy
from app.installs import lifecycle
from app.plugins.modules import available_modules
from app.plugins.packages import read_folder
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.helpers import api_token, bearer, login, logout, post_form
from tests.integration.test_record_pages import in_db, manifest_only

PASSWORD = "member-password-1"
ACTOR = Actor(None, "test")
PO = "/api/v1/plugins/inventory/purchase_order"
PAGE = "/t/acme/p/inventory/inventory/purchase"
HX = {"HX-Request": "true"}
PROCESS = {
    "name": "Purchase approval",
    "steps": [
        {
            "name": "Manager",
            "selector": {"kind": "manager"},
            "condition": {
                "kind": "fields",
                "config": {"all": [{"field": "total_amount", "op": "gt", "value": "1000"}]},
            },
        },
        {"name": "Finance", "selector": {"kind": "role", "config": {"role": "Finance"}}},
    ],
    "on_approve": {"field": "status", "value": "approved"},
    "on_reject": {"field": "status", "value": "rejected"},
}


@pytest.fixture
def world(client: Any, app: Any, tmp_path: Path) -> dict[str, Any]:
    """Inventory enabled in acme and globex. acme: alice (Buyer, reports to max), max (Manager), fin and
    fay (Finance), dave (Buyer, no manager), bob (Member). Tokens for each, and for the platform admin."""
    inventory = manifest_only("inventory", tmp_path)

    async def work(s: Any) -> dict[str, Any]:
        await lifecycle.upload(s, ACTOR, read_folder(inventory), app.state.settings, install_now=True)
        ids: dict[str, Any] = {}
        for slug in ("acme", "globex"):
            t = await directory.create_tenant(s, ACTOR, slug, slug.title())
            await lifecycle.enable(s, ACTOR, t.id, "inventory")
            ids[slug] = t.id
        acme = ids["acme"]
        grants = {
            "Buyer": ["db.purchase_order.*", "db.supplier.select"],
            "Manager": ["db.purchase_order.select"],
            "Finance": ["db.purchase_order.select"],
        }
        made = {}
        for name, patterns in grants.items():
            made[name] = await roles.create_role(s, ACTOR, acme, name)
            await roles.grant(s, ACTOR, made[name], patterns)
        made["Member"] = await roles.get_role(s, acme, "Member")
        # Finance sees only its own purchase orders: approvers decide on the submitted snapshot anyway.
        await set_role_scopes(
            s, ACTOR, made["Finance"], {"purchase_order": ScopeRule("own")}, await scope_entities(s)
        )
        for name, role in (
            ("alice", "Buyer"),
            ("max", "Manager"),
            ("fin", "Finance"),
            ("fay", "Finance"),
            ("dave", "Buyer"),
            ("bob", "Member"),
        ):
            user = await directory.create_user(s, ACTOR, f"{name}@acme.test", PASSWORD, name.title())
            await directory.add_member(s, ACTOR, acme, user, made[role])
            ids[name] = user.id
        await hierarchy.set_manager(s, ACTOR, acme, ids["alice"], "max@acme.test")
        return ids

    ids = in_db(app, work)
    tokens = {
        name: api_token(client, f"{name}@acme.test", PASSWORD)
        for name in ("alice", "max", "fin", "dave", "bob")
    }
    tokens["root"] = api_token(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    return {"ids": ids, "tokens": tokens, "client": client, "app": app}


def h(w: dict[str, Any], who: str, tenant: str = "acme") -> dict[str, str]:
    return bearer(w["tokens"][who], tenant)


def define(w: dict[str, Any], process: dict[str, Any] | None = None) -> dict[str, Any]:
    r = w["client"].put(
        "/api/v1/workflow/processes/inventory/purchase_order", json=process or PROCESS, headers=h(w, "root")
    )
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def order(w: dict[str, Any], who: str, no: str, amount: str) -> dict[str, Any]:
    r = w["client"].post(PO, json={"order_no": no, "total_amount": amount}, headers=h(w, who))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def submit(w: dict[str, Any], who: str, record_id: str, status: int = 201) -> dict[str, Any]:
    r = w["client"].post(f"{PO}/{record_id}/submit", headers=h(w, who))
    assert r.status_code == status, r.text
    return r.json()  # type: ignore[no-any-return]


def tasks(w: dict[str, Any], who: str, tenant: str = "acme") -> list[dict[str, Any]]:
    r = w["client"].get("/api/v1/tasks", headers=h(w, who, tenant))
    assert r.status_code == 200, r.text
    return r.json()["items"]  # type: ignore[no-any-return]


def decide(
    w: dict[str, Any], who: str, task_id: str, verb: str, comment: str = "", tenant: str = "acme"
) -> Any:
    return w["client"].post(
        f"/api/v1/tasks/{task_id}/{verb}", json={"comment": comment}, headers=h(w, who, tenant)
    )


def record(w: dict[str, Any], record_id: str) -> dict[str, Any]:
    return w["client"].get(f"{PO}/{record_id}", headers=h(w, "alice")).json()  # type: ignore[no-any-return]


def events(w: dict[str, Any], prefix: str = "workflow.") -> list[tuple[str, dict[str, Any]]]:
    async def work(s: Any) -> list[tuple[str, dict[str, Any]]]:
        rows = (
            await s.scalars(
                sa.select(EventRecord)
                .where(EventRecord.type.like(prefix + "%"))
                .order_by(EventRecord.created_at)
            )
        ).all()
        return [(r.type, r.payload) for r in rows]

    return in_db(w["app"], work)  # type: ignore[no-any-return]


def inbox(w: dict[str, Any], who: str) -> list[tuple[str, str | None]]:
    async def work(s: Any) -> list[tuple[str, str | None]]:
        rows = (
            await s.scalars(
                sa.select(Message)
                .where(Message.user_id == w["ids"][who], Message.source == "workflow")
                .order_by(Message.created_at)
            )
        ).all()
        return [(m.title, m.link) for m in rows]

    return in_db(w["app"], work)  # type: ignore[no-any-return]


def test_workflow_is_a_registered_base_module() -> None:
    assert "workflow" in available_modules()


def test_two_steps_with_condition_approved_sets_the_field_through_the_record_service(world):
    w = world
    define(w)
    po = order(w, "alice", "PO-1", "5000.00")
    started = submit(w, "alice", po["id"])
    assert started["state"] == "running" and [t["step"] for t in started["tasks"]] == ["Manager"]
    # Only the manager has the task; a second submit of the same record is refused.
    submit(w, "alice", po["id"], status=409)
    assert tasks(w, "fin") == [] and tasks(w, "bob") == []
    [task] = tasks(w, "max")
    assert task["record_id"] == po["id"] and task["entity"] == "purchase_order"
    assert task["record"]["order_no"] == "PO-1" and task["requester"] == "alice@acme.test"
    # Neither a non-assignee nor someone of the next step may decide it.
    for outsider in ("bob", "fin", "alice"):
        refused = decide(w, outsider, task["id"], "approve")
        assert refused.status_code == 403, refused.text
        assert refused.json()["detail"] == "You are not an approver of this task"
    done = decide(w, "max", task["id"], "approve", "fine by me")
    assert (
        done.status_code == 200
        and done.json()["state"] == "approved"
        and done.json()["instance_state"] == "running"
    )
    assert decide(w, "max", task["id"], "approve").status_code == 409  # decided once
    # Finance: both members of the role get the task; fin decides although the order is outside fin's scope.
    assert w["client"].get(f"{PO}/{po['id']}", headers=h(w, "fin")).status_code == 404
    [fin_task] = tasks(w, "fin")
    assert fin_task["step"] == "Finance" and fin_task["record"]["total_amount"] == "5000.00"
    decided = decide(w, "fin", fin_task["id"], "approve", "ok")
    assert decided.status_code == 200 and decided.json()["instance_state"] == "approved"
    assert decide(w, "fin", fin_task["id"], "reject").status_code == 409  # decided once
    after = record(w, po["id"])
    assert (
        after["status"] == "approved"
        and after["version"] == po["version"] + 1
        and after["updated_by"] == str(w["ids"]["fin"])
    )
    approvals = w["client"].get(f"{PO}/{po['id']}/approvals", headers=h(w, "alice")).json()["items"]
    assert [
        (i["state"], [(t["step"], t["state"], t["decided_by"], t["comment"]) for t in i["tasks"]])
        for i in approvals
    ] == [
        (
            "approved",
            [
                ("Manager", "approved", "max@acme.test", "fine by me"),
                ("Finance", "approved", "fin@acme.test", "ok"),
            ],
        )
    ]

    async def audited(s: Any) -> list[tuple[str, str]]:
        rows = (
            await s.scalars(
                sa.select(AuditEntry).where(AuditEntry.target_id == po["id"]).order_by(AuditEntry.created_at)
            )
        ).all()
        return [(a.action, a.actor_email) for a in rows]

    trail = in_db(w["app"], audited)
    assert ("record.update", "fin@acme.test") in trail and (
        "workflow.instance.approved",
        "fin@acme.test",
    ) in trail
    assert [a for a, _ in trail if a.startswith("workflow.")] == [
        "workflow.start",
        "workflow.task.created",
        "workflow.task.approved",
        "workflow.task.created",
        "workflow.task.approved",
        "workflow.instance.approved",
    ]
    # Events through the outbox; task.completed carries what a plugin's handler of the decision reads.
    logged = events(w)
    assert [t for t, _ in logged] == [
        "workflow.task.created",
        "workflow.task.completed",
        "workflow.task.created",
        "workflow.task.completed",
        "workflow.instance.completed",
    ]
    completed = [p for t, p in logged if t == "workflow.task.completed"]
    assert completed[0]["business_id"] == po["id"] and completed[0]["entity"] == "purchase_order"
    assert completed[0]["outcome"] == "approved" and completed[0]["comment"] == "fine by me"
    assert completed[0]["task_id"] == task["id"] and completed[0]["instance_id"] == started["id"]
    assert completed[0]["decided_by_email"] == "max@acme.test" and completed[0]["title"] == "PO-1"
    assert completed[1]["decided_by_email"] == "fin@acme.test" and completed[1]["decided_by"] == str(
        w["ids"]["fin"]
    )
    assert logged[-1][1]["outcome"] == "approved" and logged[-1][1]["decisions"] == 2
    assert [t for t, _ in events(w, "inventory.purchase_order.updated")] == [
        "inventory.purchase_order.updated"
    ]
    # Notifications: the assignees of each new task, then the requester with a link to the record.
    assert inbox(w, "max") == [("Approval needed: PO-1", f"/t/acme/tasks/{task['id']}")]
    assert (
        inbox(w, "fin") == inbox(w, "fay") == [("Approval needed: PO-1", f"/t/acme/tasks/{fin_task['id']}")]
    )
    assert inbox(w, "alice") == [("Purchase order PO-1 was approved", f"{PAGE}/{po['id']}")]
    # Decided by fin: gone from fay's open tasks too (the header badge's count).
    assert in_db(w["app"], lambda s: workflow.open_task_count(s, w["ids"]["acme"], w["ids"]["fay"])) == 0
    # A decided task's messages are read, for the approver and the other assignees alike; alice's
    # note about the outcome waits for her.
    for who, unread in (("max", 0), ("fin", 0), ("fay", 0), ("alice", 1)):
        count = in_db(w["app"], lambda s, who=who: messages.unread_count(s, w["ids"]["acme"], w["ids"][who]))
        assert count == unread, who


def test_condition_false_skips_the_step_and_rejection_ends_it(world):
    w = world
    define(w)
    po = order(w, "alice", "PO-2", "200.00")
    started = submit(w, "alice", po["id"])
    assert [t["step"] for t in started["tasks"]] == ["Finance"]  # 200 ≤ 1000: no manager step
    assert tasks(w, "max") == []
    [task] = tasks(w, "fin")
    r = decide(w, "fin", task["id"], "reject", "too expensive")
    assert r.status_code == 200 and r.json()["instance_state"] == "rejected"
    assert record(w, po["id"])["status"] == "rejected"
    done = [p for t, p in events(w) if t == "workflow.task.completed"]
    assert done == [{**done[0], "outcome": "rejected", "comment": "too expensive", "business_id": po["id"]}]
    finished = [p for t, p in events(w) if t == "workflow.instance.completed"]
    assert [(p["outcome"], p["decisions"], p["title"]) for p in finished] == [("rejected", 1, "PO-2")]
    assert inbox(w, "alice") == [("Purchase order PO-2 was rejected", f"{PAGE}/{po['id']}")]
    # Finished: it may be submitted again.
    again = submit(w, "alice", po["id"])
    assert again["state"] == "running" and again["id"] != started["id"]


def test_nobody_to_ask_stops_the_instance_as_stuck_with_a_visible_error(world):
    w = world
    define(w)
    po = order(w, "dave", "PO-3", "9999.00")  # dave has no manager
    stuck = submit(w, "dave", po["id"])
    assert stuck["state"] == "stuck" and stuck["tasks"] == []
    assert stuck["error"] == "Step 1 (Manager) has no approver: the requester has no manager in this tenant"
    listed = w["client"].get("/api/v1/workflow/instances", headers=h(w, "root")).json()["items"]
    assert [(i["id"], i["error"]) for i in listed] == [(stuck["id"], stuck["error"])]
    assert w["client"].get("/api/v1/workflow/instances", headers=h(w, "dave")).status_code == 403
    # The admin page shows it; after giving dave a manager, a retry opens the manager's task.
    login(w["client"], ADMIN_EMAIL, ADMIN_PASSWORD)
    page = w["client"].get("/t/acme/admin/workflow")
    assert page.status_code == 200 and "the requester has no manager in this tenant" in page.text
    in_db(
        w["app"],
        lambda s: hierarchy.set_manager(s, ACTOR, w["ids"]["acme"], w["ids"]["dave"], "max@acme.test"),
    )
    retried = post_form(
        w["client"], f"/t/acme/admin/workflow/instances/{stuck['id']}/retry", {}, follow_redirects=False
    )
    assert retried.status_code == 303
    logout(w["client"])
    assert [t["record_id"] for t in tasks(w, "max")] == [po["id"]]
    # A user selector naming a member who then leaves: stuck again, with that reason.
    define(
        w,
        {
            **PROCESS,
            "steps": [{"name": "Boss", "selector": {"kind": "user", "config": {"user": "bob@acme.test"}}}],
        },
    )

    async def drop_bob(s: Any) -> None:
        await directory.remove_member(s, ACTOR, w["ids"]["acme"], w["ids"]["bob"])

    in_db(w["app"], drop_bob)
    other = order(w, "alice", "PO-4", "10.00")
    assert submit(w, "alice", other["id"])["error"] == (
        "Step 1 (Boss) has no approver: bob@acme.test is no longer an active member of this tenant"
    )


def test_process_validation_and_admin_permission(world):
    w = world
    url = "/api/v1/workflow/processes/inventory/purchase_order"
    bad = {
        **PROCESS,
        "steps": [
            {
                "name": "Manager",
                "selector": {"kind": "manager"},
                "condition": {
                    "kind": "fields",
                    "config": {"all": [{"field": "nope", "op": "gt", "value": "1"}]},
                },
            }
        ],
    }
    r = w["client"].put(url, json=bad, headers=h(w, "root"))
    assert r.status_code == 422 and r.json()["errors"] == {
        "steps[0].condition.all[0].field": "purchase_order has no field 'nope'"
    }
    bad = {**PROCESS, "steps": [{"name": "X", "selector": {"kind": "role", "config": {"role": "Ghosts"}}}]}
    assert w["client"].put(url, json=bad, headers=h(w, "root")).json()["errors"] == {
        "steps[0].selector.role": "no role 'Ghosts' in this tenant"
    }
    bad = {**PROCESS, "steps": [{"name": "X", "selector": {"kind": "astrology"}}]}
    assert "steps[0].selector.kind" in w["client"].put(url, json=bad, headers=h(w, "root")).json()["errors"]
    bad = {**PROCESS, "on_approve": {"field": "status", "value": "shipped"}}
    assert "on_approve.value" in w["client"].put(url, json=bad, headers=h(w, "root")).json()["errors"]
    bad = {
        **PROCESS,
        "steps": [
            {
                "name": "X",
                "selector": {"kind": "manager"},
                "condition": {
                    "kind": "fields",
                    "config": {"all": [{"field": "notes", "op": "gt", "value": "a"}]},
                },
            }
        ],
    }
    assert "steps[0].condition.all[0]" in str(
        w["client"].put(url, json=bad, headers=h(w, "root")).json()["errors"]
    )
    assert w["client"].put(url, json=PROCESS, headers=h(w, "alice")).status_code == 403

    async def registered(s: Any) -> tuple[str, str] | None:
        row = await s.scalar(sa.select(Permission).where(Permission.code == workflow.ADMIN_PERMISSION))
        return (row.module, row.scope) if row else None

    assert in_db(w["app"], registered) == (
        "base",
        "tenant",
    )  # listed in the role matrix with the base permissions
    # Without a process there is nothing to submit to; without update permission no submit either.
    po = order(w, "alice", "PO-5", "1.00")
    assert w["client"].post(f"{PO}/{po['id']}/submit", headers=h(w, "alice")).status_code == 404
    define(w)
    assert w["client"].post(f"{PO}/{po['id']}/submit", headers=h(w, "max")).status_code == 403


def test_tenant_isolation_of_tasks_and_processes(world):
    w = world
    define(w)
    po = order(w, "alice", "PO-6", "5000.00")
    submit(w, "alice", po["id"])
    [task] = tasks(w, "max")
    # The platform admin reaches globex too: acme's task does not exist there, nor its process.
    r = w["client"].get(f"/api/v1/tasks/{task['id']}", headers=h(w, "root", "globex"))
    assert r.status_code == 404
    assert w["client"].get(f"/api/v1/tasks/{task['id']}", headers=h(w, "root")).status_code == 200
    assert w["client"].get("/api/v1/workflow/processes", headers=h(w, "root", "globex")).json()["items"] == []
    r = w["client"].post(
        f"/api/v1/tasks/{task['id']}/reassign", json={"user": ADMIN_EMAIL}, headers=h(w, "root", "globex")
    )
    assert r.status_code == 404
    # A user who is not an assignee cannot even read it.
    assert w["client"].get(f"/api/v1/tasks/{task['id']}", headers=h(w, "bob")).status_code == 404
    # Reassigning (admins) moves it to another member, who then decides.
    r = w["client"].post(
        f"/api/v1/tasks/{task['id']}/reassign", json={"user": "fin@acme.test"}, headers=h(w, "root")
    )
    assert r.status_code == 200 and r.json()["assignees"] == ["fin@acme.test"]
    assert (
        w["client"]
        .post(f"/api/v1/tasks/{task['id']}/reassign", json={"user": "x@nowhere.test"}, headers=h(w, "root"))
        .status_code
        == 422
    )
    assert (
        w["client"]
        .post(f"/api/v1/tasks/{task['id']}/reassign", json={"user": "fin@acme.test"}, headers=h(w, "alice"))
        .status_code
        == 403
    )
    assert tasks(w, "max") == [] and decide(w, "max", task["id"], "approve").status_code == 403
    assert decide(w, "fin", task["id"], "approve").status_code == 200


def test_pages_submit_inbox_badge_decide_and_auto_start(world):
    w = world
    c = w["client"]
    define(w, {**PROCESS, "auto_start": False})
    po = order(w, "alice", "PO-7", "5000.00")
    login(c, "alice@acme.test", PASSWORD)
    detail = c.get(f"{PAGE}/{po['id']}")
    assert detail.status_code == 200 and "Submit for approval" in detail.text
    r = post_form(c, f"{PAGE}/{po['id']}/submit", {}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"{PAGE}/{po['id']}"
    detail = c.get(f"{PAGE}/{po['id']}")
    assert "Submit for approval" not in detail.text and 'data-approval="running"' in detail.text
    logout(c)
    login(c, "max@acme.test", PASSWORD)
    home = c.get("/t/acme/tasks")
    assert 'data-open-tasks="1"' in home.text and "PO-7" in home.text
    fragment = c.get("/t/acme/tasks", headers=HX)
    assert "<html" not in fragment.text and "PO-7" in fragment.text
    task_id = re.search(r'data-task="([0-9a-f-]{36})"', home.text).group(1)  # type: ignore[union-attr]
    task_page = c.get(f"/t/acme/tasks/{task_id}")
    assert "The record as submitted" in task_page.text and "<dd>5,000.00</dd>" in task_page.text
    assert "<dd>PO-7</dd>" in task_page.text and "Approve</button>" in task_page.text
    long = post_form(c, f"/t/acme/tasks/{task_id}/decide", {"outcome": "approve", "comment": "x" * 2001})
    assert long.status_code == 422 and "at most 2000" in long.text
    ok = post_form(
        c,
        f"/t/acme/tasks/{task_id}/decide",
        {"outcome": "approve", "comment": "<b>go</b>"},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    assert "data-open-tasks" not in c.get("/t/acme/tasks").text
    logout(c)
    login(c, "fin@acme.test", PASSWORD)
    [fin_task] = tasks(w, "fin")
    page = c.get(f"/t/acme/tasks/{fin_task['id']}")
    assert "&lt;b&gt;go&lt;/b&gt;" in page.text and "<b>go</b>" not in page.text  # comments are escaped
    assert (
        post_form(
            c, f"/t/acme/tasks/{fin_task['id']}/decide", {"outcome": "approve"}, follow_redirects=False
        ).status_code
        == 303
    )
    logout(c)
    login(c, "alice@acme.test", PASSWORD)
    detail = c.get(f"{PAGE}/{po['id']}")
    assert 'data-approval="approved"' in detail.text and record(w, po["id"])["status"] == "approved"
    logout(c)
    # The admin edits the process on its page: auto start on create, then a new order starts by itself.
    login(c, ADMIN_EMAIL, ADMIN_PASSWORD)
    form = c.get("/t/acme/admin/workflow/edit?entity=inventory.purchase_order")
    assert form.status_code == 200 and 'value="Manager"' in form.text
    data = [
        ("name", "Purchase approval"),
        ("is_active", "on"),
        ("auto_start", "on"),
        ("step_name", "Finance"),
        ("step_selector", "role"),
        ("step_who", "Finance"),
        ("step_field", ""),
        ("step_op", "eq"),
        ("step_value", ""),
        ("step_name", ""),
        ("step_selector", ""),
        ("step_who", ""),
        ("step_field", ""),
        ("step_op", "eq"),
        ("step_value", ""),
        ("on_approve_field", "status"),
        ("on_approve_value", "approved"),
        ("on_reject_field", ""),
        ("on_reject_value", ""),
    ]
    bad = post_form(
        c,
        "/t/acme/admin/workflow/edit?entity=inventory.purchase_order",
        [(k, "Nobody" if k == "step_who" and v == "Finance" else v) for k, v in data],
    )
    assert bad.status_code == 422 and "no role &#39;Nobody&#39; in this tenant" in bad.text
    saved = post_form(
        c, "/t/acme/admin/workflow/edit?entity=inventory.purchase_order", data, follow_redirects=False
    )
    assert saved.status_code == 303
    listing = c.get("/t/acme/admin/workflow")
    assert "anyone with the role Finance" in listing.text and "on create and on submit" in listing.text
    logout(c)
    auto = order(w, "alice", "PO-8", "10.00")
    assert [t["record_id"] for t in tasks(w, "fin")] == [auto["id"]]
    # bob (no grant) cannot open the process admin page
    login(c, "bob@acme.test", PASSWORD)
    assert c.get("/t/acme/admin/workflow").status_code == 403
    assert c.get(f"/t/acme/tasks/{tasks(w, 'fin')[0]['id']}").status_code == 404


def test_instances_are_per_tenant_rows(world):
    w = world
    define(w)
    po = order(w, "alice", "PO-9", "5.00")
    submit(w, "alice", po["id"])

    async def check(s: Any) -> list[uuid.UUID]:
        return list((await s.scalars(sa.select(WorkflowInstance.tenant_id))).all())

    assert in_db(w["app"], check) == [w["ids"]["acme"]]


def test_seed004_manifest_installs_and_its_custom_page_says_it_ships_no_code(client, app):
    """The example ERP inventory manifest (fixture) depends on auth and workflow: it installs and enables unchanged; its
    custom stocktaking page, without a plugin.wasm, shows the notice instead of failing."""
    from tests.integration.test_plugin_lifecycle import SEED_FIXTURE, package

    async def work(s: Any) -> None:
        await lifecycle.upload(
            s, ACTOR, package(SEED_FIXTURE.read_text(encoding="utf-8")), app.state.settings, install_now=True
        )
        t = await directory.create_tenant(s, ACTOR, "acme", "Acme")
        await lifecycle.enable(s, ACTOR, t.id, "erp-inventory")

    in_db(app, work)
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    page = client.get("/t/acme/p/erp-inventory/inventory/stocktaking")
    assert page.status_code == 200 and "ships no page code for 库存盘点" in page.text
    assert client.get("/t/acme/p/erp-inventory/inventory/purchase").status_code == 200


def test_failing_end_action_leaves_the_approval_stuck_and_the_decision_recorded(world):
    w = world
    define(w)
    po = order(w, "alice", "PO-10", "50.00")
    submit(w, "alice", po["id"])
    [task] = tasks(w, "fin")
    assert w["client"].delete(f"{PO}/{po['id']}", headers=h(w, "alice")).status_code == 204
    r = decide(w, "fin", task["id"], "approve")
    # The approval is recorded; setting the status on a deleted order cannot happen: stuck, with why.
    assert r.status_code == 200 and r.json()["state"] == "approved" and r.json()["instance_state"] == "stuck"
    [stuck] = w["client"].get("/api/v1/workflow/instances", headers=h(w, "root")).json()["items"]
    assert stuck["error"] == f"The end action (set status) failed: No Purchase order with id {po['id']}"
    assert [t for t, _ in events(w)] == [
        "workflow.task.created",
        "workflow.task.completed",
    ]  # no instance.completed
    # Restored, a retry finishes it: the end action runs, the instance completes.
    assert w["client"].post(f"{PO}/{po['id']}/restore", headers=h(w, "alice")).status_code == 201
    done = w["client"].post(f"/api/v1/workflow/instances/{stuck['id']}/retry", headers=h(w, "root"))
    assert done.status_code == 200 and done.json()["state"] == "approved"
    assert record(w, po["id"])["status"] == "approved"
    assert [t for t, _ in events(w)][-1] == "workflow.instance.completed"
    again = w["client"].post(f"/api/v1/workflow/instances/{stuck['id']}/retry", headers=h(w, "root"))
    assert again.status_code == 409


def test_api_is_described_and_forms_need_csrf(world):
    w = world
    paths = w["client"].get("/api/schema/openapi.json").json()["paths"]
    for path in (
        "/api/v1/tasks",
        "/api/v1/tasks/{task_id}/approve",
        "/api/v1/tasks/{task_id}/reject",
        "/api/v1/plugins/{plugin_id}/{entity}/{record_id}/submit",
        "/api/v1/workflow/processes/{plugin_id}/{entity}",
    ):
        assert path in paths, path
    define(w)
    po = order(w, "alice", "PO-11", "5.00")
    submit(w, "alice", po["id"])
    [task] = tasks(w, "fin")
    login(w["client"], "fin@acme.test", PASSWORD)
    forged = w["client"].post(f"/t/acme/tasks/{task['id']}/decide", data={"outcome": "approve"})
    assert forged.status_code == 403
    assert tasks(w, "fin")[0]["state"] == "open"
    bad = post_form(w["client"], f"/t/acme/tasks/{task['id']}/decide", {"outcome": "maybe"})
    assert bad.status_code == 422 and "approve or reject" in bad.text


def test_process_form_keeps_clauses_it_does_not_show(world):
    """The form edits one condition clause per step; further ones (set through the API) survive a save."""
    import html as html_lib

    w = world
    two = {
        "all": [
            {"field": "total_amount", "op": "gt", "value": "1000"},
            {"field": "status", "op": "eq", "value": "draft"},
        ]
    }
    define(
        w,
        {
            **PROCESS,
            "steps": [
                {
                    "name": "Manager",
                    "selector": {"kind": "manager"},
                    "condition": {"kind": "fields", "config": two},
                }
            ],
        },
    )
    login(w["client"], ADMIN_EMAIL, ADMIN_PASSWORD)
    url = "/t/acme/admin/workflow/edit?entity=inventory.purchase_order"
    form = w["client"].get(url).text
    assert "and status = draft (set through the API; kept)" in form
    extras = [html_lib.unescape(v) for v in re.findall(r'name="step_extra" value="([^"]*)"', form)]
    assert len(extras) == 3 and extras[1:] == ["", ""]
    data = [
        ("name", "Purchase approval"),
        ("is_active", "on"),
        ("step_name", "Manager"),
        ("step_selector", "manager"),
        ("step_who", ""),
        ("step_field", "total_amount"),
        ("step_op", "ge"),
        ("step_value", "2000"),
        ("step_extra", extras[0]),
        ("on_approve_field", "status"),
        ("on_approve_value", "approved"),
    ]
    assert post_form(w["client"], url, data, follow_redirects=False).status_code == 303
    [saved] = w["client"].get("/api/v1/workflow/processes", headers=h(w, "root")).json()["items"]
    assert saved["steps"][0]["condition"]["config"]["all"] == [
        {"field": "total_amount", "op": "ge", "value": "2000.00"},
        {"field": "status", "op": "eq", "value": "draft"},
    ]
    assert saved["on_reject"] is None and saved["auto_start"] is False


def test_a_failing_rule_implementation_stops_its_instance_only(world, app, monkeypatch):
    """A selector that raises (standing in for a trapped WASM implementation) or returns garbage makes
    that approval stuck with the reason; the request succeeds and other approvals go on."""
    selectors = app.state.services.extension_registry.selectors  # this app's kinds (app.extensions.builtins)

    class Exploding:
        name, label = "exploding", "Explodes"

        async def check(self, *args: Any) -> dict[str, Any]:
            return {}

        async def select(self, ctx: Any, config: Any) -> Any:
            raise RuntimeError("guest trapped: unreachable")

        def describe(self, config: Any) -> str:
            return "explodes"

    class Garbage(Exploding):
        name = "garbage"

        async def select(self, ctx: Any, config: Any) -> Any:
            return ["not", "a", "selection"]

    monkeypatch.setitem(selectors, "exploding", Exploding())
    monkeypatch.setitem(selectors, "garbage", Garbage())
    w = world
    for kind, reason in (
        ("exploding", "RuntimeError: guest trapped: unreachable"),
        ("garbage", "it returned list"),
    ):
        define(w, {**PROCESS, "steps": [{"name": "Odd", "selector": {"kind": kind}}]})
        po = order(w, "alice", f"PO-{kind}", "5.00")
        assert submit(w, "alice", po["id"])["error"] == f"Step 1 (Odd): the approver rule failed: {reason}"
    define(w)
    po = order(w, "alice", "PO-fine", "5.00")
    assert submit(w, "alice", po["id"])["state"] == "running"
