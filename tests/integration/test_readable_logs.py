"""Values people read in the audit log, the event log and a record's history are labels, never ids: field
labels and option labels in the reader's language, referenced rows by their display value ("(hidden)"
when the reader may not see them), user names, entity labels, a one-line summary with a link to the live
record when the reader may open it, the raw JSON behind a toggle — on both databases."""

from __future__ import annotations

import html
import re
from typing import Any

from app.access import roles
from app.audit import Actor
from app.identity import directory
from tests.helpers import login, logout, post_form, text_of
from tests.integration.test_record_pages import BOB, CATS, ITEMS, UUID, in_db, make, tenants  # noqa: F401


def _text(page: str) -> str:
    return html.unescape(text_of(page))


def _seed(client: Any) -> dict[str, str]:
    """Root makes two categories and an item, then moves it to the other category and discontinues it."""
    tools = make(client, CATS, {"name": "Tools", "code": "T"})
    parts = make(client, CATS, {"name": "Parts", "code": "P"})
    item = make(
        client,
        ITEMS,
        {"sku": "H-1", "name": "Hammer", "quantity": "3", "status": "active", "category_id": tools},
    )
    r = post_form(
        client,
        f"{ITEMS}/{item}",
        {
            "sku": "H-1",
            "name": "Hammer",
            "quantity": "5",
            "status": "discontinued",
            "category_id": parts,
            "version": "1",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, _text(r.text)[:600]
    return {"tools": tools, "parts": parts, "item": item}


def _auditor(app: Any) -> None:
    """Bob's role may read the audit and event logs and items, but not categories."""

    async def work(s: Any) -> None:
        actor = Actor(None, "test")
        acme = await directory.get_tenant(s, "acme")
        role = await roles.create_role(s, actor, acme.id, "Auditor")
        await roles.grant(
            s, actor, role, ["db.audit_log.select", "db.event_log.select", "db.inventory_item.select"]
        )
        bob = await directory.find_user(s, BOB[0])
        await directory.change_member_role(s, actor, acme.id, bob.id, role)

    in_db(app, work)


def _row_of(page: str, marker: str) -> str:
    """The table row holding `marker`."""
    for row in re.findall(r"<tr[^>]*>.*?</tr>", page, flags=re.S):
        if marker in row:
            return row
    raise AssertionError(f"no row with {marker!r}")


def test_audit_log_and_history_speak_labels(tenants: Any, app: Any) -> None:
    client = tenants
    ids = _seed(client)
    page = client.get("/t/acme/admin/audit")
    assert page.status_code == 200
    update = _row_of(page.text, 'data-action="record.update"')
    words = _text(update)
    assert "changed Item Hammer" in words
    assert "Status Active → Discontinued" in words and "Category Tools → Parts" in words
    assert "Quantity 3 → 5" in words
    assert f'href="{ITEMS}/{ids["item"]}"' in update  # the live record
    # No ids or raw values in what is read; the raw JSON only behind the toggle.
    visible = re.sub(r"<details.*?</details>", "", update, flags=re.S)
    assert not re.search(UUID, _text(visible)) and "discontinued" not in _text(visible)
    assert '<details class="raw">' in update and ids["parts"] in update

    # The record's history: the same labels.
    detail = _text(client.get(f"{ITEMS}/{ids['item']}").text)
    assert "Status: Active → Discontinued" in detail and "Category: Tools → Parts" in detail

    # In Chinese: the manifest's zh labels and options, the summary in Chinese.
    post_form(client, "/language", {"language": "zh", "next": "/"})
    zh = _text(_row_of(client.get("/t/acme/admin/audit").text, 'data-action="record.update"'))
    assert "修改了 物品 Hammer" in zh and "状态 活跃 → 已停产" in zh and "类别 Tools → Parts" in zh
    zh_detail = _text(client.get(f"{ITEMS}/{ids['item']}").text)
    assert "状态: 活跃 → 已停产" in zh_detail

    # The event log: a readable summary per record event, the payload behind a toggle.
    post_form(client, "/language", {"language": "en", "next": "/"})
    events = client.get("/t/acme/admin/events?type=inventory.inventory_item.updated")
    row = _row_of(events.text, "data-event=")
    assert "changed Item Hammer" in _text(row) and f'href="{ITEMS}/{ids["item"]}"' in row
    assert '<details class="raw">' in row


def test_hidden_references_stay_hidden(tenants: Any, app: Any) -> None:
    client = tenants
    ids = _seed(client)
    _auditor(app)
    logout(client)
    login(client, *BOB)
    page = client.get("/t/acme/admin/audit")
    assert page.status_code == 200
    update = _row_of(page.text, 'data-action="record.update"')
    visible = _text(re.sub(r"<details.*?</details>", "", update, flags=re.S))
    # Bob may read items but not categories: the item by name with a link, the categories hidden.
    assert "changed Item Hammer" in visible and "Category (hidden) → (hidden)" in visible
    assert "Tools" not in visible and "Parts" not in visible and not re.search(UUID, visible)
    assert f'href="{ITEMS}/{ids["item"]}"' in update
    # A category's own entries: its entity's label, the row hidden, no link to it.
    created = [r for r in re.findall(r"<tr[^>]*>.*?</tr>", page.text, flags=re.S) if "record.create" in r]
    category_rows = [r for r in created if "Category" in _text(r)]
    # ...and no raw JSON: Bob may not select categories.
    assert category_rows and all(
        "(hidden)" in _text(r) and CATS not in r and "Tools" not in r and "<details" not in r
        for r in category_rows
    )
    detail = _text(client.get(f"{ITEMS}/{ids['item']}").text)
    assert "Category: (hidden) → (hidden)" in detail and "Tools" not in detail


def test_rows_named_by_a_reference_show_the_referenced_name(client: Any, app: Any) -> None:
    """crm's customer tags are named by their tag: the audit log says "Customer tag VIP", not a row id."""
    from app.demo import DEMO_PASSWORD
    from tests.integration.test_error_pages import _demo

    _demo(app)
    login(client, "alice@demo.test", DEMO_PASSWORD)
    page = _text(client.get("/t/demo/admin/audit?q=Customer+tag").text)
    assert "Customer tag VIP" in page or "Customer tag Wholesale" in page, page[:2000]
    assert not re.search(r"Customer tag [0-9a-f]{8}-", page)
