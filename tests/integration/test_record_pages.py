"""Generated plugin pages: crud list/search/filter/sort/paging, forms with inline errors, optimistic-lock
conflicts, delete/restore/bulk delete, CSV export and import, dashboards, custom pages, permissions and
tenant isolation — driven like a browser would, on both databases."""

from __future__ import annotations

import asyncio
import csv
import html
import io
import re
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from app.access import roles
from app.audit import Actor
from app.core.db import SQLITE_WRITE_LOCK, bind_services, make_alchemy_config
from app.identity import directory
from app.installs import lifecycle
from app.manifest import default_label
from app.plugins.packages import read_folder
from app.records import query as record_query
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.helpers import login, logout, post_form, text_of

ROOT = Path(__file__).resolve().parents[2]
BOB = ("bob@acme.test", "bob-password-1")
ITEMS = "/t/acme/p/inventory/inventory/items"
CATS = "/t/acme/p/inventory/inventory/categories"
G_ITEMS = "/t/globex/p/inventory/inventory/items"
HX = {"HX-Request": "true"}
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def in_db(app: Any, work: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run `work(session)` and commit, on an engine of its own (the app's lives in another event loop)."""

    async def go() -> Any:
        config = make_alchemy_config(app.state.settings)
        bind_services(config, app.state.services)  # its sessions act for this app (hooks, mailer, plugins)
        try:
            async with config.get_session() as session:
                # Take SQLite's write lock first, as the app's writers do: a deferred transaction that
                # reads, then writes after the app's background delivery committed, fails at once.
                await session.connection(execution_options={SQLITE_WRITE_LOCK: True})
                result = await work(session)
                await session.commit()
                return result
        finally:
            await config.get_engine().dispose()

    return asyncio.run(go())


def manifest_only(name: str, target: Path) -> Path:
    """A bundled plugin as a package without page code (a `portal serve --demo` leaves a built
    plugin.wasm in the source folder; these tests are about the generated pages)."""
    folder = target / name
    shutil.copytree(ROOT / "plugins" / name, folder, ignore=shutil.ignore_patterns("plugin.wasm", "guest"))
    return folder


@pytest.fixture
def tenants(client: Any, app: Any, tmp_path: Path) -> Any:
    """Inventory installed and enabled in acme and globex; Bob is a Member of acme; root is signed in."""
    inventory = manifest_only("inventory", tmp_path)

    async def work(s: Any) -> None:
        actor = Actor(None, "test")
        await lifecycle.upload(s, actor, read_folder(inventory), app.state.settings, install_now=True)
        for slug in ("acme", "globex"):
            t = await directory.create_tenant(s, actor, slug, slug.title())
            await lifecycle.enable(s, actor, t.id, "inventory")
        bob = await directory.create_user(s, actor, BOB[0], BOB[1])
        acme = await directory.get_tenant(s, "acme")
        await directory.add_member(s, actor, acme.id, bob, await roles.get_role(s, acme.id, "Member"))

    in_db(app, work)
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    return client


def created_id(response: Any) -> str:
    assert response.status_code == 303, text_of(response.text)[:600]
    match = re.search(rf"/({UUID})$", response.headers["location"])
    assert match, response.headers["location"]
    return match.group(1)


def make(client: Any, url: str, data: dict[str, str]) -> str:
    return created_id(post_form(client, url, data, follow_redirects=False))


def ids_on(html: str) -> list[str]:
    return re.findall(rf'name="ids" value="({UUID})"', html)


def skus_on(html: str) -> list[str]:
    return re.findall(r">(SKU-\d+)</a>", html)


def seed_items(client: Any, base: str = ITEMS, n: int = 30) -> dict[str, str]:
    cats = {
        name: make(client, base.replace("/items", "/categories"), {"name": name, "code": name[:3].upper()})
        for name in ("Tools", "Food")
    }
    for i in range(1, n + 1):
        make(
            client,
            base,
            {
                "sku": f"SKU-{i:02d}",
                "name": f"{'Widget' if i % 3 else 'Gadget'} {i}",
                "quantity": str(i),
                "unit": "pcs",
                "unit_price": f"{i * 100}.5",
                "category_id": cats["Tools" if i % 2 == 0 else "Food"],
                "status": "discontinued" if i % 5 == 0 else "active",
                "threshold": "10",
            },
        )
    return cats


def test_list_search_filter_sort_and_paging(tenants, monkeypatch):
    client = tenants
    empty = client.get(ITEMS)
    assert empty.status_code == 200 and "No item records yet" in empty.text
    assert 'href="/t/acme/p/inventory/inventory/items/new"' in empty.text  # admin may create
    cats = seed_items(client)

    page = client.get(ITEMS)
    assert page.status_code == 200 and "<html" in page.text
    assert "30 total" in text_of(page.text) and len(ids_on(page.text)) == 25  # default size 25, newest first
    assert skus_on(page.text)[0] == "SKU-30"
    # Formatting: reference label instead of the id, decimal places and thousands, select labels as badges.
    assert ">Tools<" in page.text and cats["Tools"] not in text_of(page.text)
    assert "3,000.50" in page.text and 'class="badge c-grey">Discontinued<' in page.text
    assert "Updated" not in text_of(page.text).split("Search")[0]  # hidden column is not shown

    second = client.get(ITEMS, params={"size": "10", "page": "3", "sort": "sku"})
    assert skus_on(second.text) == [f"SKU-{i:02d}" for i in range(21, 31)]
    assert "Page 3 of 3" in text_of(second.text) and "Next" not in text_of(second.text)
    assert "page=2" in second.text and "sort=sku" in second.text  # links keep the state

    desc = client.get(ITEMS, params={"sort": "-quantity", "size": "10"})
    assert skus_on(desc.text)[:3] == ["SKU-30", "SKU-29", "SKU-28"]
    asc = client.get(ITEMS, params={"sort": "quantity", "size": "10"})
    assert skus_on(asc.text)[:3] == ["SKU-01", "SKU-02", "SKU-03"]
    assert (
        'aria-sort="ascending"' in asc.text and "sort=-quantity" in asc.text
    )  # header toggles to descending
    assert client.get(ITEMS, params={"sort": "nope"}).status_code == 200  # unknown sort falls back

    assert "10 total" in text_of(client.get(ITEMS, params={"q": "gadget"}).text)
    assert "6 total" in text_of(client.get(ITEMS, params={"status": "discontinued"}).text)
    assert "15 total" in text_of(client.get(ITEMS, params={"category_id": cats["Tools"]}).text)
    both = client.get(ITEMS, params={"category_id": cats["Tools"], "status": "discontinued"})
    assert "3 total" in text_of(both.text)
    assert "1 total" in text_of(client.get(ITEMS, params={"sku": "SKU-07"}).text)
    bad = client.get(ITEMS, params={"category_id": "not-an-id"})
    assert bad.status_code == 200 and "Choose a record." in bad.text and "0 total" in text_of(bad.text)
    nothing = client.get(ITEMS, params={"q": "zzz"})
    assert "No item records match" in nothing.text

    # Past the count cap the list says "N+" and keeps offering the next page.
    monkeypatch.setattr(record_query, "COUNT_CAP", 20)
    monkeypatch.setattr(record_query, "COUNT_LOOKAHEAD_PAGES", 1)
    capped = client.get(ITEMS, params={"size": "10", "page": "2"})
    assert (
        "20+ total" in text_of(capped.text)
        and "Page 2 of 2+" in text_of(capped.text)
        and "Next" in capped.text
    )
    monkeypatch.undo()

    # HTMX asks for the rows region only; the filter form's sort travels with it.
    frag = client.get(ITEMS, params={"q": "widget", "sort": "-sku", "size": "10"}, headers=HX)
    assert frag.status_code == 200 and "<html" not in frag.text and "<table" in frag.text
    assert "20 total" in text_of(frag.text) and skus_on(frag.text)[0] == "SKU-29"
    assert 'name="sort" value="-sku" form="list-filters"' in frag.text
    assert frag.headers.get("vary") == "HX-Request"
    assert "export.csv?q=widget&amp;sort=-sku" in frag.text
    # A back-button restore without htmx's snapshot gets the whole page.
    restore = client.get(ITEMS, headers={**HX, "HX-History-Restore-Request": "true"})
    assert "<html" in restore.text


def test_create_with_inline_errors_then_edit_and_history(tenants):
    client = tenants
    tools = make(client, CATS, {"name": "Tools", "code": "T"})

    new = client.get(f"{ITEMS}/new")
    assert new.status_code == 200
    html = new.text
    assert "<legend>Item</legend>" in html and "<legend>Stock</legend>" in html  # groups of the page's form
    assert re.search(r'id="f-quantity" name="quantity"[^>]*type="number" step="1"[^>]*value="0"', html)
    assert re.search(r'id="f-unit_price"[^>]*step="0.01"', html)
    assert re.search(r'name="unit"[^>]*value="pcs"', html) and re.search(
        r'name="threshold"[^>]*value="10"', html
    )
    assert '<option value="active" selected>Active</option>' in html
    assert "An inventory.stock.low event is published" in html  # help text
    assert re.search(r'for="f-sku">SKU <span class="req"', html)  # required mark
    assert 'name="_csrf_token"' in html
    assert (
        f'<option value="{tools}"' in html
        and "/lookup?entity=inventory_category&amp;field=category_id" in html
    )

    bad = post_form(
        client, ITEMS, {"sku": "", "name": "", "quantity": "many", "unit_price": "1.234", "status": "active"}
    )
    assert bad.status_code == 422
    assert re.search(r'id="e-sku">This field is required.<', bad.text)
    assert re.search(r'id="e-name">This field is required.<', bad.text)
    assert re.search(r'id="e-quantity">Enter a whole number', bad.text)
    assert "Use at most 2 decimal places" in bad.text and 'value="many"' in bad.text
    assert "0 total" in text_of(client.get(ITEMS).text)  # nothing was written

    item = make(
        client,
        ITEMS,
        {
            "sku": "A-1",
            "name": "Hammer",
            "category_id": tools,
            "quantity": "3",
            "unit_price": "12.5",
            "status": "active",
            "unit": "pcs",
            "threshold": "10",
        },
    )
    dup = post_form(client, ITEMS, {"sku": "A-1", "name": "Other", "status": "active"})
    assert dup.status_code == 409 and "already has SKU = A-1" in dup.text

    detail = client.get(f"{ITEMS}/{item}")
    assert detail.status_code == 200
    text = text_of(detail.text)
    assert "Item Hammer" in text and "12.50" in text and "Active" in text
    assert f'href="{CATS}/{tools}">Tools<' in detail.text  # reference shown by name, linked
    assert re.search(r"<td>created</td>", detail.text)  # the history names the action in words
    assert 'href="' + ITEMS + f'/{item}/edit"' in detail.text

    edit = client.get(f"{ITEMS}/{item}/edit")
    assert edit.status_code == 200 and 'name="version" value="1"' in edit.text
    assert re.search(r'name="quantity"[^>]*value="3"', edit.text)
    bad_edit = post_form(
        client,
        f"{ITEMS}/{item}",
        {"sku": "A-1", "name": "Hammer", "quantity": "x", "version": "1", "status": "active"},
    )
    assert bad_edit.status_code == 422 and 'name="version" value="1"' in bad_edit.text
    saved = post_form(
        client,
        f"{ITEMS}/{item}",
        {
            "sku": "A-1",
            "name": "Big hammer",
            "quantity": "5",
            "category_id": "",
            "unit_price": "12.50",
            "unit": "pcs",
            "threshold": "10",
            "status": "discontinued",
            "version": "1",
        },
        follow_redirects=False,
    )
    assert saved.status_code == 303 and saved.headers["location"].endswith(item)
    after = text_of(client.get(f"{ITEMS}/{item}").text)
    assert "Item Big hammer" in after and "Discontinued" in after
    assert "Quantity: 3 → 5" in after  # history, newest first
    assert "Status: Active → Discontinued" in after and "Category: Tools → —" in after  # shown for people
    history = after[after.index("History") :]
    assert history.index("changed") < history.index("created")

    # The reference picker's search-as-you-type.
    found = client.get(
        f"{ITEMS}/lookup",
        params={"entity": "inventory_category", "field": "category_id", "q": "too"},
        headers=HX,
    )
    assert found.status_code == 200 and f'<option value="{tools}" selected>Tools</option>' in found.text
    none = client.get(f"{ITEMS}/lookup", params={"field": "category_id", "q": "zzz"}, headers=HX)
    assert "No matches" in none.text
    assert client.get(f"{ITEMS}/lookup", params={"field": "sku", "q": "a"}).status_code == 404


def test_stale_edit_shows_the_conflict_and_overwrites_only_when_asked(tenants):
    client = tenants
    item = make(client, ITEMS, {"sku": "C-1", "name": "Crate", "quantity": "1", "status": "active"})
    form = {
        "sku": "C-1",
        "name": "Crate",
        "unit": "pcs",
        "threshold": "10",
        "status": "active",
        "category_id": "",
        "unit_price": "",
    }
    # Someone else saves first (from version 1) ...
    theirs = post_form(
        client, f"{ITEMS}/{item}", {**form, "quantity": "7", "version": "1"}, follow_redirects=False
    )
    assert theirs.status_code == 303
    # ... then we save what we read at version 1.
    ours = post_form(
        client, f"{ITEMS}/{item}", {**form, "name": "Crate (mine)", "quantity": "2", "version": "1"}
    )
    assert ours.status_code == 409
    text = text_of(ours.text)
    assert "not saved" in text and "Their current value" in text
    assert re.search(r"Quantity differs 7 2", text) and re.search(r"Name differs Crate Crate \(mine\)", text)
    assert (
        'name="version" value="2"' in ours.text and "Overwrite with mine" in text and "Discard mine" in text
    )
    assert "Item Crate" in text_of(client.get(f"{ITEMS}/{item}").text)  # nothing overwritten

    hidden = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">', ours.text))
    assert hidden["version"] == "2" and hidden["quantity"] == "2"
    overwrite = post_form(client, f"{ITEMS}/{item}", hidden, follow_redirects=False)
    assert overwrite.status_code == 303
    detail = text_of(client.get(f"{ITEMS}/{item}").text)
    assert "Item Crate (mine)" in detail and "Version 3" in detail


def test_delete_restore_and_bulk_delete(tenants):
    client = tenants
    a = make(client, ITEMS, {"sku": "D-1", "name": "One", "status": "active"})
    b = make(client, ITEMS, {"sku": "D-2", "name": "Two", "status": "active"})
    c = make(client, ITEMS, {"sku": "D-3", "name": "Three", "status": "active"})
    detail = client.get(f"{ITEMS}/{a}").text
    assert "hx-confirm=" in detail and f'action="{ITEMS}/{a}/delete"' in detail

    gone = post_form(client, f"{ITEMS}/{a}/delete", {}, follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"] == ITEMS
    listed = client.get(ITEMS)
    assert "Item One deleted" in listed.text and "2 total" in text_of(listed.text)
    assert client.get(f"{ITEMS}/{a}").status_code == 404

    deleted_view = client.get(ITEMS, params={"deleted": "1"})
    assert "1 total" in text_of(deleted_view.text) and f'action="{ITEMS}/{a}/restore"' in deleted_view.text
    back = post_form(client, f"{ITEMS}/{a}/restore", {}, follow_redirects=False)
    assert back.status_code == 303
    assert client.get(f"{ITEMS}/{a}").status_code == 200

    page = client.get(ITEMS).text
    assert 'hx-confirm="Delete the selected item records?' in page and set(ids_on(page)) == {a, b, c}
    bulk = post_form(client, f"{ITEMS}/bulk-delete", [("ids", a), ("ids", b)], follow_redirects=False)
    assert bulk.status_code == 303
    assert "1 total" in text_of(client.get(ITEMS).text)
    assert "2 total" in text_of(client.get(ITEMS, params={"deleted": "1"}).text)

    # An id of another tenant fails the whole bulk action; nothing is deleted.
    other = make(client, G_ITEMS, {"sku": "G-1", "name": "Globex", "status": "active"})
    mixed = post_form(client, f"{ITEMS}/bulk-delete", [("ids", c), ("ids", other)], follow_redirects=False)
    assert mixed.status_code == 404
    assert "1 total" in text_of(client.get(ITEMS).text)
    assert "1 total" in text_of(client.get(G_ITEMS).text)


def test_csv_export_follows_the_filters(tenants):
    client = tenants
    seed_items(client, n=6)
    response = client.get(f"{ITEMS}/export.csv", params={"q": "widget", "sort": "sku"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == [
        "id",
        "sku",
        "name",
        "quantity",
        "unit",
        "category_id",
        "unit_price",
        "threshold",
        "status",
        "photo",  # a file field: its download URL (app.web.records.files)
        "created_at",
        "updated_at",
    ]
    assert [r[1] for r in rows[1:]] == ["SKU-01", "SKU-02", "SKU-04", "SKU-05"]
    assert rows[1][3] == "1" and rows[1][6] == "100.50" and rows[1][8] == "active"
    everything = list(csv.DictReader(io.StringIO(client.get(f"{ITEMS}/export.csv").text)))
    assert len(everything) == 6
    # A formula-looking text cell is neutralised for spreadsheets.
    make(client, ITEMS, {"sku": "=1+1", "name": "@cmd", "status": "active"})
    risky = next(
        r for r in csv.DictReader(io.StringIO(client.get(f"{ITEMS}/export.csv").text)) if "1+1" in r["sku"]
    )
    assert risky["sku"] == "'=1+1" and risky["name"] == "'@cmd"
    assert client.get(f"{ITEMS}/export.csv", params={"category_id": "x"}).status_code == 422
    # Categories' page offers no export action.
    assert client.get(f"{CATS}/export.csv").status_code == 404


def test_csv_import_previews_errors_writes_nothing_then_imports(tenants):
    client = tenants
    tools = make(client, CATS, {"name": "Tools", "code": "T"})
    make(client, ITEMS, {"sku": "OLD", "name": "Existing", "status": "active"})
    form = client.get(f"{ITEMS}/import")
    assert form.status_code == 200 and 'enctype="multipart/form-data"' in form.text

    bad_csv = (
        "sku,name,quantity,category_id,status\n"
        f"N-1,Nail,100,{tools},active\n"
        "N-2,Screw,lots,,active\n"
        "OLD,Clash,1,,active\n"
        "N-1,Twice,1,,active\n"
        "N-3,Odd,1,,unknown\n"
    )
    preview = post_form(
        client, f"{ITEMS}/import", {}, files={"file": ("items.csv", bad_csv.encode(), "text/csv")}
    )
    assert preview.status_code == 200, text_of(preview.text)[:500]
    text = text_of(preview.text)
    assert "4 of 5 rows have errors" in text
    assert "Enter a whole number" in text and "already has SKU = OLD" in text and "Choose one of" in text
    assert "The same SKU as row 1 of the file." in text  # duplicates inside the file are caught too
    assert 'name="confirm"' not in preview.text  # no way to confirm a file with errors
    assert "1 total" in text_of(client.get(ITEMS).text)  # the preview wrote nothing

    good_csv = (
        "id,sku,name,quantity,category_id,status,unit_price\n"
        f",N-1,Nail,100,{tools},active,0.10\n"
        ",N-2,Screw,250,,,\n"
    )
    preview = post_form(
        client, f"{ITEMS}/import", {}, files={"file": ("items.csv", good_csv.encode(), "text/csv")}
    )
    assert preview.status_code == 200
    assert (
        "All 2 rows are valid" in preview.text and "Ignored columns (set by the platform): id" in preview.text
    )
    assert "1 total" in text_of(client.get(ITEMS).text)
    carried = re.search(
        r'<textarea name="csv_text" hidden aria-hidden="true">\n(.*?)</textarea>', preview.text, re.S
    )
    assert carried and "N-2,Screw" in carried.group(1)
    done = post_form(
        client,
        f"{ITEMS}/import",
        {"confirm": "1", "csv_text": carried.group(1).replace("&#34;", '"')},
        follow_redirects=False,
    )
    assert done.status_code == 303
    listed = client.get(ITEMS, params={"sort": "sku"})
    assert "Imported Item: 2 created, 0 updated, 0 unchanged." in listed.text and "3 total" in text_of(
        listed.text
    )
    screw = client.get(ITEMS, params={"q": "screw"}).text
    assert ">Active<" in screw  # empty cells took the defaults

    # Confirming a file that became invalid meanwhile imports nothing.
    again = post_form(client, f"{ITEMS}/import", {"confirm": "1", "csv_text": "sku,name\nN-9,Ok\nN-1,Dup\n"})
    assert again.status_code == 422 and "1 of 2 rows have errors" in text_of(again.text)
    assert "3 total" in text_of(client.get(ITEMS).text)
    assert post_form(client, f"{ITEMS}/import", {"csv_text": ""}).status_code == 422


def test_tenant_isolation(tenants):
    client = tenants
    secret = make(client, ITEMS, {"sku": "SECRET", "name": "Acme only", "status": "active"})
    make(client, G_ITEMS, {"sku": "PUBLIC", "name": "Globex own", "status": "active"})

    g_list = client.get(G_ITEMS)
    assert "1 total" in text_of(g_list.text) and "SECRET" not in g_list.text and secret not in g_list.text
    assert client.get(f"{G_ITEMS}/{secret}").status_code == 404
    assert client.get(f"{G_ITEMS}/{secret}/edit").status_code == 404
    forged = post_form(
        client,
        f"{G_ITEMS}/{secret}",
        {"sku": "SECRET", "name": "Hijacked", "status": "active", "version": "1"},
    )
    assert forged.status_code == 404
    assert post_form(client, f"{G_ITEMS}/{secret}/delete", {}).status_code == 404
    export = client.get(f"{G_ITEMS}/export.csv").text
    assert "SECRET" not in export and "PUBLIC" in export
    assert "Acme only" in text_of(client.get(f"{ITEMS}/{secret}").text)
    # A reference to another tenant's row is refused on create.
    acme_cat = make(client, CATS, {"name": "Acme cat", "code": "AC"})
    cross = post_form(client, G_ITEMS, {"sku": "X", "name": "x", "category_id": acme_cat, "status": "active"})
    assert cross.status_code == 409 and "No Category with that id in this tenant" in cross.text
    assert "Acme cat" not in client.get(f"{G_ITEMS}/new").text


def test_member_sees_no_write_actions_and_is_refused(tenants):
    client = tenants
    item = make(client, ITEMS, {"sku": "M-1", "name": "Mallet", "status": "active"})
    logout(client)
    login(client, *BOB)
    page = client.get(ITEMS)
    assert page.status_code == 200 and "Mallet" in page.text
    assert "/new" not in page.text and "Import CSV" not in page.text and 'name="ids"' not in page.text
    assert "Export CSV" in page.text  # export only needs db.inventory_item.select
    assert "Deleted" not in text_of(page.text)
    detail = client.get(f"{ITEMS}/{item}").text
    assert "/edit" not in detail and "/delete" not in detail
    assert client.get(f"{ITEMS}/new").status_code == 403
    assert post_form(client, ITEMS, {"sku": "M-2", "name": "Nope", "status": "active"}).status_code == 403
    assert post_form(client, f"{ITEMS}/{item}", {"name": "x", "version": "1"}).status_code == 403
    assert post_form(client, f"{ITEMS}/{item}/delete", {}).status_code == 403
    assert post_form(client, f"{ITEMS}/bulk-delete", [("ids", item)]).status_code == 403
    assert client.get(f"{ITEMS}/import").status_code == 403
    assert client.get(G_ITEMS).status_code == 403  # not a member of globex
    logout(client)
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert "Mallet" in client.get(f"{ITEMS}/{item}").text  # still there


def test_dashboard_custom_and_unknown_pages(tenants):
    client = tenants
    make(client, CATS, {"name": "Tools", "code": "T"})
    make(client, ITEMS, {"sku": "X-1", "name": "One", "status": "active"})
    make(client, ITEMS, {"sku": "X-2", "name": "Two", "status": "active"})
    dash = client.get("/t/acme/p/inventory/inventory/dashboard")
    assert dash.status_code == 200
    cards = re.findall(r'stat-label">([^<]+)</div>\s*<div class="stat-value">([^<]+)<', dash.text)
    assert ("Item", "2") in cards and ("Category", "1") in cards and ("Supplier", "0") in cards
    assert f'href="{ITEMS}"' in dash.text

    custom = client.get("/t/acme/p/inventory/inventory/stocktaking")
    assert custom.status_code == 200 and "This plugin ships no page code for Stocktaking" in custom.text

    assert client.get("/t/acme/p/inventory/inventory/nowhere").status_code == 404
    assert client.get(f"{ITEMS}/not-a-page").status_code == 404
    assert client.get("/t/acme/p/crm/crm/customers").status_code == 404  # not installed/enabled
    assert client.get("/t/acme/p/inventory/inventory/dashboard/extra").status_code == 404
    menu = client.get("/t/acme/").text
    assert f'href="{ITEMS}"' in menu  # the menu's links land on these pages


def test_crm_pages_filter_on_created_at_and_derive_nothing_unsafe(tenants, app):
    client = tenants

    async def enable_crm(s: Any) -> None:
        actor = Actor(None, "test")
        await lifecycle.upload(
            s, actor, read_folder(ROOT / "plugins" / "crm"), app.state.settings, install_now=True
        )
        await lifecycle.enable(s, actor, (await directory.get_tenant(s, "acme")).id, "crm")

    in_db(app, enable_crm)
    customers = "/t/acme/p/crm/crm/customers"
    make(client, customers, {"name": "<script>alert(1)</script>", "status": "lead"})
    page = client.get(customers)
    assert page.status_code == 200
    assert (
        "<script>alert(1)</script>" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    )
    assert 'name="created_at__from"' in page.text and 'type="datetime-local"' in page.text
    assert "1 total" in text_of(client.get(customers, params={"created_at__from": "2000-01-01T00:00"}).text)
    assert "0 total" in text_of(client.get(customers, params={"created_at__to": "2000-01-01T00:00"}).text)
    # CRM's export action needs ui.crm.customer-export on top of db.customer.select (root holds both).
    assert client.get(f"{customers}/export.csv").status_code == 200


KITCHEN = """
[plugin]
id = "kitchen"
name = "Kitchen sink"
version = "1.0.0"
min_platform_version = "1.0.0"

[dependencies]
modules = ["auth"]

[permissions]
database = true

[[schema.entities]]
name = "ks_owner"
label = "Owner"
display_field = "title"
fields = [{ name = "title", type = "string", required = true }]

[[schema.entities]]
name = "ks_thing"
label = "Thing"
display_field = "title"
fields = [
  { name = "title", type = "string", required = true },
  { name = "body", type = "text" },
  { name = "active", type = "boolean", default = true },
  { name = "due", type = "date" },
  { name = "seen_at", type = "datetime" },
  { name = "level", type = "select", options = [{ value = "lo", label = "Low" }, { value = "hi", label = "High" }] },
  { name = "owner_id", type = "reference", entity = "ks_owner" },
  { name = "meta", type = "json" },
  { name = "token", type = "uuid" },
  { name = "amount", type = "decimal", precision = 8, scale = 3 },
]

[[ui.pages]]
name = "Things"
path = "/things"
type = "crud"
entity = "ks_thing"

[[ui.pages]]
name = "Owners"
path = "/things/owners"
type = "crud"
entity = "ks_owner"
"""


def test_derived_page_with_every_field_type(tenants, app, tmp_path):
    client = tenants
    folder = tmp_path / "kitchen"
    folder.mkdir()
    (folder / "plugin.toml").write_text(KITCHEN)

    async def install(s: Any) -> None:
        actor = Actor(None, "test")
        await lifecycle.upload(s, actor, read_folder(folder), app.state.settings, install_now=True)
        await lifecycle.enable(s, actor, (await directory.get_tenant(s, "acme")).id, "kitchen")

    in_db(app, install)
    things, owners = "/t/acme/p/kitchen/things", "/t/acme/p/kitchen/things/owners"
    assert client.get(owners).status_code == 200  # the longer page path wins over /things + "owners"
    owner = make(client, owners, {"title": "Ann"})

    form = client.get(f"{things}/new").text
    assert re.search(r'<textarea id="f-body" name="body"', form)
    assert re.search(r'type="checkbox" name="active" value="true"\s+checked', form)  # default true
    assert 'type="date" value=""' in form and 'type="datetime-local"' in form and "(UTC)" in form
    assert '<option value="hi" >High</option>' in form and 'class="mono"' in form
    assert re.search(r'id="f-amount"[^>]*step="0.001"', form)

    bad = post_form(
        client, things, {"title": "T", "meta": "{oops", "due": "someday", "token": "x", "level": "zz"}
    )
    assert bad.status_code == 422
    for name in ("meta", "due", "token", "level"):
        assert f'id="e-{name}"' in bad.text, name
    nul = post_form(client, things, {"title": "T", "meta": '{"a": "\\u0000"}', "amount": "1e309"})
    assert (
        nul.status_code == 422
        and "may not contain NUL" in nul.text
        and "digits before the decimal point" in nul.text
    )
    thing = make(
        client,
        things,
        {
            "title": "Lamp",
            "body": "line 1\nline 2",
            "due": "2026-05-01",
            "seen_at": "2026-05-01T09:30",
            "level": "hi",
            "owner_id": owner,
            "meta": '{"a": [1, 2]}',
            "token": "6b1f0c9e-1111-4a4a-8b8b-123456789abc",
            "amount": "1.5",
        },
    )  # no "active": an unchecked box means false
    detail = html.unescape(text_of(client.get(f"{things}/{thing}").text))
    for expected in (
        "Lamp",
        "line 1 line 2",
        "No",
        "2026-05-01",
        "2026-05-01 09:30",
        "High",
        "Ann",
        '{"a": [1, 2]}',
        "1.500",
    ):
        assert expected in detail, expected

    listed = client.get(things)
    # Derived: first 7 declared fields except text/json; filters for select/boolean/reference/date/datetime.
    headers = [h.strip() for h in re.findall(r"<th[^>]*>(?:<a[^>]*>)?([^<]+)<", listed.text)]
    assert headers[:7] == [
        default_label(n) for n in ("title", "active", "due", "seen_at", "level", "owner_id", "token")
    ]
    for name in ("active", "level", "owner_id", "due__from", "due__to", "seen_at__from"):
        assert f'name="{name}"' in listed.text, name
    assert 'name="body"' not in listed.text and 'name="title"' not in listed.text
    assert "1 total" in text_of(client.get(things, params={"active": "false", "level": "hi"}).text)
    assert "0 total" in text_of(client.get(things, params={"active": "true"}).text)
    assert "1 total" in text_of(
        client.get(things, params={"due__from": "2026-05-01", "due__to": "2026-05-01"}).text
    )
    assert "0 total" in text_of(client.get(things, params={"seen_at__to": "2026-05-01T09:29"}).text)
    assert "1 total" in text_of(client.get(things, params={"owner_id": owner}).text)

    edit = client.get(f"{things}/{thing}/edit").text
    assert re.search(r'name="seen_at"[^>]*value="2026-05-01T09:30"', edit)
    assert "{&#34;a&#34;: [1, 2]}" in edit or "{&quot;a&quot;: [1, 2]}" in edit
    exported = list(csv.DictReader(io.StringIO(client.get(f"{things}/export.csv").text)))
    assert exported[0]["active"] == "false" and exported[0]["meta"] == '{"a": [1, 2]}'
    assert exported[0]["owner_id"] == owner and exported[0]["seen_at"].startswith("2026-05-01T09:30")


def test_garbage_in_forms_and_query_strings_never_gives_a_500(tenants):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    client = tenants
    item = make(client, ITEMS, {"sku": "G-1", "name": "Good", "status": "active"})
    junk = st.one_of(
        st.text(max_size=200),
        st.sampled_from(
            [
                "",
                " ",
                "\x00",
                "a\x00b",
                "'; DROP TABLE x; --",
                "<script>alert(1)</script>",
                "1e309",
                "-1",
                "NaN",
                "9" * 40,
                "2026-02-30",
                "00000000-0000-0000-0000-000000000000",
                '"\\u0000"',
                "Ω≈ç√∫",
                "a" * 5000,
            ]
        ),
    )
    fields = ("sku", "name", "quantity", "unit", "category_id", "unit_price", "threshold", "status")

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @given(values=st.lists(junk, min_size=len(fields) + 2, max_size=len(fields) + 2))
    def check(values):
        data = dict(zip(fields, values, strict=False))
        created = post_form(client, ITEMS, data, follow_redirects=False)
        assert created.status_code in {303, 409, 422}, (data, created.text[:300])
        edited = post_form(client, f"{ITEMS}/{item}", {**data, "version": values[-1]}, follow_redirects=False)
        assert edited.status_code in {303, 404, 409, 422}, (data, edited.text[:300])
        listed = client.get(
            ITEMS,
            params={
                "q": values[0],
                "page": values[1],
                "size": values[2],
                "sort": values[3],
                "status": values[4],
                "category_id": values[5],
                "deleted": values[6],
            },
        )
        nul = any("\x00" in v for v in values)  # the guard refuses NUL in URLs with a 400 before any query
        assert listed.status_code == (400 if nul and "\x00" in "".join(values[:7]) else 200), listed.text[
            :300
        ]
        looked = client.get(
            f"{ITEMS}/lookup", params={"field": "category_id", "q": values[0], "category_id": values[1]}
        )
        assert looked.status_code in ({200, 400} if nul else {200})
        exported = client.get(f"{ITEMS}/export.csv", params={"q": values[0], "status": values[4]})
        assert exported.status_code in {200, 400, 422}
        imported = post_form(client, f"{ITEMS}/import", {"csv_text": "\n".join(values)})
        assert imported.status_code in {200, 422}, imported.text[:300]

    check()
