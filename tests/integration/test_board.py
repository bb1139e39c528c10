"""The board (kanban) of a crud page, on both databases: columns per option of the select field (and
one for no value) with counts and cards; a move is an update through the record service (audit,
event, version, validators), a stale card answers a conflict and the board as it is now; readers
without the update permission get no move controls and are refused; only rows in the reader's data
scope show and move; big columns page with "Show n more"."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app import workflow
from app.access import roles, scopes
from app.access.scopes import ScopeRule
from app.audit import Actor
from app.core.models import AuditEntry, EventRecord
from app.demo import DEMO_PROCESS
from app.identity import directory
from app.installs import lifecycle
from app.plugins import runtime
from app.plugins.packages import read_folder
from app.records.service import RecordService
from tests.helpers import login, logout, post_form, text_of
from tests.integration.test_record_pages import HX, in_db, manifest_only

PO = "/t/acme/p/inventory/inventory/purchase"
BOARD = PO + "/board"
ALICE = ("alice@acme.test", "alice-password-1")  # Admin
BOB = ("bob@acme.test", "bob-password-1")  # Member: may see orders, not change them
DANA = ("dana@acme.test", "dana-password-1")  # Buyer: sees and changes her own orders only


@pytest.fixture
def acme(client: Any, app: Any, tmp_path: Path) -> dict[str, Any]:
    inventory = manifest_only("inventory", tmp_path)

    async def work(s: Any) -> dict[str, Any]:
        actor = Actor(None, "test")
        await lifecycle.upload(s, actor, read_folder(inventory), app.state.settings, install_now=True)
        acme = await directory.create_tenant(s, actor, "acme", "Acme")
        await lifecycle.enable(s, actor, acme.id, "inventory")
        member = await roles.get_role(s, acme.id, "Member")
        await roles.grant(s, actor, member, ["db.purchase_order.select", "db.supplier.select"])
        buyer = await roles.create_role(s, actor, acme.id, "Buyer")
        await roles.grant(s, actor, buyer, ["db.purchase_order.*", "db.supplier.select"])
        await scopes.set_role_scopes(
            s, actor, buyer, {"purchase_order": ScopeRule("own")}, await scopes.scope_entities(s)
        )
        users = {}
        for (email, password), role in (
            (ALICE, await roles.get_role(s, acme.id, "Admin")),
            (BOB, member),
            (DANA, buyer),
        ):
            user = await directory.create_user(s, actor, email, password, email.split("@")[0].title())
            await directory.add_member(s, actor, acme.id, user, role)
            users[email] = user.id
        orders = await runtime.entity_in_tenant(s, acme.id, "inventory", "purchase_order")
        suppliers = await runtime.entity_in_tenant(s, acme.id, "inventory", "supplier")
        alice = RecordService(s, acme.id, Actor(users[ALICE[0]], ALICE[0]), lambda _p: True)
        supplier = await alice.insert(suppliers, {"code": "ACME", "name": "Acme Supply"})
        ids = {}
        for no, status in (("PO-1", "draft"), ("PO-2", "draft"), ("PO-3", "submitted")):
            row = await alice.insert(
                orders,
                {
                    "order_no": no,
                    "status": status,
                    "supplier_id": str(supplier["id"]),
                    "total_amount": "12.5",
                },
            )
            ids[no] = str(row["id"])
        dana = RecordService(s, acme.id, Actor(users[DANA[0]], DANA[0]), lambda _p: True)
        ids["PO-D"] = str((await dana.insert(orders, {"order_no": "PO-D", "status": "draft"}))["id"])
        return {"ids": ids, "tenant": acme.id}

    found = in_db(app, work)
    login(client, *ALICE)
    return found


def columns_of(page: str) -> dict[str, list[str]]:
    """Column heading -> the order numbers on its cards."""
    out = {}
    for section in re.findall(r'<section class="board-column".*?</section>', page, re.S):
        head = text_of(re.search(r"<h2.*?</h2>", section, re.S).group(0)).split()
        out[" ".join(head[:-1])] = re.findall(r'<a href="[^"]+/[0-9a-f-]{36}">(PO-[^<]+)</a>', section)
    return out


def version_of(page: str, record_id: str) -> str:
    card = page[page.index(f'data-id="{record_id}"') :]
    return re.search(r'name="version" value="(\d+)"', card).group(1)


def status_in_db(app: Any, tenant_id: Any, record_id: str) -> tuple[str | None, int]:
    async def read(s: Any) -> tuple[str | None, int]:
        orders = await runtime.entity_in_tenant(s, tenant_id, "inventory", "purchase_order")
        row = (
            (await s.execute(sa.select(orders.table).where(orders.table.c.id == uuid.UUID(record_id))))
            .mappings()
            .one()
        )
        return row["status"], row["version"]

    return in_db(app, read)


def move(client: Any, record_id: str, value: str, version: str, htmx: bool = True) -> Any:
    return post_form(
        client,
        f"{PO}/{record_id}/move",
        {"value": value, "version": version},
        headers=HX if htmx else {},
        follow_redirects=False,
    )


def test_the_board_shows_a_column_per_option(acme: dict[str, Any], client: Any) -> None:
    page = client.get(BOARD)
    assert page.status_code == 200
    cols = columns_of(page.text)
    assert list(cols) == ["Draft", "Submitted", "Approved", "Rejected", "Received", "No Status"]
    assert sorted(cols["Draft"]) == ["PO-1", "PO-2", "PO-D"] and cols["Submitted"] == ["PO-3"]
    assert re.search(r'Draft</span>\s*<span class="count"[^>]*>3</span>', page.text)
    card = page.text[page.text.index(f'data-id="{acme["ids"]["PO-1"]}"') :].split("</li>")[0]
    assert "Acme Supply" in card and "12.50" in card  # the card's fields: supplier label, amount
    assert 'class="drag-handle"' in card and 'form class="move"' in card  # Alice may update
    assert '<script src="/static/sortable.min.js" defer></script>' in page.text
    # Searching narrows the board; the list links to it and back.
    searched = columns_of(client.get(BOARD, params={"q": "PO-2"}, headers=HX).text)
    assert searched["Draft"] == ["PO-2"] and searched["Submitted"] == []
    assert f'href="{BOARD}"' in client.get(PO).text
    assert client.get("/t/acme/p/inventory/inventory/items/board").status_code == 404  # no board there


def test_a_move_is_an_update_through_the_record_service(acme: dict[str, Any], client: Any, app: Any) -> None:
    po1 = acme["ids"]["PO-1"]
    version = version_of(client.get(BOARD).text, po1)
    moved = move(client, po1, "submitted", version)
    assert moved.status_code == 200 and "Moved Purchase order PO-1" in text_of(moved.text)
    assert sorted(columns_of(moved.text)["Submitted"]) == ["PO-1", "PO-3"]
    assert status_in_db(app, acme["tenant"], po1) == ("submitted", 2)

    async def trail(s: Any) -> tuple[list[Any], int]:
        audits = (
            await s.execute(
                sa.select(AuditEntry.action, AuditEntry.before, AuditEntry.after).where(
                    AuditEntry.target_id == po1
                )
            )
        ).all()
        events = await s.scalar(
            sa.select(sa.func.count()).where(
                EventRecord.type == "inventory.purchase_order.updated",
                EventRecord.payload["id"].as_string() == po1,
            )
        )
        return [tuple(a) for a in audits], int(events or 0)

    audits, events = in_db(app, trail)
    assert ("record.update", {"status": "draft", "version": 1}, {"status": "submitted", "version": 2}) in [
        (a, {k: b[k] for k in ("status", "version")}, {k: c[k] for k in ("status", "version")})
        for a, b, c in audits
        if a == "record.update"
    ]
    assert events == 1

    # The same card moved again from the stale board: a conflict, nothing saved, the board redrawn.
    stale = move(client, po1, "received", version)
    assert stale.status_code == 409
    assert "was changed by someone else meanwhile, so it was not moved" in text_of(stale.text)
    assert "PO-1" in columns_of(stale.text)["Submitted"] and status_in_db(app, acme["tenant"], po1) == (
        "submitted",
        2,
    )
    # To the column of rows without a status, and without script (a redirect with a flash).
    plain = move(client, po1, "", "2", htmx=False)
    assert plain.status_code == 303 and plain.headers["location"] == BOARD
    assert columns_of(client.get(BOARD).text)["No Status"] == ["PO-1"]
    assert status_in_db(app, acme["tenant"], po1) == (None, 3)
    empty = client.get(PO, params={"status__empty": "true"}).text  # where the column's "more" links to
    assert "PO-1" in empty and "PO-2" not in empty


def test_no_move_without_the_update_permission(acme: dict[str, Any], client: Any, app: Any) -> None:
    logout(client)
    login(client, *BOB)
    page = client.get(BOARD).text
    assert sorted(columns_of(page)["Draft"]) == ["PO-1", "PO-2", "PO-D"]
    assert "drag-handle" not in page and 'form class="move"' not in page
    po2 = acme["ids"]["PO-2"]
    refused = move(client, po2, "submitted", "1")
    assert refused.status_code == 403 and "db.purchase_order.update" in text_of(refused.text)
    assert status_in_db(app, acme["tenant"], po2) == ("draft", 1)


def test_only_rows_in_the_data_scope_show_and_move(acme: dict[str, Any], client: Any, app: Any) -> None:
    logout(client)
    login(client, *DANA)
    cols = columns_of(client.get(BOARD).text)
    assert cols["Draft"] == ["PO-D"] and cols["Submitted"] == []
    foreign = move(client, acme["ids"]["PO-2"], "submitted", "1")
    assert foreign.status_code == 404 and "Not moved" in text_of(foreign.text)
    assert status_in_db(app, acme["tenant"], acme["ids"]["PO-2"]) == ("draft", 1)
    own = move(client, acme["ids"]["PO-D"], "submitted", "1")
    assert own.status_code == 200 and columns_of(own.text)["Submitted"] == ["PO-D"]


def test_validators_decide_a_move(acme: dict[str, Any], client: Any, app: Any) -> None:
    """With an approval process deciding the status, a Buyer cannot drag her order to Approved."""

    async def process(s: Any) -> None:
        orders = await runtime.entity_in_tenant(s, acme["tenant"], "inventory", "purchase_order")
        await workflow.save_process(s, acme["tenant"], Actor(None, "test"), orders, DEMO_PROCESS)

    in_db(app, process)
    logout(client)
    login(client, *DANA)
    refused = move(client, acme["ids"]["PO-D"], "approved", "1")
    assert refused.status_code == 422 and "Not moved" in text_of(refused.text)
    assert status_in_db(app, acme["tenant"], acme["ids"]["PO-D"]) == ("draft", 1)


def test_big_columns_show_more(acme: dict[str, Any], client: Any, app: Any) -> None:
    async def many(s: Any) -> None:
        orders = await runtime.entity_in_tenant(s, acme["tenant"], "inventory", "purchase_order")
        svc = RecordService(s, acme["tenant"], Actor(None, "test"), lambda _p: True)
        for i in range(20):
            await svc.insert(orders, {"order_no": f"PO-X{i:02d}", "status": "rejected"})

    in_db(app, many)
    page = client.get(BOARD).text
    assert len(columns_of(page)["Rejected"]) == 20  # the manifest's limit
    # 20 rejected fit exactly: no "more"; one more makes a second page.
    assert re.search(r"column=rejected", page) is None and "more" not in text_of(page)

    async def one_more(s: Any) -> None:
        orders = await runtime.entity_in_tenant(s, acme["tenant"], "inventory", "purchase_order")
        svc = RecordService(s, acme["tenant"], Actor(None, "test"), lambda _p: True)
        await svc.insert(orders, {"order_no": "PO-X20", "status": "rejected"})

    in_db(app, one_more)
    page = client.get(BOARD).text
    assert "Show 1 more" in text_of(page)
    url = re.search(r'hx-get="([^"]+column=rejected[^"]*)"', page).group(1).replace("&amp;", "&")
    rest = client.get(url, headers=HX)
    assert rest.status_code == 200 and "<section" not in rest.text
    assert re.findall(r">(PO-X\d+)</a>", rest.text) == ["PO-X00"]  # the oldest: -updated_at order


def test_a_move_needs_the_csrf_token(acme: dict[str, Any], client: Any, app: Any) -> None:
    po1 = acme["ids"]["PO-1"]
    forged = client.post(f"{PO}/{po1}/move", data={"value": "received", "version": "1"}, headers=HX)
    assert forged.status_code == 403
    assert status_in_db(app, acme["tenant"], po1) == ("draft", 1)
