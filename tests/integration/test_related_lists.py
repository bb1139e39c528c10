"""A record's page lists the rows that reference it (a category's items), within the user's permissions
and data scope, with "New …" pre-filling the reference; on both databases."""

from __future__ import annotations

import html
import re
import uuid
from typing import Any

from litestar.testing import TestClient

from app.access import roles
from app.audit import Actor
from app.identity import directory
from app.plugins import runtime
from tests.helpers import login, logout, text_of
from tests.integration.test_record_pages import CATS, ITEMS, in_db, make, seed_items, skus_on, tenants  # noqa: F401
from tests.integration.test_scopes import ITEMS as SCOPED_ITEMS
from tests.integration.test_scopes import as_user, org  # noqa: F401


def section(page: str, key: str) -> str:
    match = re.search(rf'<section class="related" id="related-{key}".*?</section>', page, re.S)
    assert match, f"no related list {key}"
    return match.group(0)


def test_category_page_lists_its_items_with_a_prefilled_new_link(tenants: TestClient) -> None:
    client = tenants
    cats = seed_items(client, n=24)  # even SKUs are Tools: 12 of them
    page = client.get(f"{CATS}/{cats['Tools']}")
    assert page.status_code == 200
    items = section(page.text, "inventory_item-category_id")
    assert "Items in this category" in items and "12" in text_of(items)
    # The manifest sorts by name and shows 10 (the default limit): Gadget 12, 18, 24, 6, then Widgets.
    assert len(skus_on(items)) == 10
    assert skus_on(items)[:4] == ["SKU-12", "SKU-18", "SKU-24", "SKU-06"]
    assert "Category" not in re.findall(
        r"<th>(.*?)</th>", items
    )  # the column back to this record is left out
    # "All 12" opens the item list filtered to the category.
    more = re.search(r'href="([^"]+)">All 12', items)
    assert more, items
    listed = client.get(html.unescape(more.group(1)))
    assert "12 total" in text_of(listed.text) and "SKU-01" not in listed.text
    # "New item" pre-fills the category; creating from it lands in the list.
    new = re.search(r'<a class="btn" href="([^"]+/new\?category_id=[^"]+)"', items)
    assert new, items
    form = client.get(html.unescape(new.group(1)))
    assert form.status_code == 200
    assert re.search(rf'<option value="{cats["Tools"]}"[^>]*selected', form.text), "category not pre-filled"
    make(
        client, ITEMS, {"sku": "SKU-99", "name": "Aardvark", "status": "active", "category_id": cats["Tools"]}
    )
    again = section(client.get(f"{CATS}/{cats['Tools']}").text, "inventory_item-category_id")
    assert skus_on(again)[0] == "SKU-99" and "13" in text_of(again)
    # A category without items says so.
    empty = make(client, CATS, {"name": "Empty", "code": "EMP"})
    assert "No items in this category yet" in text_of(client.get(f"{CATS}/{empty}").text)


def test_no_list_without_select_on_the_referencing_entity(tenants: TestClient, app: Any) -> None:
    client = tenants
    cats = seed_items(client, n=4)

    async def work(s: Any) -> None:
        actor = Actor(None, "test")
        acme = await directory.get_tenant(s, "acme")
        role = await roles.create_role(s, actor, acme.id, "Cataloguer")
        await roles.set_role_grants(s, actor, role, ["db.inventory_category.*"])
        user = await directory.create_user(s, actor, "cat@acme.test", "cat-password-1")
        await directory.add_member(s, actor, acme.id, user, role)

    in_db(app, work)
    logout(client)
    login(client, "cat@acme.test", "cat-password-1")
    page = client.get(f"{CATS}/{cats['Tools']}")
    assert page.status_code == 200 and "Items in this category" not in page.text
    assert 'class="related"' not in page.text


def test_related_list_keeps_to_the_data_scope(client: TestClient, org: dict[str, Any], app: Any) -> None:
    rows = org["rows"]

    async def file_all_items_under_daves_category(s: Any) -> None:
        item = await runtime.entity_in_tenant(s, org["acme"], "inventory", "inventory_item")
        await s.execute(item.table.update().values(category_id=uuid.UUID(rows["cat-dave"])))

    in_db(app, file_all_items_under_daves_category)
    url = f"{SCOPED_ITEMS.replace('/items', '/categories')}/{rows['cat-dave']}"
    key = "inventory_item-category_id"
    # mid's subtree is mid, carol and dave; dave sees his own row; alice (Admin, no scope) all six.
    mid = section(as_user(client, "mid").get(url).text, key)
    assert set(skus_on(mid)) == {"SKU-20", "SKU-30", "SKU-40"} and "3" in text_of(mid)
    assert skus_on(section(as_user(client, "dave").get(url).text, key)) == ["SKU-40"]
    assert len(skus_on(section(as_user(client, "alice").get(url).text, key))) == 6
