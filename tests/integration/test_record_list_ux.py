"""The generated list page as people use it: bulk delete returns to the same list and offers Undo, which
restores exactly that batch through the record service (audit, events, version); text filters match
"contains" unless the page says exact, in pages and in the JSON API; sort state in the headers; an
out-of-range page. On both databases."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import sqlalchemy as sa

from app.core.models import AuditEntry, EventRecord
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.helpers import api_token, bearer, login, logout, post_form, text_of
from tests.integration.test_record_pages import BOB, ITEMS, in_db, make, seed_items, skus_on, tenants  # noqa: F401 (fixture)

UNDO = re.compile(
    r'<form method="post" action="([^"]+/bulk-restore)"[^>]*>.*?name="batch" value="([^"]+)">'
    r'<input type="hidden" name="back" value="([^"]*)">',
    re.S,
)


def query_of(url: str) -> dict[str, list[str]]:
    parts = urlsplit(url.replace("&amp;", "&"))
    return parse_qs(parts.query) | {"": [parts.path]}


SAME_LIST = {"": [ITEMS], "q": ["widget"], "sort": ["sku"], "size": ["10"]}


def bulk_form(html: str) -> str:
    match = re.search(r'<form id="bulk".*?</form>', html, re.S)
    assert match, "the list should carry the bulk form"
    return match.group(0)


def test_the_bulk_form_wraps_only_its_button(tenants):
    client = tenants
    seed_items(client, n=3)
    html = client.get(ITEMS).text
    form = bulk_form(html)
    # Nothing but the CSRF token, the way back and the button: the links and headers are outside the
    # form, so they do not inherit its hx-confirm.
    assert "<a " not in form and "<table" not in form and "hx-confirm=" in form
    boxes = re.findall(r'<input type="checkbox" name="ids" value="[^"]+"([^>]*)>', html)
    assert len(boxes) == 3 and all('form="bulk"' in b for b in boxes)
    table = html[html.index('<table class="records">') : html.index("</table>")]
    assert "hx-confirm" not in table


def test_bulk_delete_returns_to_the_same_list_and_undo_restores_that_batch(tenants, app):
    client = tenants
    seed_items(client, n=12)  # SKU-01..12; "Widget" unless divisible by 3
    params = {"q": "widget", "sort": "sku", "size": "10", "page": "1"}
    listed = client.get(ITEMS, params=params).text
    skus = skus_on(listed)
    assert skus[:2] == ["SKU-01", "SKU-02"]
    back = re.search(r'name="back" value="([^"]*)"', bulk_form(listed)).group(1)
    assert query_of(ITEMS + "?" + back) == SAME_LIST
    ids = re.findall(r'name="ids" value="([^"]+)"', listed)[:2]
    other = make(client, ITEMS, {"sku": "OTHER", "name": "Widget other", "status": "active"})
    post_form(client, f"{ITEMS}/{other}/delete", {}, follow_redirects=False)  # deleted, not in the batch

    done = post_form(
        client,
        f"{ITEMS}/bulk-delete",
        [("ids", ids[0]), ("ids", ids[1]), ("back", back.replace("&amp;", "&"))],
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert query_of(done.headers["location"]) == SAME_LIST
    page = client.get(done.headers["location"]).text
    assert "Deleted 2 Item records" in text_of(page)
    assert skus_on(page)[:1] == ["SKU-04"]  # the same search and sort
    undo = UNDO.search(page)
    assert undo, "the flash should offer Undo"
    action, batch, undo_back = undo.groups()
    assert action == f"{ITEMS}/bulk-restore" and query_of(ITEMS + "?" + unquote(undo_back)) == SAME_LIST
    assert "Undo" not in text_of(client.get(ITEMS).text)  # one-shot, like the flash

    restored = post_form(
        client, action, {"batch": batch, "back": undo_back.replace("&amp;", "&")}, follow_redirects=False
    )
    assert restored.status_code == 303 and query_of(restored.headers["location"]) == SAME_LIST
    again = client.get(restored.headers["location"]).text
    assert "Restored 2 Item records" in text_of(again) and skus_on(again)[:2] == ["SKU-01", "SKU-02"]
    # Exactly the batch: the row deleted on its own stays deleted.
    assert "1 total" in text_of(client.get(ITEMS, params={"deleted": "1"}).text)
    # The second undo finds nothing left in the batch.
    twice = post_form(client, action, {"batch": batch}, follow_redirects=False)
    assert twice.status_code == 303
    assert "Restored 0 Item records" in text_of(client.get(twice.headers["location"]).text)

    async def trail(s: Any) -> list[tuple[str, Any]]:
        rows = await s.execute(
            sa.select(AuditEntry.action, AuditEntry.target_id).where(AuditEntry.target_id.in_(ids))
        )
        return [(a, i) for a, i in rows.all()]

    actions = [a.rsplit(".", 1)[-1] for a, _ in in_db(app, trail)]
    assert sorted(a for a in actions if a in {"delete", "restore"}) == [
        "delete",
        "delete",
        "restore",
        "restore",
    ], actions

    async def restored_events(s: Any) -> int:
        stmt = sa.select(sa.func.count()).where(EventRecord.type == "inventory.inventory_item.restored")
        return int(await s.scalar(stmt) or 0)

    assert in_db(app, restored_events) == 2
    detail = text_of(client.get(f"{ITEMS}/{ids[0]}").text)
    assert "Version 3" in detail  # created 1, deleted 2, restored 3


# --- filters, headers, paging --------------------------------------------------------------------

CATS = ITEMS.replace("/items", "/categories")


def names_on(html: str) -> list[str]:
    """The first column's texts (each a link to its record)."""
    return re.findall(r'<td><a href="[^"]+">([^<]+)</a></td>', html)


def test_text_filters_match_contains_unless_the_page_says_exact(tenants):
    client = tenants
    for name, code in (
        ("Hand tools", "TOOLS"),
        ("Power TOOLS", "PWR"),
        ("100% cotton", "COT_1"),
        ("Food", "COTX1"),
    ):
        make(client, CATS, {"name": name, "code": code})
    page = client.get(CATS).text
    assert (
        'name="name" value="" placeholder="contains"' in page
        and 'name="code" value="" placeholder="exact value"' in page
    )

    def codes(**params: str) -> list[str]:
        return names_on(client.get(CATS, params={**params, "sort": "code"}).text)  # the code links

    # `name` matches a part, whatever the case; `code` (match = "exact" in the manifest) the whole value.
    assert codes(name="tools") == ["PWR", "TOOLS"]
    assert codes(code="TOOLS") == ["TOOLS"] and codes(code="TOOL") == []
    # LIKE wildcards typed by the user match themselves, in filters and in the search.
    assert codes(name="%") == ["COT_1"]
    assert codes(name="0_") == []
    assert codes(q="%") == ["COT_1"]
    assert codes(q="t_1") == ["COT_1"]  # not COTX1


def test_the_json_api_filters_like_the_page(tenants):
    client = tenants
    for name, code in (("Hand tools", "TOOLS"), ("Power TOOLS", "PWR")):
        make(client, CATS, {"name": name, "code": code})
    api = "/api/v1/plugins/inventory/inventory_category"
    headers = bearer(api_token(client, ADMIN_EMAIL, ADMIN_PASSWORD), "acme")

    def codes(**params: str) -> list[str]:
        response = client.get(api, params={**params, "sort": "code"}, headers=headers)
        assert response.status_code == 200, response.text
        return [item["code"] for item in response.json()["items"]]

    assert codes(name="TOOLS") == ["PWR", "TOOLS"]
    assert codes(code="TOOL") == [] and codes(code="TOOLS") == ["TOOLS"]
    assert codes(name="%") == []


def test_sort_headers_numbers_and_a_page_past_the_end(tenants):
    client = tenants
    seed_items(client, n=30)
    html = client.get(ITEMS, params={"sort": "-quantity", "size": "10"}).text
    heads = re.findall(r"<th([^>]*)>(.*?)</th>", html, re.S)
    sorted_heads = [attrs for attrs, _ in heads if "aria-sort" in attrs]
    assert sorted_heads == [' class="sortable num" aria-sort="descending"'], heads
    quantity = next(inner for attrs, inner in heads if "aria-sort" in attrs)
    assert "icon-sort-desc" in quantity and "Quantity" in quantity
    sku = next(inner for attrs, inner in heads if ">SKU" in inner)
    assert "icon-sort" in sku and "icon-sort-desc" not in sku  # sortable, not the current sort
    assert re.search(r'<td class="num">30</td>', html)  # quantity
    assert re.search(r'<td class="num">[^<]*3,?000\.50</td>', html)  # unit price (a currency column)
    assert re.search(r"<td>pcs</td>", html)  # text stays left-aligned
    assert skus_on(html)[:1] == ["SKU-30"]

    past = client.get(ITEMS, params={"page": "7", "size": "10"}).text
    text = text_of(past)
    assert "No rows on this page" in text and "Create the first one" not in text
    last = re.search(
        r'<a href="([^"]+)" hx-get="[^"]+" hx-target="#rows" hx-push-url="true">Go to the last page', past
    )
    assert last and query_of(last.group(1)) == {"": [ITEMS], "page": ["3"], "size": ["10"]}
    assert len(skus_on(client.get(last.group(1).replace("&amp;", "&")).text)) == 10
    # With no rows at all, the first page still invites to create one.
    empty = text_of(client.get(ITEMS.replace("/items", "/suppliers"), params={"page": "2"}).text)
    assert "No rows on this page" not in empty and "Create the first one" in empty


def test_undo_restores_only_the_users_own_batch(tenants):
    client = tenants
    seed_items(client, n=3)
    ids = re.findall(r'name="ids" value="([^"]+)"', client.get(ITEMS).text)
    done = post_form(client, f"{ITEMS}/bulk-delete", [("ids", i) for i in ids], follow_redirects=False)
    page = client.get(done.headers["location"]).text
    action, batch, _ = UNDO.search(page).groups()
    # Another member with the same batch token restores nothing (the batch is the deleter's).
    logout(client)
    login(client, *BOB)
    other = post_form(client, action, {"batch": batch}, follow_redirects=False)
    assert other.status_code in {303, 403}
    logout(client)
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert "3 total" in text_of(client.get(ITEMS, params={"deleted": "1"}).text)
    # A token that is not an instant is refused politely.
    bad = post_form(client, action, {"batch": "yesterday"}, follow_redirects=False)
    assert bad.status_code == 303 and "Nothing to undo" in text_of(client.get(bad.headers["location"]).text)
