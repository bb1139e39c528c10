"""Data scopes over the reporting hierarchy: every path of the record service obeys them.

Acme's Sales role sees `subtree` by default. The hierarchy: boss <- mid <- carol <- dave; eve reports
to no one; alice is an Admin. Each of them owns one item (SKU-10 boss ... SKU-50 eve).
"""

from __future__ import annotations

import csv
import html
import io
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from app.access import roles, scopes
from app.access.scopes import ScopeRule
from app.audit import Actor
from app.core.settings import load_settings
from app.identity import directory, hierarchy
from app.installs import lifecycle
from app.plugins import runtime
from app.plugins.packages import read_folder
from app.records.service import RecordService
from app.server import create_app
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.helpers import api_token, bearer, login, logout, post_form, text_of
from tests.integration.test_record_pages import in_db

ROOT = Path(__file__).resolve().parents[2]
PW = "scope-password-1"
SALES = ("boss", "mid", "carol", "dave", "eve")
SKU = {
    "boss": "SKU-10",
    "mid": "SKU-20",
    "carol": "SKU-30",
    "dave": "SKU-40",
    "eve": "SKU-50",
    "alice": "SKU-60",
}
ITEMS = "/t/acme/p/inventory/inventory/items"
API_ITEMS = "/api/v1/plugins/inventory/inventory_item"


def email(name: str) -> str:
    return f"{name}@acme.test"


def skus_on(html: str) -> set[str]:
    return set(re.findall(r">(SKU-\d+)</a>", html))


async def _org(s: Any, settings: Any) -> dict[str, Any]:
    actor = Actor(None, "test")
    await lifecycle.upload(s, actor, read_folder(ROOT / "plugins" / "inventory"), settings, install_now=True)
    acme = await directory.create_tenant(s, actor, "acme", "Acme")
    globex = await directory.create_tenant(s, actor, "globex", "Globex")
    for t in (acme, globex):
        await lifecycle.enable(s, actor, t.id, "inventory")
    sales = await roles.create_role(s, actor, acme.id, "Sales")
    await roles.set_role_grants(s, actor, sales, ["db.inventory_item.*", "db.inventory_category.select"])
    await scopes.set_role_scopes(s, actor, sales, {"*": ScopeRule("subtree")}, await scopes.scope_entities(s))
    ids: dict[str, Any] = {}
    for name in (*SALES, "alice"):
        user = await directory.create_user(s, actor, email(name), PW, name.title())
        role = await roles.get_role(s, acme.id, "Admin" if name == "alice" else "Sales")
        await directory.add_member(s, actor, acme.id, user, role)
        ids[name] = user.id
    gus = await directory.create_user(s, actor, "gus@globex.test", PW, "Gus")
    await directory.add_member(s, actor, globex.id, gus, await roles.get_role(s, globex.id, "Member"))
    for name, manager in (("mid", "boss"), ("carol", "mid"), ("dave", "carol")):
        await hierarchy.set_manager(s, actor, acme.id, ids[name], email(manager))
    item = await runtime.entity_in_tenant(s, acme.id, "inventory", "inventory_item")
    cat = await runtime.entity_in_tenant(s, acme.id, "inventory", "inventory_category")
    rows: dict[str, str] = {}
    for name in (*SALES, "alice"):
        svc = RecordService(s, acme.id, Actor(ids[name], email(name)), lambda _p: True)
        rows[name] = str((await svc.insert(item, {"sku": SKU[name], "name": f"{name.title()}'s item"}))["id"])
        rows[f"cat-{name}"] = str(
            (await svc.insert(cat, {"name": f"{name.title()} tools", "code": name.upper()}))["id"]
        )
    return {"ids": ids, "rows": rows, "sales": sales.id, "acme": acme.id}


@pytest.fixture
def org(client: TestClient, app: Any) -> dict[str, Any]:
    return in_db(app, lambda s: _org(s, app.state.settings))  # type: ignore[no-any-return]


def as_user(client: TestClient, name: str) -> TestClient:
    client.cookies.clear()
    login(client, email(name), PW)
    return client


def test_subtree_scope_on_pages_csv_and_pickers(client: TestClient, org: dict[str, Any]) -> None:
    rows = org["rows"]
    as_user(client, "mid")
    listed = client.get(ITEMS)
    assert listed.status_code == 200
    assert skus_on(listed.text) == {"SKU-20", "SKU-30", "SKU-40"} and "3 total" in text_of(listed.text)
    assert client.get(f"{ITEMS}/{rows['carol']}").status_code == 200
    for outside in ("boss", "eve", "alice"):
        assert client.get(f"{ITEMS}/{rows[outside]}").status_code == 404
        assert client.get(f"{ITEMS}/{rows[outside]}/edit").status_code == 404
        edit = post_form(client, f"{ITEMS}/{rows[outside]}", {"sku": "X", "name": "Taken", "version": "1"})
        assert edit.status_code == 404
        assert post_form(client, f"{ITEMS}/{rows[outside]}/delete", {}).status_code == 404
    # A bulk action with one invisible id fails as a whole; nothing is deleted.
    bulk = post_form(
        client, f"{ITEMS}/bulk-delete", [("ids", rows["dave"]), ("ids", rows["boss"])], follow_redirects=False
    )
    assert bulk.status_code == 404
    assert "3 total" in text_of(client.get(ITEMS).text)

    exported = list(csv.DictReader(io.StringIO(client.get(f"{ITEMS}/export.csv").text)))
    assert {r["sku"] for r in exported} == {"SKU-20", "SKU-30", "SKU-40"}

    # The category picker offers only categories of the subtree; an id outside it cannot be referenced.
    options = client.get(f"{ITEMS}/lookup", params={"field": "category_id"}).text
    assert "Carol tools" in options and "Dave tools" in options and "Boss tools" not in options
    bad_ref = post_form(
        client, ITEMS, {"sku": "SKU-21", "name": "New", "status": "active", "category_id": rows["cat-boss"]}
    )
    assert bad_ref.status_code == 409 and "No Category with that id" in text_of(bad_ref.text)
    made = post_form(
        client,
        ITEMS,
        {"sku": "SKU-21", "name": "New", "status": "active", "category_id": rows["cat-dave"]},
        follow_redirects=False,
    )
    assert made.status_code == 303
    assert skus_on(client.get(ITEMS).text) == {"SKU-20", "SKU-21", "SKU-30", "SKU-40"}

    # Dave, at the bottom, sees his own row only; eve (no reports) hers.
    assert skus_on(as_user(client, "dave").get(ITEMS).text) == {"SKU-40"}
    assert skus_on(as_user(client, "eve").get(ITEMS).text) == {"SKU-50"}
    # Boss sees the whole line; the Admin sees everything.
    assert skus_on(as_user(client, "boss").get(ITEMS).text) == {
        "SKU-10",
        "SKU-20",
        "SKU-21",
        "SKU-30",
        "SKU-40",
    }
    assert len(skus_on(as_user(client, "alice").get(ITEMS).text)) == 7
    # A platform admin (Admin of the system tenant, no role in acme) bypasses scopes too.
    client.cookies.clear()
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert len(skus_on(client.get(ITEMS).text)) == 7


VISIBLE_TO_MID = {
    "all": {"boss", "mid", "carol", "dave", "eve", "alice"},
    "subtree": {"mid", "carol", "dave"},
    "own": {"mid"},
}


@pytest.mark.parametrize("kind", ["all", "subtree", "own"])
def test_each_scope_on_list_count_detail_csv_and_api(
    client: TestClient, org: dict[str, Any], app: Any, kind: str
) -> None:
    async def set_scope(s: Any) -> None:
        role = await roles.get_role(s, org["acme"], "Sales")
        await scopes.set_role_scopes(
            s, Actor(None, "test"), role, {"*": ScopeRule(kind)}, await scopes.scope_entities(s)
        )

    in_db(app, set_scope)
    want = VISIBLE_TO_MID[kind]
    skus = {SKU[n] for n in want}
    token = api_token(client, email("mid"), PW)
    as_user(client, "mid")
    listed = client.get(ITEMS)
    assert skus_on(listed.text) == skus and f"{len(want)} total" in text_of(listed.text)
    exported = list(csv.DictReader(io.StringIO(client.get(f"{ITEMS}/export.csv").text)))
    assert {r["sku"] for r in exported} == skus
    for name in SKU:
        assert client.get(f"{ITEMS}/{org['rows'][name]}").status_code == (200 if name in want else 404), name
    h = bearer(token, "acme")
    api = client.get(API_ITEMS, headers=h).json()
    assert {r["sku"] for r in api["items"]} == skus and api["total"] == len(want)
    for name in SKU:
        url = f"{API_ITEMS}/{org['rows'][name]}"
        edited = client.put(url, json={"quantity": 7, "version": 1}, headers=h)
        assert edited.status_code == (200 if name in want else 404), (name, edited.text)
    dropped = client.delete(f"{API_ITEMS}/{org['rows']['eve']}", headers=h)
    assert dropped.status_code == (204 if "eve" in want else 404)


def test_subtree_scope_through_the_json_api(client: TestClient, org: dict[str, Any]) -> None:
    rows = org["rows"]
    h = bearer(api_token(client, email("mid"), PW), "acme")
    listed = client.get(API_ITEMS, headers=h).json()
    assert {r["sku"] for r in listed["items"]} == {"SKU-20", "SKU-30", "SKU-40"} and listed["total"] == 3
    assert client.get(f"{API_ITEMS}/{rows['carol']}", headers=h).status_code == 200
    for outside in ("boss", "eve"):
        url = f"{API_ITEMS}/{rows[outside]}"
        assert client.get(url, headers=h).status_code == 404
        assert client.put(url, json={"name": "Mine now", "version": 1}, headers=h).status_code == 404
        assert client.delete(url, headers=h).status_code == 404
    assert client.delete(f"{API_ITEMS}/{rows['dave']}", headers=h).status_code == 204
    assert client.get(API_ITEMS, headers=h).json()["total"] == 2
    assert client.post(f"{API_ITEMS}/{rows['dave']}/restore", headers=h).status_code == 201

    # A row deleted by the admin outside mid's scope cannot be restored by mid either.
    admin = bearer(api_token(client, email("alice"), PW), "acme")
    assert client.delete(f"{API_ITEMS}/{rows['eve']}", headers=admin).status_code == 204
    assert client.post(f"{API_ITEMS}/{rows['eve']}/restore", headers=h).status_code == 404
    assert client.post(f"{API_ITEMS}/{rows['eve']}/restore", headers=admin).status_code == 201
    assert client.get(API_ITEMS, headers=admin).json()["total"] == 6


def test_hierarchy_admin_ui_api_cycles_and_audit(client: TestClient, org: dict[str, Any], app: Any) -> None:
    ids = org["ids"]
    h = bearer(api_token(client, email("alice"), PW), "acme")
    carol = client.get(f"/api/v1/members/{ids['carol']}", headers=h).json()
    assert carol["manager"] == email("mid") and carol["reports_to"] == [email("mid"), email("boss")]
    listed = {m["email"]: m for m in client.get("/api/v1/members", headers=h).json()["items"]}
    assert listed[email("dave")]["manager"] == email("carol") and listed[email("boss")]["manager"] is None

    cycle = client.patch(f"/api/v1/members/{ids['boss']}", json={"manager": email("dave")}, headers=h)
    assert cycle.status_code == 422, cycle.text
    message = cycle.json()["errors"]["manager"]
    assert (
        "cycle" in message and "dave@acme.test → carol@acme.test → mid@acme.test → boss@acme.test" in message
    )
    own = client.patch(f"/api/v1/members/{ids['boss']}", json={"manager": str(ids["boss"])}, headers=h)
    assert own.status_code == 422 and "own manager" in own.json()["errors"]["manager"]
    foreign = client.patch(f"/api/v1/members/{ids['boss']}", json={"manager": "gus@globex.test"}, headers=h)
    assert foreign.status_code == 422 and "not a member of this tenant" in foreign.json()["errors"]["manager"]
    unknown = client.patch(f"/api/v1/members/{ids['boss']}", json={"manager": "nobody@x.test"}, headers=h)
    # An unknown email gets the same answer as another tenant's member: no probing for accounts.
    assert unknown.status_code == 422 and unknown.json()["errors"]["manager"] == foreign.json()["errors"][
        "manager"
    ].replace("gus@globex.test", "nobody@x.test")
    nul = client.patch(
        f"/api/v1/members/{ids['boss']}", json={"manager": "a\x00b", "unit": "x\x00"}, headers=h
    )
    assert nul.status_code == 422 and "member of this tenant" in nul.json()["errors"]["manager"]
    bad_type = client.patch(f"/api/v1/members/{ids['boss']}", json={"manager": 5}, headers=h)
    assert bad_type.status_code == 400
    assert client.get(f"/api/v1/members/{ids['boss']}", headers=h).json()["manager"] is None

    # A chain 9 levels below dave works; the deepest member reports to 12 managers. (The platform admin
    # adds them directly; a tenant admin would invite them: tests/integration/test_invitations.py.)
    root = bearer(api_token(client, ADMIN_EMAIL, ADMIN_PASSWORD), "acme")
    last = "dave"
    for i in range(1, 10):
        name = f"deep{i}"
        made = client.post(
            "/api/v1/members",
            json={
                "email": email(name),
                "role": "Sales",
                "password": PW,
                "manager": email(last),
                "unit": " north ",
            },
            headers=root,
        )
        assert made.status_code == 201, made.text
        assert (
            made.json()["manager"] == email(last)
            and made.json()["unit"] == "north"
            and made.json()["role"] == "Sales"
        )
        ids[name] = made.json()["id"]
        last = name
    moved = client.patch(
        f"/api/v1/members/{ids['deep3']}", json={"manager": email("deep1"), "unit": None}, headers=h
    )
    assert (
        moved.status_code == 200
        and moved.json()["manager"] == email("deep1")
        and moved.json()["unit"] is None
    )
    moved = client.patch(f"/api/v1/members/{ids['deep3']}", json={"manager": email("deep2")}, headers=h)
    assert moved.json()["unit"] is None and moved.json()["reports_to"][:2] == [email("deep2"), email("deep1")]
    deepest = client.get(f"/api/v1/members/{ids['deep9']}", headers=h).json()
    assert len(deepest["reports_to"]) == 12 and deepest["reports_to"][-1] == email("boss")
    cycle = client.patch(f"/api/v1/members/{ids['mid']}", json={"manager": email("deep9")}, headers=h)
    assert cycle.status_code == 422 and "cycle" in cycle.json()["errors"]["manager"]

    # Clearing with null; the audit log has every change.
    cleared = client.patch(f"/api/v1/members/{ids['deep1']}", json={"manager": None}, headers=h)
    assert cleared.status_code == 200 and cleared.json()["manager"] is None
    audit = client.get("/api/v1/audit", params={"action": "member.manager", "size": 100}, headers=h).json()
    summaries = [a["summary"] for a in audit["items"]]
    assert (
        "deep1@acme.test reports to no one" in summaries
        and "deep2@acme.test now reports to deep1@acme.test" in summaries
    )
    assert not any("boss@acme.test now reports" in s for s in summaries)  # refused moves leave no trace

    # The members page: shows and sets the manager; a cycle is refused inline and nothing changes.
    client.cookies.clear()
    login(client, email("alice"), PW)
    page = client.get("/t/acme/admin/members", params={"size": 100}).text
    assert re.search(
        r'>Manager of carol@acme.test</label>\s*<input [^>]*name="manager"[^>]*value="mid@acme.test"', page
    )
    refused = post_form(
        client, f"/t/acme/admin/members/{ids['mid']}/reporting", {"manager": email("dave"), "unit": "west"}
    )
    assert refused.status_code == 422 and "would create a cycle" in text_of(refused.text)
    still = in_db(app, lambda s: hierarchy.reporting_of(s, org["acme"], [ids["mid"]]))[ids["mid"]]
    assert still.manager_email == email("boss") and still.unit is None
    ok = post_form(
        client,
        f"/t/acme/admin/members/{ids['eve']}/reporting",
        {"manager": email("boss"), "unit": ""},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    assert in_db(app, lambda s: hierarchy.reporting_of(s, org["acme"], [ids["eve"]]))[
        ids["eve"]
    ].manager_email == email("boss")

    # Removing a manager moves their reports up to the leaver's own manager.
    gone = post_form(client, f"/t/acme/admin/members/{ids['carol']}/remove", {}, follow_redirects=False)
    assert gone.status_code == 303
    assert in_db(app, lambda s: hierarchy.reporting_of(s, org["acme"], [ids["dave"]]))[
        ids["dave"]
    ].manager_email == email("mid")


def test_role_scopes_api_page_own_scope_and_explain(client: TestClient, org: dict[str, Any]) -> None:
    sales = org["sales"]
    h = bearer(api_token(client, email("alice"), PW), "acme")
    shown = client.get(f"/api/v1/roles/{sales}", headers=h).json()
    assert shown["scopes"] == {"*": {"scope": "subtree", "unit": False}}
    bad = client.put(
        f"/api/v1/roles/{sales}/scopes",
        headers=h,
        json={
            "scopes": {
                "inventory_item": "everything",
                "nope": "own",
                "supplier": {"scope": "own", "unit": True},
                "*": 3,
            }
        },
    )
    assert bad.status_code == 422
    errors = bad.json()["errors"]
    assert "unknown scope 'everything'" in errors["scopes.inventory_item"]
    assert "expected a scope name" in errors["scopes.*"]
    bad = client.put(
        f"/api/v1/roles/{sales}/scopes",
        headers=h,
        json={"scopes": {"nope": "own", "inventory.supplier": {"scope": "own", "unit": True}}},
    )
    errors = bad.json()["errors"]
    assert "no installed plugin has an entity 'nope'" in errors["scopes.nope"]
    assert "names no unit_field" in errors["scopes.inventory.supplier"]
    admin_role = client.get("/api/v1/roles", headers=h).json()["items"][0]
    assert admin_role["builtin"] == "admin"
    refused = client.put(f"/api/v1/roles/{admin_role['id']}/scopes", headers=h, json={"scopes": {"*": "own"}})
    assert refused.status_code == 409 and "bypass" in refused.json()["detail"]

    saved = client.put(
        f"/api/v1/roles/{sales}/scopes",
        headers=h,
        json={"scopes": {"*": "subtree", "inventory.inventory_item": "own"}},
    )
    assert saved.status_code == 200 and saved.json()["scopes"]["inventory_item"] == {
        "scope": "own",
        "unit": False,
    }
    mid = bearer(api_token(client, email("mid"), PW), "acme")
    assert {r["sku"] for r in client.get(API_ITEMS, headers=mid).json()["items"]} == {"SKU-20"}
    cats = client.get("/api/v1/plugins/inventory/inventory_category", headers=mid).json()
    assert cats["total"] == 3  # the default (subtree) still applies to categories

    explained = client.get(
        "/api/v1/explain",
        headers=h,
        params={"user": email("boss"), "permission": "db.inventory_category.select"},
    ).json()
    assert explained["allowed"] is True
    scope = explained["scope"]
    assert scope["rule"] == "subtree" and scope["source"] == "role Sales default scope"
    assert scope["owners"] == [email(n) for n in ("boss", "mid", "carol", "dave")]
    assert (
        "subtree of Boss: Boss, Mid, Carol, Dave (4 users) — from role Sales default scope" in scope["reason"]
    )
    own = client.get(
        "/api/v1/explain", headers=h, params={"user": email("mid"), "permission": "db.inventory_item.update"}
    ).json()["scope"]
    assert own["rule"] == "own" and "role Sales scope for inventory_item" in own["reason"]
    admin = client.get(
        "/api/v1/explain",
        headers=h,
        params={"user": email("alice"), "permission": "db.inventory_item.select"},
    ).json()["scope"]
    assert "bypass" in admin["reason"]
    assert (
        client.get(
            "/api/v1/explain", headers=h, params={"user": email("mid"), "permission": "db.roles.select"}
        ).json()["scope"]
        is None
    )

    # The role page shows the scopes and edits them; a bad value re-renders with the error.
    client.cookies.clear()
    login(client, email("alice"), PW)
    page = client.get(f"/t/acme/admin/roles/{sales}").text
    assert re.search(
        r'name="scope:inventory_item"[^>]*>\s*<option value="" >default</option>\s*'
        r'<option value="all" >all</option><option value="subtree" >subtree</option>'
        r'<option value="own" selected>own</option>',
        page,
    )
    assert "no unit field" in page
    wrong = post_form(
        client, f"/t/acme/admin/roles/{sales}/scopes", {"scope:*": "everyone", "scope:inventory_item": ""}
    )
    assert wrong.status_code == 422 and "unknown scope 'everyone'" in html.unescape(text_of(wrong.text))
    done = post_form(
        client,
        f"/t/acme/admin/roles/{sales}/scopes",
        {"scope:*": "own", "scope:inventory_item": "", "scope:supplier": "all"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert client.get(f"/api/v1/roles/{sales}/scopes", headers=h).json()["scopes"] == {
        "*": {"scope": "own", "unit": False},
        "supplier": {"scope": "all", "unit": False},
    }
    explain_page = client.get(
        "/t/acme/admin/explain", params={"user": email("mid"), "permission": "db.inventory_item.select"}
    ).text
    assert "Rows owned by Mid only — from role Sales default scope." in text_of(explain_page)
    assert {r["sku"] for r in client.get(API_ITEMS, headers=mid).json()["items"]} == {"SKU-20"}


def test_moves_apply_at_once_in_every_worker(
    client: TestClient, org: dict[str, Any], settings_env: dict[str, str]
) -> None:
    """Two app instances (as two worker processes would be) with their own caches: a move made
    through one is seen by the other on its next request."""
    ids = org["ids"]
    admin = bearer(api_token(client, email("alice"), PW), "acme")
    mid = bearer(api_token(client, email("mid"), PW), "acme")
    with TestClient(app=create_app(load_settings(settings_env)), base_url="http://testserver.local") as other:

        def seen() -> set[str]:
            return {r["sku"] for r in other.get(API_ITEMS, headers=mid).json()["items"]}

        assert seen() == {"SKU-20", "SKU-30", "SKU-40"}  # now cached in the other worker
        assert seen() == {"SKU-20", "SKU-30", "SKU-40"}
        moved = client.patch(
            f"/api/v1/members/{ids['carol']}", json={"manager": email("boss")}, headers=admin
        )
        assert moved.status_code == 200
        assert seen() == {"SKU-20"}  # carol took dave with her
        client.patch(f"/api/v1/members/{ids['dave']}", json={"manager": email("mid")}, headers=admin)
        assert seen() == {"SKU-20", "SKU-40"}
        # A role change (policy_version) is seen at once: Member has no scope, so all rows.
        assert (
            client.patch(f"/api/v1/members/{ids['mid']}", json={"role": "Member"}, headers=admin).status_code
            == 200
        )
        assert len(seen()) == 6
        client.patch(f"/api/v1/members/{ids['mid']}", json={"role": "Sales"}, headers=admin)
        assert seen() == {"SKU-20", "SKU-40"}
        # A scope change is seen at once too.
        client.put(f"/api/v1/roles/{org['sales']}/scopes", json={"scopes": {"*": "own"}}, headers=admin)
        assert seen() == {"SKU-20"}


UNIT_PLUGIN = """
[plugin]
id = "shops"
name = "Shops"
version = "1.0.0"
description = "Sales per shop"
author = "Tests"
min_platform_version = "1.0.0"

[dependencies]
modules = ["auth"]

[permissions]
database = true

[[schema.entities]]
name = "shop_sale"
label = "Sale"
display_field = "ref"
unit_field = "shop"
owner_field = "seller"
fields = [
  { name = "ref", type = "string", required = true },
  { name = "seller", type = "uuid" },
  { name = "shop", type = "string", max_length = 40 },
  { name = "amount", type = "integer", default = 0 },
]
"""


def test_unit_scope(client: TestClient, org: dict[str, Any], app: Any, tmp_path: Path) -> None:
    folder = tmp_path / "shops"
    folder.mkdir()
    (folder / "plugin.toml").write_text(UNIT_PLUGIN)
    ids = org["ids"]

    async def install(s: Any) -> None:
        actor = Actor(None, "test")
        await lifecycle.upload(s, actor, read_folder(folder), app.state.settings, install_now=True)
        await lifecycle.enable(s, actor, org["acme"], "shops")
        sales = await roles.get_role(s, org["acme"], "Sales")
        await roles.grant(s, actor, sales, ["db.shop_sale.*"])
        await scopes.set_role_scopes(
            s,
            actor,
            sales,
            {"*": ScopeRule("subtree"), "shop_sale": ScopeRule("all", by_unit=True)},
            await scopes.scope_entities(s),
        )
        for name, unit in (("carol", "north"), ("dave", "south")):
            await hierarchy.set_unit(s, actor, org["acme"], ids[name], unit)
        ref = await runtime.entity_in_tenant(s, org["acme"], "shops", "shop_sale")
        for i, (owner, shop) in enumerate(
            [("boss", "north"), ("eve", "north"), ("dave", "south"), ("mid", None)]
        ):
            svc = RecordService(s, org["acme"], Actor(ids[owner], email(owner)), lambda _p: True)
            await svc.insert(
                ref, {"ref": f"S-{i}", "shop": shop, "amount": 10 * (i + 1), "seller": str(ids[owner])}
            )

    in_db(app, install)
    url = "/api/v1/plugins/shops/shop_sale"
    carol = bearer(api_token(client, email("carol"), PW), "acme")
    assert {r["ref"] for r in client.get(url, headers=carol).json()["items"]} == {"S-0", "S-1"}
    south = client.post(url, json={"ref": "S-9", "shop": "south"}, headers=carol)
    assert south.status_code == 422 and south.json()["errors"] == {
        "shop": "You may only write rows of your own unit (north)."
    }
    upper = client.post(
        url, json={"ref": "S-7", "shop": "North"}, headers=carol
    )  # units compare exactly, as in SQL
    assert upper.status_code == 422
    north = client.post(url, json={"ref": "S-8", "shop": "north", "seller": str(ids["carol"])}, headers=carol)
    assert north.status_code == 201
    dave = bearer(api_token(client, email("dave"), PW), "acme")
    assert {r["ref"] for r in client.get(url, headers=dave).json()["items"]} == {"S-2"}
    row = client.get(url, headers=carol).json()["items"][0]
    moved = client.put(f"{url}/{row['id']}", json={"shop": "south", "version": row["version"]}, headers=carol)
    assert moved.status_code == 422 and "shop" in moved.json()["errors"]
    mid = bearer(api_token(client, email("mid"), PW), "acme")  # no unit: no rows
    assert client.get(url, headers=mid).json()["total"] == 0
    admin = bearer(api_token(client, email("alice"), PW), "acme")
    assert client.get(url, headers=admin).json()["total"] == 5
    explained = client.get(
        "/api/v1/explain", headers=admin, params={"user": email("mid"), "permission": "db.shop_sale.select"}
    ).json()["scope"]
    assert (
        explained["rule"] == "all within their unit"
        and "has no unit, so no rows at all" in explained["reason"]
    )
    # "unit" is shorthand for all rows of the member's unit; narrowing subtree by unit works too.
    sales = next(
        r for r in client.get("/api/v1/roles", headers=admin).json()["items"] if r["name"] == "Sales"
    )
    put = client.put(
        f"/api/v1/roles/{sales['id']}/scopes",
        headers=admin,
        json={"scopes": {"*": "subtree", "shops.shop_sale": "unit"}},
    )
    assert put.json()["scopes"]["shop_sale"] == {"scope": "all", "unit": True}
    client.put(
        f"/api/v1/roles/{sales['id']}/scopes",
        headers=admin,
        json={"scopes": {"shop_sale": {"scope": "subtree", "unit": True}}},
    )
    assert {r["ref"] for r in client.get(url, headers=carol).json()["items"]} == {"S-8"}  # her own north row
    # The owner is the manifest's owner_field: a row sold by someone outside her line is refused.
    foreign = client.post(
        url, json={"ref": "S-6", "shop": "north", "seller": str(ids["boss"])}, headers=carol
    )
    assert foreign.status_code == 422 and "would not include this Sale" in foreign.json()["errors"]["seller"]
    mine = client.post(url, json={"ref": "S-6", "shop": "north", "seller": str(ids["dave"])}, headers=carol)
    assert mine.status_code == 201  # dave reports to carol
    boss = client.patch(f"/api/v1/members/{ids['boss']}", json={"manager": email("carol")}, headers=admin)
    assert boss.status_code == 422  # boss is above carol: a cycle
    client.patch(f"/api/v1/members/{ids['eve']}", json={"manager": email("carol")}, headers=admin)
    assert {r["ref"] for r in client.get(url, headers=carol).json()["items"]} == {
        "S-8",
        "S-6",
        "S-1",
    }  # + eve's
    logout(client)


JUNK = st.one_of(
    st.text(max_size=120),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "<script>alert(1)</script>",
            "a" * 5000,
            "subtree",
            "own",
            "all",
            "unit",
            "*",
            "mid@acme.test",
            "boss@acme.test",
            "gus@globex.test",
            "inventory_item",
            "inventory.inventory_item",
        ]
    ),
)


def test_garbage_in_reporting_and_scope_forms_and_api(client: TestClient, org: dict[str, Any]) -> None:
    """Clear errors, never a 500, and nothing half-saved, whatever is typed into the new forms and API."""
    ids, sales = org["ids"], org["sales"]
    h = bearer(api_token(client, email("alice"), PW), "acme")
    login(client, email("alice"), PW)

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @given(who=st.sampled_from(sorted(ids)), a=JUNK, b=JUNK, c=JUNK, d=st.booleans())
    def check(who: str, a: str, b: str, c: str, d: bool) -> None:
        r = post_form(
            client,
            f"/t/acme/admin/members/{ids[who]}/reporting",
            {"manager": a, "unit": b},
            follow_redirects=False,
        )
        assert r.status_code in (303, 422), (a, b, r.status_code, r.text[:300])
        if r.status_code == 422:
            assert 'class="error"' in r.text or "flash error" in r.text
        form = {"scope:*": a, f"scope:{c}": b}
        if d:
            form["unit:*"] = "on"
        r = post_form(client, f"/t/acme/admin/roles/{sales}/scopes", form, follow_redirects=False)
        assert r.status_code in (303, 422), (form, r.status_code, r.text[:300])
        if r.status_code == 422:
            assert "flash error" in r.text or 'class="error"' in r.text, form
        r = client.patch(f"/api/v1/members/{ids[who]}", json={"manager": a or None, "unit": b}, headers=h)
        assert r.status_code in (200, 400, 422), (a, b, r.text[:300])
        r = client.put(
            f"/api/v1/roles/{sales}/scopes", json={"scopes": {a: b, c: {"scope": b, "unit": d}}}, headers=h
        )
        assert r.status_code in (200, 400, 422), r.text[:300]
        # The hierarchy stays a forest whatever was accepted: every chain of managers ends.
        managers = {
            m["email"]: m["manager"]
            for m in client.get("/api/v1/members", params={"size": 100}, headers=h).json()["items"]
        }
        for start in managers:
            step: str | None = start
            for _ in range(len(managers) + 1):
                step = managers.get(step)  # type: ignore[arg-type]
                if step is None:
                    break
            assert step is None, f"cycle through {start}: {managers}"

    check()
