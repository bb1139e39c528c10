"""What a write costs in database round trips: statements per request, counted with SQLAlchemy's
`before_cursor_execute` on the app's own engine (psycopg's implicit BEGIN and the COMMIT are not
statements there; SQLite's BEGIN, sent as a statement, is not counted either).

On PostgreSQL a create is the session read and one INSERT whose CTEs check the reference (same tenant,
within the data scope), refuse a taken unique value, and write the audit and event rows — plus COMMIT.
An update reads the row, writes it (version checked in the UPDATE, audit and event in its CTEs) and
commits. The edit form reads the session, the row, the reference's options and the header's badges
(the tenant switcher comes from the per-worker cache). SQLite keeps the generic path (no network between statements): its figures are printed, not
held to the same bound. `PORTAL_SHOW_TRIPS=1` prints every figure with its statements."""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import event

from tests.helpers import post_form, text_of
from tests.integration.test_record_pages import ITEMS, make, tenants  # noqa: F401 (fixture)

CATS = ITEMS.replace("/items", "/categories")
# Statements per request on PostgreSQL.
PG_TARGETS = {
    "create": 2,  # session; INSERT with its CTEs (reference, audit, event)
    "create with reference": 2,
    "update": 3,  # session; the row; UPDATE with its CTEs (version, unique, reference, audit, event)
    "edit form GET": 4,  # session; the row; the reference's options; the header's badges
}


def trips(app: Any, request: Any) -> tuple[Any, list[str]]:
    seen: list[tuple[Any, str]] = []
    engine = app.state.alchemy.get_engine().sync_engine

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append((conn.connection.dbapi_connection, " ".join(statement.split())))

    event.listen(engine, "before_cursor_execute", note)
    try:
        response = request()
    finally:
        event.remove(engine, "before_cursor_execute", note)
    # The request's own connection (the one that read the session): not the event dispatcher's
    # periodic sweep, which may run meanwhile on another.
    mine = next((c for c, s in seen if "FROM web_sessions" in s), None)
    return response, [s for c, s in seen if c is mine]


def count(statements: list[str]) -> int:
    return len([s for s in statements if not s.startswith("BEGIN")])


def test_write_round_trips(tenants, app):
    client = tenants
    dialect = app.state.alchemy.get_engine().dialect.name
    tools = make(client, CATS, {"name": "Tools", "code": "TL"})
    make(client, ITEMS, {"sku": "W-0", "name": "Warm", "status": "active"})  # caches warm
    form = {"name": "Hammer", "quantity": "3", "unit": "pcs", "status": "active"}
    figures: dict[str, tuple[int, list[str]]] = {}

    r, seen = trips(app, lambda: post_form(client, ITEMS, {**form, "sku": "W-1"}, follow_redirects=False))
    assert r.status_code == 303, text_of(r.text)[:400]
    figures["create"] = (count(seen), seen)
    r, seen = trips(
        app,
        lambda: post_form(
            client, ITEMS, {**form, "sku": "W-2", "category_id": tools}, follow_redirects=False
        ),
    )
    assert r.status_code == 303, text_of(r.text)[:400]
    item = r.headers["location"].rsplit("/", 1)[1]
    figures["create with reference"] = (count(seen), seen)
    assert client.get(f"{ITEMS}/{item}/edit").status_code == 200  # fills the worker's switcher cache
    r, seen = trips(app, lambda: client.get(f"{ITEMS}/{item}/edit"))
    assert r.status_code == 200 and 'name="version" value="1"' in r.text
    figures["edit form GET"] = (count(seen), seen)
    r, seen = trips(
        app,
        lambda: post_form(
            client,
            f"{ITEMS}/{item}",
            {**form, "sku": "W-2", "category_id": tools, "quantity": "4", "version": "1"},
            follow_redirects=False,
        ),
    )
    assert r.status_code == 303, text_of(r.text)[:400]
    figures["update"] = (count(seen), seen)

    if os.environ.get("PORTAL_SHOW_TRIPS") == "1":
        for name, (n, statements) in figures.items():
            print(f"\n{dialect} {name}: {n} round trips")
            for s in statements:
                print("   ", s[:160])
    if dialect == "postgresql":
        got = {name: n for name, (n, _) in figures.items()}
        assert got == PG_TARGETS, {name: figures[name] for name in got if got[name] != PG_TARGETS[name]}


def test_refusals_of_the_one_statement_writes(tenants, app):
    """What the statement's CTEs refuse comes back as the generic path's inline errors, nothing written:
    another tenant's category, a taken SKU (create and update) and a stale version."""
    client = tenants
    tools = make(client, CATS, {"name": "Tools", "code": "TL"})
    theirs = make(client, "/t/globex/p/inventory/inventory/categories", {"name": "Secret", "code": "SC"})
    form = {"name": "Hammer", "quantity": "3", "unit": "pcs", "status": "active"}
    make(client, ITEMS, {**form, "sku": "R-1"})
    item = make(client, ITEMS, {**form, "sku": "R-2", "category_id": tools})

    foreign = post_form(client, ITEMS, {**form, "sku": "R-3", "category_id": theirs})
    assert foreign.status_code in (409, 422) and "No Category with that id in this tenant." in foreign.text
    taken = post_form(client, ITEMS, {**form, "sku": "R-1"})
    assert taken.status_code in (409, 422) and "already has SKU = R-1" in text_of(taken.text)
    both = post_form(client, ITEMS, {**form, "sku": "R-1", "category_id": theirs})
    assert "already has SKU = R-1" in text_of(both.text) and "No Category with that id" in both.text

    edit = {**form, "sku": "R-1", "category_id": tools, "version": "1"}
    clash = post_form(client, f"{ITEMS}/{item}", edit)
    assert clash.status_code in (409, 422) and "already has SKU = R-1" in text_of(clash.text)
    moved = post_form(client, f"{ITEMS}/{item}", {**edit, "sku": "R-2", "category_id": theirs})
    assert "No Category with that id in this tenant." in moved.text
    saved = post_form(client, f"{ITEMS}/{item}", {**edit, "sku": "R-2"}, follow_redirects=False)
    assert saved.status_code == 303
    stale = post_form(client, f"{ITEMS}/{item}", {**edit, "sku": "R-2", "name": "Late"})
    assert stale.status_code == 409 and "Overwrite with mine" in stale.text
    assert "R-3" not in client.get(ITEMS).text and "Late" not in client.get(f"{ITEMS}/{item}").text
