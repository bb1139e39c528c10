"""Inline child rows (an entity's `children`): a purchase order and its lines saved together through the
record service, in one transaction, from the generated form and the JSON API — on both databases.

Covered: create/edit/remove/reorder through the form (with and without script), rollups and formulas
after the save, child-row errors located on the row with all typed input kept and nothing saved, the
parent's and each line's version checks, permissions and data scope on the lines (a user without
insert on lines adds none, through the form or the API), and the API's `expand` and nested writes."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from app.access import roles, scopes
from app.access.scopes import ScopeRule
from app.audit import Actor
from app.core.models import AuditEntry
from app.identity import directory
from app.plugins import runtime
from app.records.service import RecordService
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.helpers import api_token, bearer, login, logout, post_form, text_of
from tests.integration.test_record_pages import ITEMS, created_id, in_db, make, tenants  # noqa: F401

ORDERS = "/t/acme/p/inventory/inventory/purchase"
API = "/api/v1/plugins/inventory/purchase_order"
HX = {"HX-Request": "true"}
PW = "inline-password-1"


# --- helpers -------------------------------------------------------------------------------------


def order_form(order_no: str, lines: list[dict[str, str]], **extra: str) -> list[tuple[str, str]]:
    """The order form as a browser posts it: the order's fields, then each line under its key."""
    form = [("order_no", order_no), ("status", "draft"), ("lines-present", "1"), *extra.items()]
    for n, line in enumerate(lines):
        key = line.get("key") or line.get("id", f"n{n:04d}")
        form.append(("lines", key))
        for name, value in line.items():
            if name != "key":
                form.append((f"lines-{key}-{name}", value))
    return form


def db_rows(app: Any, entity: str, **where: Any) -> list[dict[str, Any]]:
    async def work(s: Any) -> list[dict[str, Any]]:
        acme = await directory.get_tenant(s, "acme")
        ref = await runtime.entity_in_tenant(s, acme.id, "inventory", entity)
        t = ref.table
        stmt = sa.select(t).where(t.c.tenant_id == acme.id, t.c.deleted_at.is_(None))
        for k, v in where.items():
            stmt = stmt.where(t.c[k] == (uuid.UUID(v) if k.endswith("id") else v))
        return [
            dict(r)
            for r in (
                await s.execute(
                    stmt.order_by(t.c.position, t.c.created_at) if entity.endswith("line") else stmt
                )
            ).mappings()
        ]

    return in_db(app, work)  # type: ignore[no-any-return]


def lines_of(app: Any, order_id: str) -> list[dict[str, Any]]:
    return db_rows(app, "purchase_order_line", order_id=order_id)


def order_of(app: Any, order_id: str) -> dict[str, Any]:
    (row,) = db_rows(app, "purchase_order", id=order_id)
    return row


def keys_on(html: str) -> list[str]:
    return re.findall(r'<input type="hidden" name="lines" value="([^"]+)">', html)


def items(client: Any) -> tuple[str, str]:
    bolt = make(client, ITEMS, {"sku": "B-1", "name": "Bolt", "status": "active", "unit_price": "2.50"})
    nut = make(client, ITEMS, {"sku": "N-1", "name": "Nut", "status": "active", "unit_price": "0.40"})
    return bolt, nut


# --- the form ------------------------------------------------------------------------------------


def test_the_form_creates_an_order_with_its_lines_in_one_save(tenants: Any, app: Any) -> None:
    client = tenants
    bolt, nut = items(client)
    blank = client.get(f"{ORDERS}/new").text
    assert 'name="lines-present"' in blank and "Add purchase order line" in blank
    created = post_form(
        client,
        f"{ORDERS}/new",
        order_form(
            "PO-1",
            [
                {"item_id": bolt, "quantity": "3", "unit_price": "2.50"},
                {"item_id": nut, "quantity": "10", "unit_price": "0.40", "amount": "999"},
            ],
        ),
        follow_redirects=False,
    )
    po = created_id(created)
    lines = lines_of(app, po)
    assert [(str(r["item_id"]), r["quantity"], r["amount"], r["position"]) for r in lines] == [
        (bolt, 3, Decimal("7.50"), 1),
        (nut, 10, Decimal("4.00"), 2),  # the formula decides the amount, the form's order the position
    ]
    order = order_of(app, po)
    assert (order["lines_total"], order["line_count"], order["version"]) == (Decimal("11.50"), 2, 1)
    # The record page shows the rollups; the edit form starts with the saved lines, amounts read-only.
    assert "11.50" in text_of(client.get(f"{ORDERS}/{po}").text)
    form = client.get(f"{ORDERS}/{po}/edit").text
    assert keys_on(form) == [str(r["id"]) for r in lines]
    assert (
        f'name="lines-{lines[0]["id"]}-quantity"' in form
        and f'name="lines-{lines[0]["id"]}-amount"' not in form
    )
    assert "7.50" in form

    # Every line went through the record service: an audit entry and a created event each.
    async def audited(s: Any) -> list[str]:
        rows = await s.scalars(sa.select(AuditEntry.action).where(AuditEntry.target_type.like("inventory.%")))
        return sorted(rows.all())

    assert in_db(app, audited).count("record.create") == 2 + 1 + 2  # two items, the order, two lines


def test_editing_changes_removes_adds_and_reorders_lines_and_keeps_unchanged_ones(
    tenants: Any, app: Any
) -> None:
    client = tenants
    bolt, nut = items(client)
    po = created_id(
        post_form(
            client,
            f"{ORDERS}/new",
            order_form(
                "PO-2",
                [
                    {"item_id": bolt, "quantity": "1", "unit_price": "1.00"},
                    {"item_id": nut, "quantity": "2", "unit_price": "1.00"},
                    {"item_id": bolt, "quantity": "3", "unit_price": "1.00"},
                ],
            ),
            follow_redirects=False,
        )
    )
    a, b, c = lines_of(app, po)
    # c moves first and gets quantity 30, b is removed, a is untouched, a new line comes last.
    saved = post_form(
        client,
        f"{ORDERS}/{po}",
        order_form(
            "PO-2",
            [
                {"id": str(c["id"]), "version": "1", "item_id": bolt, "quantity": "30", "unit_price": "1.00"},
                {"id": str(a["id"]), "version": "1", "item_id": bolt, "quantity": "1", "unit_price": "1.00"},
                {
                    "id": str(b["id"]),
                    "version": "1",
                    "item_id": nut,
                    "quantity": "2",
                    "unit_price": "1.00",
                    "remove": "1",
                },
                {"item_id": nut, "quantity": "5", "unit_price": "2.00"},
            ],
            version="1",
        ),
        follow_redirects=False,
    )
    assert saved.status_code == 303, text_of(saved.text)[:800]
    after = lines_of(app, po)
    assert [(r["id"], r["quantity"], r["position"]) for r in after[:2]] == [(c["id"], 30, 1), (a["id"], 1, 2)]
    assert (after[2]["quantity"], after[2]["position"], len(after)) == (5, 3, 3)
    assert {r["id"]: r["version"] for r in after}[a["id"]] == 2  # moved: its position changed
    order = order_of(app, po)
    assert (order["lines_total"], order["line_count"], order["version"]) == (Decimal("41.00"), 3, 2)
    # Saving again with nothing changed writes no line (versions stay) but checks and bumps the order.
    form = client.get(f"{ORDERS}/{po}/edit").text
    again = [
        {
            "id": str(r["id"]),
            "version": str(r["version"]),
            "item_id": str(r["item_id"]),
            "quantity": str(r["quantity"]),
            "unit_price": str(r["unit_price"]),
        }
        for r in after
    ]
    assert keys_on(form) == [str(r["id"]) for r in after]
    resaved = post_form(
        client, f"{ORDERS}/{po}", order_form("PO-2", again, version="2"), follow_redirects=False
    )
    assert resaved.status_code == 303
    assert [r["version"] for r in lines_of(app, po)] == [r["version"] for r in after]
    assert order_of(app, po)["version"] == 3


def test_a_bad_line_is_marked_on_its_row_with_everything_typed_kept_and_nothing_saved(
    tenants: Any, app: Any
) -> None:
    client = tenants
    bolt, nut = items(client)
    refused = post_form(
        client,
        f"{ORDERS}/new",
        order_form(
            "PO-3",
            [
                {"key": "nfirst", "item_id": bolt, "quantity": "4", "unit_price": "1.25"},
                {"key": "nsecond", "item_id": nut, "quantity": "many", "unit_price": "0.5"},
                {"key": "nthird", "item_id": "", "quantity": "2", "unit_price": ""},
            ],
            notes="typed notes",
        ),
    )
    assert refused.status_code == 422
    page = refused.text
    assert 'id="e-lines-nsecond-quantity"' in page and "Enter a whole number" in page
    assert 'id="e-lines-nthird-item_id"' in page and "This field is required." in page
    assert 'id="e-lines-nfirst-quantity"' not in page
    assert "Please correct the 2 marked fields" in text_of(page)
    # Everything typed is still there: the order's fields, each row's values, in their order.
    assert keys_on(page) == ["nfirst", "nsecond", "nthird"]
    assert (
        'name="lines-nsecond-quantity" aria-label="Quantity" required aria-required="true" aria-invalid="true"'
        in page
    )
    assert re.search(r'name="lines-nsecond-quantity"[^>]*value="many"', page)
    assert re.search(r'name="lines-nfirst-unit_price"[^>]*value="1.25"', page)
    assert "typed notes" in page and 'value="PO-3"' in page
    assert db_rows(app, "purchase_order") == [] and db_rows(app, "purchase_order_line") == []

    # A parent error and a line error at once: both are shown, still nothing saved.
    both = post_form(
        client,
        f"{ORDERS}/new",
        order_form("", [{"key": "nx", "item_id": bolt, "quantity": "x", "unit_price": "1"}]),
    )
    assert both.status_code == 422
    assert 'id="e-order_no"' in both.text and 'id="e-lines-nx-quantity"' in both.text
    assert db_rows(app, "purchase_order") == []


def test_without_script_add_and_move_redraw_the_form_and_htmx_adds_one_row(tenants: Any, app: Any) -> None:
    client = tenants
    bolt, _nut = items(client)
    rows = [
        {"key": "na", "item_id": bolt, "quantity": "1", "unit_price": "1"},
        {"key": "nb", "item_id": bolt, "quantity": "2", "unit_price": "1"},
    ]
    added = post_form(client, f"{ORDERS}/new", [*order_form("PO-4", rows), ("_add", "lines")])
    assert added.status_code == 200
    keys = keys_on(added.text)
    assert keys[:2] == ["na", "nb"] and len(keys) == 3 and re.fullmatch(r"n[0-9a-f]{8}", keys[2])
    moved = post_form(client, f"{ORDERS}/new", [*order_form("PO-4", rows), ("_move", "lines:nb:up")])
    assert keys_on(moved.text) == ["nb", "na"]
    assert db_rows(app, "purchase_order") == []  # neither button saves

    fragment = client.get(f"{ORDERS}/inline/lines", headers=HX)
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert fragment.text.count("data-inline-row") == 1 and 'name="lines-present"' not in fragment.text
    assert re.search(r'name="lines-n[0-9a-f]{8}-quantity"[^>]*value="1"', fragment.text)  # the default
    assert client.get(f"{ORDERS}/inline/nothing", headers=HX).status_code == 404
    opened = client.get(f"{ORDERS}/inline/lines", follow_redirects=False)  # as a page: the form
    assert opened.status_code == 303 and opened.headers["location"] == f"{ORDERS}/new"


def test_version_checks_cover_the_order_and_each_line(tenants: Any, app: Any) -> None:
    client = tenants
    bolt, _nut = items(client)
    po = created_id(
        post_form(
            client,
            f"{ORDERS}/new",
            order_form("PO-5", [{"item_id": bolt, "quantity": "1", "unit_price": "1.00"}]),
            follow_redirects=False,
        )
    )
    (line,) = lines_of(app, po)
    mine = [{"id": str(line["id"]), "version": "1", "item_id": bolt, "quantity": "7", "unit_price": "1.00"}]

    # Someone edits the line on its own page: my order form's line is stale, the order is not.
    async def bump(s: Any) -> None:
        acme = await directory.get_tenant(s, "acme")
        ref = await runtime.entity_in_tenant(s, acme.id, "inventory", "purchase_order_line")
        await RecordService(s, acme.id, Actor(None, "other"), lambda _p: True).update(
            ref, line["id"], {"quantity": "5"}, 1
        )

    in_db(app, bump)
    stale = post_form(client, f"{ORDERS}/{po}", order_form("PO-5", mine, version="1"))
    assert stale.status_code == 409
    text = text_of(stale.text)
    assert "Someone else changed this row" in text and "Quantity: 5" in text
    assert re.search(r'name="lines-[^"]+-quantity"[^>]*value="7"', stale.text)  # mine is kept
    assert f'name="lines-{line["id"]}-version" value="2"' in stale.text  # saving again overwrites
    assert lines_of(app, po)[0]["quantity"] == 5 and order_of(app, po)["version"] == 1
    mine[0]["version"] = "2"
    assert (
        post_form(
            client, f"{ORDERS}/{po}", order_form("PO-5", mine, version="1"), follow_redirects=False
        ).status_code
        == 303
    )
    assert lines_of(app, po)[0]["quantity"] == 7 and order_of(app, po)["version"] == 2

    # Someone saves the order (from their form) after I opened mine: the order's version stops my save,
    # lines included, and the conflict page's "Overwrite with mine" carries my lines too.
    mine[0] |= {"version": "3", "quantity": "9"}
    stale_order = post_form(client, f"{ORDERS}/{po}", order_form("PO-5", mine, version="1"))
    assert stale_order.status_code == 409 and "Someone else changed" in stale_order.text
    assert f'name="lines-{line["id"]}-quantity" value="9"' in stale_order.text
    assert lines_of(app, po)[0]["quantity"] == 7


# --- permissions and data scope --------------------------------------------------------------------


def _member(app: Any, email: str, grants: list[str], scope: dict[str, ScopeRule] | None = None) -> None:
    async def work(s: Any) -> None:
        actor = Actor(None, "test")
        acme = await directory.get_tenant(s, "acme")
        role = await roles.create_role(s, actor, acme.id, email.split("@")[0].title())
        await roles.set_role_grants(s, actor, role, grants)
        if scope:
            await scopes.set_role_scopes(s, actor, role, scope, await scopes.scope_entities(s))
        user = await directory.create_user(s, actor, email, PW)
        await directory.add_member(s, actor, acme.id, user, role)

    in_db(app, work)


def test_a_user_without_insert_on_lines_adds_none_through_the_form_or_the_api(tenants: Any, app: Any) -> None:
    client = tenants
    bolt, _nut = items(client)
    po = created_id(
        post_form(
            client,
            f"{ORDERS}/new",
            order_form("PO-6", [{"item_id": bolt, "quantity": "1", "unit_price": "1.00"}]),
            follow_redirects=False,
        )
    )
    (line,) = lines_of(app, po)
    grants = [
        "db.purchase_order.*",
        "db.purchase_order_line.select",
        "db.purchase_order_line.update",
        "db.inventory_item.select",
    ]
    _member(app, "clerk@acme.test", grants)
    logout(client)
    token = api_token(client, "clerk@acme.test", PW)
    login(client, "clerk@acme.test", PW)
    form = client.get(f"{ORDERS}/{po}/edit").text
    assert 'name="_add"' not in form and 'name="lines-present"' in form  # no "Add", no "Remove"
    assert f'name="lines-{line["id"]}-remove"' not in form
    kept = {"id": str(line["id"]), "version": "1", "item_id": bolt, "quantity": "2", "unit_price": "1.00"}
    crafted = post_form(
        client,
        f"{ORDERS}/{po}",
        order_form(
            "PO-6", [kept, {"key": "nnew", "item_id": bolt, "quantity": "1", "unit_price": "1"}], version="1"
        ),
    )
    assert crafted.status_code == 403
    assert "db.purchase_order_line.insert" in text_of(crafted.text)
    assert len(lines_of(app, po)) == 1 and lines_of(app, po)[0]["quantity"] == 1  # nothing saved
    # Editing the line they may update works.
    ok = post_form(client, f"{ORDERS}/{po}", order_form("PO-6", [kept], version="1"), follow_redirects=False)
    assert ok.status_code == 303 and lines_of(app, po)[0]["quantity"] == 2
    # Leaving the line out would delete it: refused too, on the set.
    gone = post_form(client, f"{ORDERS}/{po}", order_form("PO-6", [], version="2"))
    assert gone.status_code == 403 and "db.purchase_order_line.delete" in text_of(gone.text)

    h = bearer(token, "acme")
    api = client.put(
        f"{API}/{po}",
        headers=h,
        json={
            "version": 2,
            "lines": [{**kept, "version": 2, "quantity": 3}, {"item_id": bolt, "quantity": 1}],
        },
    )
    assert api.status_code == 403, api.text
    assert set(api.json()["errors"]) == {"lines[1]"} and "insert" in api.json()["errors"]["lines[1]"]
    assert len(lines_of(app, po)) == 1 and lines_of(app, po)[0]["quantity"] == 2
    created = client.post(
        API, headers=h, json={"order_no": "PO-X", "lines": [{"item_id": bolt, "quantity": 1}]}
    )
    assert created.status_code == 403 and db_rows(app, "purchase_order", order_no="PO-X") == []


def test_lines_outside_the_users_scope_are_neither_shown_nor_replaced(tenants: Any, app: Any) -> None:
    client = tenants
    bolt, _nut = items(client)
    grants = ["db.purchase_order.*", "db.purchase_order_line.*", "db.inventory_item.select"]
    _member(app, "own@acme.test", grants, {"purchase_order_line": ScopeRule("own")})
    po = created_id(
        post_form(
            client,
            f"{ORDERS}/new",
            order_form("PO-7", [{"item_id": bolt, "quantity": "1", "unit_price": "1.00"}]),
            follow_redirects=False,
        )
    )
    (root_line,) = lines_of(app, po)
    logout(client)
    login(client, "own@acme.test", PW)
    form = client.get(f"{ORDERS}/{po}/edit").text
    assert keys_on(form) == []  # root's line is not theirs to see
    saved = post_form(
        client,
        f"{ORDERS}/{po}",
        order_form("PO-7", [{"item_id": bolt, "quantity": "4", "unit_price": "1.00"}], version="1"),
        follow_redirects=False,
    )
    assert saved.status_code == 303, text_of(saved.text)[:600]
    lines = lines_of(app, po)
    assert {r["id"] for r in lines} >= {root_line["id"]} and len(lines) == 2  # root's line survived
    # Naming root's line by id does not reach it either.
    probe = post_form(
        client,
        f"{ORDERS}/{po}",
        order_form(
            "PO-7",
            [
                {
                    "id": str(root_line["id"]),
                    "version": "1",
                    "item_id": bolt,
                    "quantity": "9",
                    "unit_price": "1",
                }
            ],
            version="2",
        ),
    )
    assert probe.status_code == 422 and "belongs to this record" in text_of(probe.text)
    assert order_of(app, po)["line_count"] == 2


# --- the JSON API ------------------------------------------------------------------------------------


def test_api_expands_lines_and_writes_them_nested_in_one_transaction(tenants: Any, app: Any) -> None:
    client = tenants
    bolt, nut = items(client)
    logout(client)
    h = bearer(api_token(client, ADMIN_EMAIL, ADMIN_PASSWORD), "acme")

    created = client.post(
        API,
        headers=h,
        json={
            "order_no": "PO-API",
            "lines": [
                {"item_id": bolt, "quantity": 2, "unit_price": "2.50"},
                {"item_id": nut, "quantity": 5, "unit_price": "0.40"},
            ],
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["lines_total"] == "7.00" and body["line_count"] == 2
    assert [(ln["quantity"], ln["amount"], ln["position"]) for ln in body["lines"]] == [
        (2, "5.00", 1),
        (5, "2.00", 2),
    ]
    po = body["id"]

    got = client.get(f"{API}/{po}?expand=lines", headers=h).json()
    assert [ln["id"] for ln in got["lines"]] == [ln["id"] for ln in body["lines"]]
    assert "lines" not in client.get(f"{API}/{po}", headers=h).json()
    listed = client.get(f"{API}?expand=lines", headers=h).json()["items"]
    assert [len(i["lines"]) for i in listed] == [2]
    bad = client.get(f"{API}/{po}?expand=notes", headers=h)
    assert bad.status_code == 422 and "expand" in bad.json()["errors"]

    first, second = got["lines"]
    # Errors are located by row and field; nothing of the request is kept.
    refused = client.patch(
        f"{API}/{po}",
        headers=h,
        json={
            "version": 1,
            "notes": "changed",
            "lines": [
                {"id": first["id"], "version": first["version"], "quantity": 3},
                {"item_id": nut, "quantity": "lots"},
                {"quantity": 1},
            ],
        },
    )
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert problem["errors"] == {
        "lines[1].quantity": "Enter a whole number, like 42.",
        "lines[2].item_id": "This field is required.",
    }
    again = client.get(f"{API}/{po}?expand=lines", headers=h).json()
    assert (
        again["notes"] is None
        and again["version"] == 1
        and [ln["quantity"] for ln in again["lines"]] == [2, 5]
    )

    # Update the first, delete the second (left out), add one, in one PUT; the order's version checks all.
    put = client.put(
        f"{API}/{po}",
        headers=h,
        json={
            "version": 1,
            "lines": [
                {"item_id": nut, "quantity": 1, "unit_price": "1.00"},
                {"id": first["id"], "version": 1, "quantity": 4},
            ],
        },
    )
    assert put.status_code == 200, put.text
    out = put.json()
    assert out["version"] == 2 and out["line_count"] == 2 and out["lines_total"] == "11.00"
    assert [(ln["quantity"], ln["position"]) for ln in out["lines"]] == [(1, 1), (4, 2)]
    assert second["id"] not in {ln["id"] for ln in out["lines"]}
    assert (
        client.get(f"/api/v1/plugins/inventory/purchase_order_line/{second['id']}", headers=h).status_code
        == 404
    )

    # Stale: the order's version (409 with the current order), then a line's (409 locating the line).
    stale = client.put(f"{API}/{po}", headers=h, json={"version": 1, "lines": []})
    assert stale.status_code == 409 and stale.json()["current"]["version"] == 2
    kept = out["lines"][1]
    stale_line = client.put(
        f"{API}/{po}",
        headers=h,
        json={"version": 2, "lines": [{"id": kept["id"], "version": 1, "quantity": 8}]},
    )
    assert stale_line.status_code == 409, stale_line.text
    assert list(stale_line.json()["errors"]) == ["lines[0]"] and stale_line.json()["current"]["version"] == 2
    assert len(client.get(f"{API}/{po}?expand=lines", headers=h).json()["lines"]) == 2  # nothing deleted
    # Shape errors are located too.
    shapes = client.put(
        f"{API}/{po}",
        headers=h,
        json={"version": 2, "lines": [{"id": str(uuid.uuid4()), "version": 1}, {"id": kept["id"]}, 5]},
    )
    assert shapes.status_code == 422
    assert set(shapes.json()["errors"]) == {"lines[0].id", "lines[1].version", "lines[2]"}
    assert client.put(f"{API}/{po}", headers=h, json={"version": 2, "lines": {"a": 1}}).status_code == 422


def test_openapi_describes_expand_and_nested_writes(client: Any) -> None:
    paths = client.get("/api/schema/openapi.json").json()["paths"]
    one = paths["/api/v1/plugins/{plugin_id}/{entity}/{record_id}"]
    assert "expand=lines" in one["get"]["description"]
    for method in ("put", "patch"):
        assert "lines[2].quantity" in one[method]["description"] and "version" in one[method]["description"]
    assert "whole set" in paths["/api/v1/plugins/{plugin_id}/{entity}"]["post"]["description"]
