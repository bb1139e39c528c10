"""Home is a workspace: my open approval tasks, unread messages, recently changed records I may see
(through the record service: permission and data scope), shortcuts to my plugins' pages; platform admins
also get the tenants and the plugins' state. A decided task's message is read (app.workflow.decide)."""

from __future__ import annotations

import re
from typing import Any

from app.demo import DEMO_PASSWORD
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.helpers import api_token, bearer, login, logout
from tests.integration.test_error_pages import _demo, text_of

PO = "/api/v1/plugins/inventory/purchase_order"
HOME = "/t/demo/"


def _section(html: str, name: str) -> str:
    found = re.search(rf'<section class="card[^"]*" id="home-{name}".*?</section>', html, re.S)
    assert found, name
    return text_of(found.group(0))


def test_home_lists_tasks_messages_recent_records_and_shortcuts(client: Any, app: Any) -> None:
    _demo(app)
    carol = bearer(api_token(client, "carol@demo.test", DEMO_PASSWORD), "demo")
    dave = bearer(api_token(client, "dave@demo.test", DEMO_PASSWORD), "demo")
    po = client.post(PO, json={"order_no": "PO-HOME-1", "total_amount": "4800.00"}, headers=carol).json()
    assert client.post(f"{PO}/{po['id']}/submit", headers=carol).status_code == 201

    login(client, "dave@demo.test", DEMO_PASSWORD)
    home = client.get(HOME).text
    assert "PO-HOME-1" in _section(home, "tasks")
    assert "Approval needed: PO-HOME-1" in _section(home, "messages")
    shortcuts = _section(home, "shortcuts")
    assert "Purchase orders" in shortcuts or "Purchase order" in shortcuts
    # Listed among the recent records exactly when the record service lets him read it (data scope).
    readable = client.get(f"{PO}/{po['id']}", headers=dave).status_code == 200
    assert ("PO-HOME-1" in _section(home, "recent")) == readable
    assert "Platform at a glance" not in text_of(home)

    # Deciding the task marks its message read: both leave the workspace.
    [task] = client.get("/api/v1/tasks", headers=dave).json()["items"]
    assert client.post(f"/api/v1/tasks/{task['id']}/approve", json={}, headers=dave).status_code == 200
    after = client.get(HOME).text
    assert "PO-HOME-1" not in _section(after, "tasks")
    assert "Approval needed: PO-HOME-1" not in _section(after, "messages")
    logout(client)

    # carol (Buyer) may not see the CRM: none of its records is listed, though they changed lately;
    # her own order is.
    login(client, "carol@demo.test", DEMO_PASSWORD)
    home = client.get(HOME).text
    recent = _section(home, "recent")
    assert "PO-HOME-1" in recent
    assert "Customer" not in recent and "Contact" not in recent and "/p/crm/" not in home
    assert client.get("/api/v1/plugins/crm/customer", headers=carol).status_code == 403
    logout(client)
    # alice (Admin) sees the CRM's recent records.
    login(client, "alice@demo.test", DEMO_PASSWORD)
    recent = _section(client.get(HOME).text, "recent")
    assert "Customer" in recent
    # A link table named by a reference (crm's customer tags) shows the tag's name, never a row id.
    assert "Customer tag" in recent and "VIP" in recent
    assert not re.search(r">[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}<", recent)


def test_platform_admin_sees_tenants_and_plugin_health(client: Any, app: Any) -> None:
    _demo(app)
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    glance = _section(client.get("/t/system/").text, "platform")
    assert "active tenant(s)" in glance
    assert "Inventory" in glance
