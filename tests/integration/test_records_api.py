"""Plugin records through the JSON API: CRUD, optimistic locking, permissions, tenant isolation."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from app.audit import Actor
from app.identity import directory
from app.installs import lifecycle
from app.plugins.packages import read_folder
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.helpers import api_token, bearer

ROOT = Path(__file__).resolve().parents[2]


def setup_tenants(app: Any) -> None:
    """Install the bundled inventory plugin; enable it in tenants acme and globex."""

    async def work() -> None:
        settings = app.state.settings
        async with app.state.alchemy.get_session() as s:
            actor = Actor(None, "test")
            await lifecycle.upload(
                s, actor, read_folder(ROOT / "plugins" / "inventory"), settings, install_now=True
            )
            for slug in ("acme", "globex"):
                t = await directory.create_tenant(s, actor, slug, slug.title())
                await lifecycle.enable(s, actor, t.id, "inventory")
            bob = await directory.create_user(s, actor, "bob@acme.test", "bob-password-1")
            from app.access import roles

            acme = await directory.get_tenant(s, "acme")
            await directory.add_member(s, actor, acme.id, bob, await roles.get_role(s, acme.id, "Member"))
            await s.commit()
        await app.state.alchemy.get_engine().dispose()  # its connections belong to this loop

    asyncio.run(work())


@pytest.fixture
def root(client, app) -> str:
    token = api_token(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    setup_tenants(app)
    return token


ITEMS = "/api/v1/plugins/inventory/inventory_item"


def test_crud_with_version_check_and_audit(client, root):
    h = bearer(root, "acme")
    cat = client.post(
        "/api/v1/plugins/inventory/inventory_category", json={"name": "Tools", "code": "T"}, headers=h
    )
    assert cat.status_code == 201, cat.text
    made = client.post(
        ITEMS,
        json={"sku": "A-1", "name": "Hammer", "category_id": cat.json()["id"], "unit_price": "12.50"},
        headers=h,
    )
    assert made.status_code == 201, made.text
    item = made.json()
    assert (
        item["quantity"] == 0
        and item["unit"] == "pcs"
        and item["version"] == 1
        and item["unit_price"] == "12.50"
    )

    bad = client.post(
        ITEMS,
        json={
            "sku": "A-1",
            "name": "",
            "quantity": "many",
            "unit_price": "1.234",
            "nope": 1,
            "tenant_id": str(uuid.uuid4()),
        },
        headers=h,
    )
    assert bad.status_code == 422
    assert set(bad.json()["errors"]) == {"name", "quantity", "unit_price", "nope", "tenant_id"}
    dup = client.post(ITEMS, json={"sku": "A-1", "name": "Other"}, headers=h)
    assert dup.status_code == 409 and dup.json()["title"] == "Conflicting values"
    assert "already has SKU" in dup.json()["errors"]["sku"]

    url = f"{ITEMS}/{item['id']}"
    ok = client.put(url, json={"quantity": 5, "version": 1}, headers=h)
    assert ok.status_code == 200 and ok.json()["version"] == 2 and ok.json()["quantity"] == 5
    stale = client.put(url, json={"quantity": 9, "version": 1}, headers=h)
    assert stale.status_code == 409 and stale.json()["current"]["quantity"] == 5
    assert client.get(url, headers=h).json()["quantity"] == 5
    missing_version = client.put(url, json={"quantity": 9}, headers=h)
    assert missing_version.status_code == 422

    listed = client.get(ITEMS, params={"q": "hamm", "sort": "-quantity"}, headers=h).json()
    assert listed["total"] == 1 and listed["items"][0]["sku"] == "A-1"
    assert client.get(ITEMS, params={"sort": "nope"}, headers=h).status_code == 422
    assert client.get(ITEMS, params={"quantity__from": "6"}, headers=h).json()["total"] == 0
    # Standard fields filter too: by id (a guest's db.get) and by writer.
    other = client.post(ITEMS, json={"sku": "A-2", "name": "Saw"}, headers=h).json()
    by_id = client.get(ITEMS, params={"id": item["id"]}, headers=h).json()
    assert [r["sku"] for r in by_id["items"]] == ["A-1"]
    assert client.get(ITEMS, params={"created_by": other["created_by"]}, headers=h).json()["total"] == 2
    bad_id = client.get(ITEMS, params={"id": "not-a-uuid"}, headers=h)
    assert bad_id.status_code == 422 and "id" in bad_id.json()["errors"]

    assert client.delete(url, headers=h).status_code == 204
    assert client.get(url, headers=h).status_code == 404
    assert client.get(ITEMS, params={"deleted": "true"}, headers=h).json()["total"] == 1
    assert client.post(f"{url}/restore", headers=h).status_code == 201
    assert client.get(url, headers=h).json()["version"] == 4

    audit = client.get("/api/v1/audit", params={"action": "record."}, headers=h).json()
    actions = [a["action"] for a in audit["items"]]
    assert {"record.create", "record.update", "record.delete", "record.restore"} <= set(actions)
    update = next(a for a in audit["items"] if a["action"] == "record.update")
    assert update["before"]["quantity"] == 0 and update["after"]["quantity"] == 5


def test_tenant_isolation_and_permissions(client, root):
    acme, globex = bearer(root, "acme"), bearer(root, "globex")
    row = client.post(ITEMS, json={"sku": "SECRET", "name": "Acme only"}, headers=acme).json()
    assert client.get(ITEMS, headers=globex).json()["total"] == 0
    assert client.get(f"{ITEMS}/{row['id']}", headers=globex).status_code == 404
    assert (
        client.put(f"{ITEMS}/{row['id']}", json={"name": "x", "version": 1}, headers=globex).status_code
        == 404
    )
    assert client.delete(f"{ITEMS}/{row['id']}", headers=globex).status_code == 404
    # The same unique value may exist in another tenant.
    assert client.post(ITEMS, json={"sku": "SECRET", "name": "Globex's"}, headers=globex).status_code == 201
    # A reference to another tenant's row is refused.
    cat = client.post(
        "/api/v1/plugins/inventory/inventory_category", json={"name": "C", "code": "C"}, headers=acme
    )
    cross = client.post(
        ITEMS, json={"sku": "X", "name": "x", "category_id": cat.json()["id"]}, headers=globex
    )
    assert cross.status_code == 409 and "category_id" in cross.json()["errors"]

    bob = api_token(client, "bob@acme.test", "bob-password-1")
    hb = bearer(bob, "acme")
    assert client.get(ITEMS, headers=hb).status_code == 200  # Member: read-only on business data
    assert client.post(ITEMS, json={"sku": "B", "name": "b"}, headers=hb).status_code == 403
    assert client.put(f"{ITEMS}/{row['id']}", json={"name": "b", "version": 1}, headers=hb).status_code == 403
    assert client.delete(f"{ITEMS}/{row['id']}", headers=hb).status_code == 403
    assert client.get("/api/v1/plugins/crm/customer", headers=acme).status_code == 404  # not installed
    assert client.get(ITEMS, headers=bearer(bob, "globex")).status_code == 403
