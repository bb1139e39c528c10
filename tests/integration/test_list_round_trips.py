"""Round trips of list reads: how many statements a list page, a far page, a filtered page and a search
keystroke (the rows fragment) send, counted with SQLAlchemy's `before_cursor_execute` on the app's own
engine, on both databases. BEGIN/COMMIT count too (SQLite sends BEGIN as a statement; on PostgreSQL the
driver's BEGIN and COMMIT are counted through the engine's `begin`/`commit` events)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from app.core.db import READS_ONLY
from tests.helpers import post_form, text_of
from tests.integration.test_record_pages import HX, ITEMS, seed_items, tenants  # noqa: F401 (fixture)


def sent(
    app: Any, client: Any, path: str, params: dict[str, str], headers: dict[str, str] | None = None
) -> list[str]:
    """The statements (and BEGIN/COMMIT round trips) one request sends. The listeners stay installed for
    the app's life (removing one while a background task begins a transaction races with it)."""
    engine = app.state.alchemy.get_engine().sync_engine
    seen: list[tuple[int, str]] | None = app.state.get("round_trips")
    if seen is None:
        seen = []
        app.state.round_trips = seen
        recording = app.state.round_trips_on = [False]

        def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if recording[0]:
                seen.append((id(conn.connection.dbapi_connection), " ".join(statement.split())))

        def begin(conn: Any) -> None:
            # psycopg sends BEGIN itself (SQLite's is a statement, noted above); none in autocommit.
            options = conn.get_execution_options()
            if (
                recording[0]
                and conn.dialect.name != "sqlite"
                and options.get("isolation_level") != "AUTOCOMMIT"
            ):
                seen.append((id(conn.connection.dbapi_connection), "BEGIN"))

        def commit(conn: Any) -> None:
            if recording[0] and conn.get_execution_options().get(READS_ONLY) is None:
                seen.append((id(conn.connection.dbapi_connection), "COMMIT"))

        event.listen(engine, "before_cursor_execute", note)
        event.listen(engine, "begin", begin)
        event.listen(engine, "commit", commit)
    seen.clear()
    app.state.round_trips_on[0] = True
    try:
        response = client.get(path, params=params, headers=headers or {})
    finally:
        app.state.round_trips_on[0] = False
    assert response.status_code == 200, text_of(response.text)[:400]
    # The event dispatcher polls in the background on its own connections: leave those out.
    background = {c for c, statement in seen if "event_log" in statement}
    return [statement for c, statement in seen if c not in background]


# Session (with the tenant), rows with their capped count, the category filter's options, the header's
# badges. No BEGIN/COMMIT: list reads run without a transaction; saved views and share roles come from
# the per-worker cache (read once, then not again until a view or role changes).
PAGE_STATEMENTS = 4
# A search keystroke (the rows fragment): the session and the rows with their count.
FRAGMENT_STATEMENTS = 2


def test_list_reads_in_few_round_trips(tenants, app):
    client = tenants
    cats = seed_items(client, n=6)
    cases = {
        "list page": ({}, None),
        "page 100": ({"page": "100"}, None),  # past the end: the count still comes with the (no) rows
        "filter": ({"category_id": cats["Tools"]}, None),
        "search fragment": ({"q": "widget"}, HX),
    }
    for name, (params, headers) in cases.items():
        sent(app, client, ITEMS, params, headers)  # warm the per-worker caches
        seen = sent(app, client, ITEMS, params, headers)
        want = FRAGMENT_STATEMENTS if headers else PAGE_STATEMENTS
        assert len(seen) == want, (name, seen)
        assert "BEGIN" not in seen and "COMMIT" not in seen, (name, seen)
        assert not any("saved_views" in s or "FROM roles" in s for s in seen), (name, seen)
        rows = [s for s in seen if "portal_total" in s]
        assert len(rows) == 1 and "plugin_inventory_item" in rows[0], (name, seen)


def test_past_the_end_and_counts_stay_right(tenants, app):
    client = tenants
    cats = seed_items(client, n=6)
    page = client.get(ITEMS, params={"page": "100"})
    assert page.status_code == 200 and "6 total" in text_of(page.text)
    tools = client.get(ITEMS, params={"category_id": cats["Tools"]}, headers=HX)
    assert "3 total" in text_of(tools.text) and text_of(tools.text).count("SKU-0") == 3


def test_a_saved_view_shows_on_the_next_request(tenants, app):
    """The cache is keyed by the tenant's views_version: saving a view bumps it, so the next list page
    (any worker) reads the views again and shows the new one."""
    client = tenants
    seed_items(client, n=2)
    client.get(ITEMS)  # fills the cache
    response = post_form(
        client, ITEMS + "/views", {"name": "Only widgets", "q": "widget"}, follow_redirects=False
    )
    assert response.status_code in (200, 303), text_of(response.text)[:400]
    assert "Only widgets" in client.get(ITEMS).text
    loads = app.state.services.view_cache.loads
    client.get(ITEMS)
    assert app.state.services.view_cache.loads == loads  # read from the cache this time


def test_plugin_pages_still_get_a_transaction(tenants, app):
    """A GET page that runs plugin code (a dashboard / custom page) starts a transaction first."""
    client = tenants
    seen = sent(app, client, "/t/acme/p/inventory/inventory/dashboard", {})
    first = next(i for i, s in enumerate(seen) if "plugin_inventory" in s)
    assert any(s.startswith("BEGIN") for s in seen[:first]), seen
