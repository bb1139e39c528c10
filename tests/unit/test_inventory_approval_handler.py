"""The inventory guest's approval handlers (plugins/inventory/guest/app.py) on the host, against an
in-memory stand-in for the host API: what a real component cannot be made to hit on purpose — another
writer changing the order between the handler's read and its update (re-read and retry once, then
give up with a log line, never a failure) — plus unknown outcomes.

The integration tests (tests/integration/test_inventory_approval.py) run the same code as the built
component against the real host."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SDK_DIR = ROOT / "sdk" / "python"
GUEST = ROOT / "plugins" / "inventory" / "guest" / "app.py"
ORDER_ID = "0b7c6c4e-0000-4000-8000-000000000001"


def _guest() -> ModuleType:
    if str(SDK_DIR) not in sys.path:
        sys.path.insert(0, str(SDK_DIR))
    spec = importlib.util.spec_from_file_location("inventory_guest_app", GUEST)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


guest = _guest()
bindings = importlib.import_module("portal_guest._bindings")


class FakeHost:
    """purchase_order rows in memory, with the host's version check; `interfere` = how many of the next
    updates find that someone else wrote the row since it was read."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = {r["id"]: dict(r) for r in rows}
        self.interfere = 0
        self.logs: list[tuple[str, str]] = []
        self.published: list[tuple[str, dict[str, Any]]] = []
        self.updates = 0

    def current_user(self) -> str:
        return json.dumps({"id": None, "plugin": "inventory"})

    def db_query(self, entity: str, filter_json: str, page_json: str) -> str:
        assert entity == "purchase_order"
        wanted, page = json.loads(filter_json), json.loads(page_json)
        rows = [r for r in self.rows.values() if all(r.get(k) == v for k, v in wanted.items())]
        rows.sort(key=lambda r: r["updated_at"], reverse=page.get("sort") == "-updated_at")
        chosen = rows[page.get("offset", 0) : page.get("offset", 0) + page.get("limit", 50)]
        return json.dumps({"rows": [dict(r) for r in chosen], "total": len(rows)})

    def db_update(self, entity: str, record_id: str, data: str, version: int) -> str:
        row = self.rows.get(record_id)
        if row is None:
            raise bindings.Err(f"No Purchase order with id {record_id}")
        if self.interfere:
            self.interfere -= 1
            row["version"] += 1
            row["notes"] = ((row["notes"] or "") + "\nedited by someone").strip()
        if version != row["version"]:
            raise bindings.Err(
                f"The record was changed by someone else (now version {row['version']}, you sent {version})"
            )
        row.update(json.loads(data))
        row["version"] += 1
        row["updated_at"] += 1
        self.updates += 1
        return json.dumps(row)

    def event_publish(self, event_type: str, payload: str) -> None:
        self.published.append((event_type, json.loads(payload)))

    def log_write(self, level: str, message: str) -> None:
        self.logs.append((level, message))


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> FakeHost:
    fake = FakeHost(
        [
            {
                "id": ORDER_ID,
                "order_no": "PO-1",
                "status": "draft",
                "notes": None,
                "version": 1,
                "total_amount": "5000.00",
                "supplier_id": None,
                "updated_at": 10,
            }
        ]
    )
    monkeypatch.setattr(bindings, "host", fake)
    return fake


def _event(event_type: str, **extra: Any) -> None:
    payload = {
        "business_id": ORDER_ID,
        "entity": "purchase_order",
        "plugin": "inventory",
        "title": "PO-1",
        "instance_id": "i-1",
        **extra,
    }
    guest.plugin.handle_event(event_type, json.dumps(payload))


def test_a_conflict_is_read_again_and_retried_once(host: FakeHost) -> None:
    host.interfere = 1
    _event(
        "workflow.task.completed",
        outcome="rejected",
        comment="no",
        decided_by_email="max@acme.test",
        step="Manager",
    )
    row = host.rows[ORDER_ID]
    # The retry started from the other writer's notes: nothing of theirs is lost.
    assert row["notes"] == "edited by someone\nApproval: rejected by max@acme.test (step Manager): no"
    assert (row["status"], row["version"], host.updates) == ("rejected", 3, 1)
    assert any(level == "info" and "changed meanwhile" in m for level, m in host.logs)
    assert [t for t, _ in host.published] == ["inventory.purchase_order.rejected"]


def test_a_second_conflict_gives_up_with_an_error_line_not_a_failure(host: FakeHost) -> None:
    host.interfere = 2
    _event("workflow.instance.completed", outcome="approved", decisions=1)
    assert host.updates == 0 and host.rows[ORDER_ID]["status"] == "draft"
    assert any(level == "error" and "could not update PO-1" in m for level, m in host.logs)
    assert host.published == []


def test_unknown_outcomes_and_foreign_payloads_change_nothing(host: FakeHost) -> None:
    _event("workflow.task.completed", outcome="maybe")
    _event("workflow.instance.completed", outcome="approved", decisions=0, entity="supplier")
    _event("workflow.instance.completed", outcome="approved", decisions=0, plugin="erp")
    _event("workflow.instance.completed", outcome="approved", decisions=0, business_id="")
    assert host.updates == 0 and host.published == []
    assert [level for level, _ in host.logs] == ["warning"]


def test_a_received_order_stays_received(host: FakeHost) -> None:
    host.rows[ORDER_ID]["status"] = "received"
    _event("workflow.instance.completed", outcome="approved", decisions=1)
    assert host.updates == 0 and host.rows[ORDER_ID]["status"] == "received"
