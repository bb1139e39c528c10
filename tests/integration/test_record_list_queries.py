"""What a list request costs in SQL: an HTMX request for the rows region (a search keystroke, a pager
link) must not run the queries only the whole page uses — the reference filters' option lists (up to
FILTER_OPTIONS_LIMIT rows each) and the header badges. Counted with SQLAlchemy's
`before_cursor_execute` on the app's own engine, on both databases."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from tests.helpers import text_of
from tests.integration.test_record_pages import HX, ITEMS, seed_items, tenants  # noqa: F401 (fixture)

# Session, rows (with their labels) and capped count in one statement; the page's saved views come from
# the per-worker cache (tests/integration/test_list_round_trips.py counts the other list requests).
FRAGMENT_STATEMENTS = 2


def statements(
    app: Any, client: Any, params: dict[str, str], headers: dict[str, str] | None = None
) -> tuple[Any, list[str]]:
    seen: list[str] = []
    engine = app.state.alchemy.get_engine().sync_engine

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", note)
    try:
        response = client.get(ITEMS, params=params, headers=headers or {})
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert response.status_code == 200, text_of(response.text)[:400]
    # The event dispatcher polls event_log in the background (its own transactions): not the request's.
    return response, [s for s in seen if "event_log" not in s and s not in ("BEGIN", "COMMIT")]


def option_queries(seen: list[str]) -> list[str]:
    """The category filter's options: the category table ordered by its label (the rows' own category
    labels come with the rows, a subquery by id without an ORDER BY)."""
    return [s for s in seen if s.startswith("SELECT plugin_inventory_category.") and "ORDER BY" in s.upper()]


def test_the_rows_fragment_skips_the_filter_options(tenants, app):
    client = tenants
    seed_items(client, n=6)
    params = {"q": "widget"}

    full, full_sql = statements(app, client, params)
    assert "<html" in full.text and 'id="flt-category_id"' in full.text and ">Tools</option>" in full.text
    assert len(option_queries(full_sql)) == 1

    frag, frag_sql = statements(app, client, params, HX)
    assert "<html" not in frag.text and ">Tools<" in frag.text  # the rows still show category labels
    assert "4 total" in text_of(frag.text)
    assert option_queries(frag_sql) == [], frag_sql
    # The same work for the rows (session, rows, capped count, the rows' category labels), then the
    # fragment stops; the whole page goes on with the options, the header's switcher and badges.
    assert frag_sql == full_sql[: len(frag_sql)], (full_sql, frag_sql)
    # The rows' category labels come with the rows (a subquery per reference column), not a query after.
    assert not any(" IN (" in s and "inventory_category" in s for s in frag_sql), frag_sql
    assert any(
        s.startswith("SELECT portal_count.portal_total, portal_page.id") and "inventory_category" in s
        for s in frag_sql
    )
    assert len([s for s in frag_sql if s != "BEGIN"]) == FRAGMENT_STATEMENTS, frag_sql
    assert len(set(full_sql)) == len(full_sql), full_sql  # no statement runs twice
    page_only = full_sql[len(frag_sql) :]
    assert option_queries(page_only) and any("unread_messages" in s for s in page_only)

    # A history restore (htmx lost its snapshot) is an HTMX request that needs the whole page.
    restore, restore_sql = statements(app, client, params, {**HX, "HX-History-Restore-Request": "true"})
    assert "<html" in restore.text and len(option_queries(restore_sql)) == 1
