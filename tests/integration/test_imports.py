"""CSV imports users can use (issue 15): reference cells by name or unique value (batched, tenant and
scope respected), updating by a key field with preview counts, "import the valid rows, skip the rest"
with the refused rows as a CSV, batches committed one by one, and exports with names and the view's
columns. Each test runs on SQLite and PostgreSQL (the `app` fixture)."""

from __future__ import annotations

import csv
import html
import io
import re
import time
from typing import Any

import pytest
import sqlalchemy as sa

from app.audit import Actor
from app.identity import directory
from app.plugins import runtime
from app.records.importer import ImportRun
from app.records.service import RecordService
from app.web.records import csv_import
from tests.helpers import post_form, text_of
from tests.integration.test_record_pages import CATS, G_ITEMS, HX, ITEMS, in_db, make, tenants  # noqa: F401

pytestmark = pytest.mark.usefixtures("tenants")


def upload(client: Any, text: str, **options: str) -> Any:
    return post_form(
        client, f"{ITEMS}/import", options, files={"file": ("items.csv", text.encode(), "text/csv")}
    )


def carried(page: str) -> str:
    match = re.search(r'<textarea name="csv_text" hidden aria-hidden="true">\n(.*?)</textarea>', page, re.S)
    assert match, text_of(page)[:800]
    return html.unescape(match.group(1))


def counts(page: str) -> dict[str, int]:
    found = dict(
        re.findall(r'<div class="(created|updated|skipped|refused)"><dt>[^<]*</dt><dd>([\d,]+)</dd>', page)
    )
    return {k: int(v.replace(",", "")) for k, v in found.items()}


def confirm(client: Any, page: Any, **options: str) -> Any:
    """Press "Import" on a preview: the file rides along (all or nothing) or stays in the preview's job."""
    job = re.search(r'<input type="hidden" name="job" value="([0-9a-f-]{36})">', page.text)
    carry = {"job": job.group(1)} if job else {"csv_text": carried(page.text)}
    return post_form(client, f"{ITEMS}/import", {"confirm": "1", **carry, **options}, follow_redirects=False)


def finished(client: Any, started: Any, timeout: float = 120) -> Any:
    """Follow an import job's page as the browser does (HTMX polling of its fragment) until it stops
    polling; return the full page then."""
    assert started.status_code == 303, text_of(started.text)[:600]
    url = started.headers["location"]
    assert "/import/jobs/" in url, url
    deadline = time.monotonic() + timeout
    while 'hx-trigger="every' in (fragment := client.get(url, headers=HX)).text:
        assert fragment.status_code == 200 and "<html" not in fragment.text
        assert time.monotonic() < deadline, text_of(fragment.text)
        time.sleep(0.05)
    return client.get(url)


def refused_rows(client: Any, page: Any) -> list[dict[str, str]]:
    link = re.search(r'href="([^"]*/import/jobs/[0-9a-f-]{36}/refused\.csv)"', page.text)
    assert link, text_of(page.text)[:800]
    body = client.get(link.group(1))
    assert body.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(body.text.lstrip("\ufeff"))))


def items(client: Any) -> list[dict[str, str]]:
    body = client.get(f"{ITEMS}/export.csv", params={"sort": "sku"}).text
    return list(csv.DictReader(io.StringIO(body)))


def test_reference_cells_by_name_or_unique_value_and_row_errors(tenants):
    client = tenants
    tools = make(client, CATS, {"name": "Tools", "code": "TL"})
    make(client, CATS, {"name": "Food", "code": "FD"})
    make(client, CATS, {"name": "Spares", "code": "SP1"})
    make(client, CATS, {"name": "Spares", "code": "SP2"})
    make(client, G_ITEMS.replace("/items", "/categories"), {"name": "Secret", "code": "SEC"})
    page = upload(
        client,
        "sku,name,category_id\n"
        "A-1,By name,Tools\n"
        "A-2,By code,FD\n"
        f"A-3,By id,{tools}\n"
        "A-4,Ambiguous,Spares\n"
        "A-5,Missing,Nope\n"
        "A-6,Other tenant,Secret\n",
    )
    assert page.status_code == 200
    text = text_of(page.text)
    assert counts(page.text) == {"created": 3, "updated": 0, "skipped": 0, "refused": 3}
    assert "“Spares” matches 2 Category records: use a unique value or the id." in text
    assert "No Category “Nope” in this tenant." in text
    assert "No Category “Secret” in this tenant." in text  # globex's category is not found in acme
    # The errors name the row (the Row column) and the column (the field's label).
    assert re.search(r"<td>4</td>.*?Category: “Spares” matches", page.text, re.S)
    done = post_form(
        client,
        f"{ITEMS}/import",
        {"confirm": "1", "csv_text": "sku,name,category_id\nA-1,By name,Tools\nA-2,By code,fd\n"},
    )
    assert (
        done.status_code == 422 and len(items(client)) == 0
    )  # "fd" is not "FD": the file became invalid → nothing written
    ok = upload(client, "sku,name,category_id\nA-1,By name,Tools\nA-2,By code,FD\n")
    assert confirm(client, ok).status_code == 303
    rows = {r["sku"]: r for r in items(client)}
    assert rows["A-1"]["category_id"] == tools and rows["A-2"]["category_id"] not in ("", "FD")


def test_reference_resolution_is_one_query_per_column_per_batch(tenants, app):
    client = tenants
    make(client, CATS, {"name": "Tools", "code": "TL"})
    make(client, CATS, {"name": "Food", "code": "FD"})

    async def work(session: Any) -> dict[str, int]:
        acme = (await directory.get_tenant(session, "acme")).id
        plugins = await runtime.enabled_for(session, acme)
        items_ref = runtime.find_entity(plugins, "inventory_item")
        svc = RecordService(session, acme, Actor(None, "test"), lambda _p: True)
        run = ImportRun(svc, items_ref)
        seen: list[str] = []

        def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            seen.append(statement)

        engine = session.bind.sync_engine if hasattr(session.bind, "sync_engine") else session.bind
        sa.event.listen(engine, "before_cursor_execute", count)
        try:
            rows = [
                (n, {"sku": f"Q-{n}", "name": "x", "category_id": ["Tools", "FD"][n % 2]})
                for n in range(1, 41)
            ]
            await run.batch(rows)
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)
        lookups = [s for s in seen if "inventory_category" in s and s.lstrip().upper().startswith("SELECT")]
        return {
            "lookups": len(lookups),
            "created": run.counts.created,
            "all": len(seen),
            "errors": dict(list(run.errors.items())[:2]),
        }

    result = in_db(app, work)
    assert result["created"] == 40, result
    # One lookup for the batch (names and ids alike), then the rows are written together
    # (app.records.bulk): savepoint, one multi-row INSERT, the audit rows, the event rows, release.
    assert result["lookups"] == 1, result
    assert result["all"] <= 8, result


def test_import_updates_by_key_with_preview_counts_version_and_audit(tenants, app):
    client = tenants
    make(client, CATS, {"name": "Tools", "code": "TL"})
    make(client, ITEMS, {"sku": "K-1", "name": "Old name", "quantity": "1", "status": "active"})
    make(client, ITEMS, {"sku": "K-2", "name": "Same", "quantity": "2", "status": "active"})
    text = (
        "sku,name,quantity,category_id\n"
        "K-1,New name,5,Tools\n"  # updated
        "K-2,Same,2,\n"  # unchanged: skipped
        "K-3,Brand new,3,TL\n"  # created
        "K-4,Bad,lots,\n"  # refused
    )
    page = upload(client, text, key="sku")
    assert counts(page.text) == {"created": 1, "updated": 1, "skipped": 1, "refused": 1}
    assert 'name="confirm"' not in page.text  # all or nothing: a refused row blocks the import
    page = upload(client, text, key="sku", skip_invalid="1")
    assert counts(page.text) == {"created": 1, "updated": 1, "skipped": 1, "refused": 1}
    assert "Import 3 valid rows, skip 1" in text_of(page.text)
    assert len(items(client)) == 2  # previews write nothing
    result = finished(client, confirm(client, page, key="sku", skip_invalid="1"))
    assert result.status_code == 200 and counts(result.text) == {
        "created": 1,
        "updated": 1,
        "skipped": 1,
        "refused": 1,
    }
    rows = {r["sku"]: r for r in items(client)}
    assert rows["K-1"]["name"] == "New name" and rows["K-1"]["quantity"] == "5"
    assert rows["K-3"]["name"] == "Brand new" and "K-4" not in rows

    async def audit(session: Any) -> list[tuple[str, int]]:
        found = await session.execute(
            sa.text("select action, count(*) from audit_log where target_id = :id group by action"),
            {"id": rows["K-1"]["id"]},
        )
        acme = (await directory.get_tenant(session, "acme")).id
        table = runtime.find_entity(await runtime.enabled_for(session, acme), "inventory_item").table
        version = await session.execute(sa.select(table.c.version).where(table.c.sku == "K-1"))
        return [*found.all(), ("version", version.scalar_one())]

    trail = dict(in_db(app, audit))
    assert trail["version"] == 2 and any("update" in a for a in trail), trail
    # A key that is not a unique field, or not in the file, is an inline error (the choice kept).
    bad = upload(client, text, key="name")
    assert bad.status_code == 422 and "Choose a unique field as the key." in text_of(bad.text)
    missing = upload(client, "name\nx\n", key="sku")
    assert missing.status_code == 422 and "The key column sku is not in the file." in text_of(missing.text)
    assert 'value="sku" selected' in missing.text


def test_skip_invalid_offers_the_refused_rows_as_csv(tenants):
    client = tenants
    page = upload(client, "sku,name,quantity\nS-1,Ok,1\nS-2,Bad,x\nS-1,Again,2\n", skip_invalid="1")
    assert counts(page.text)["refused"] == 2
    result = finished(client, confirm(client, page, skip_invalid="1"))
    assert result.status_code == 200
    refused = refused_rows(client, result)
    assert [r["row"] for r in refused] == ["2", "3"]
    assert "quantity: " in refused[0]["errors"] and "The same SKU as row 1" in refused[1]["errors"]
    assert [r["sku"] for r in items(client)] == ["S-1"]


def test_big_files_import_in_committed_batches(tenants, monkeypatch):
    client = tenants
    monkeypatch.setattr(csv_import, "MAX_ATOMIC_ROWS", 100)
    body = "sku,name,quantity\n" + "".join(f"B-{n:04d},Row {n},{n}\n" for n in range(1, 1202))
    body += "B-0001,Dup,1\n"
    refused = upload(client, body)
    assert refused.status_code == 422 and "import in batches" in text_of(refused.text)
    page = upload(client, body, skip_invalid="1")
    assert counts(page.text) == {"created": 1201, "updated": 0, "skipped": 0, "refused": 1}
    assert len(items(client)) == 0
    result = finished(client, confirm(client, page, skip_invalid="1"))
    assert result.status_code == 200 and counts(result.text)["created"] == 1201
    assert len(items(client)) == 1201


def test_export_with_names_and_the_views_columns_reimports(tenants):
    client = tenants
    make(client, CATS, {"name": "Tools", "code": "TL"})
    upload_page = upload(client, "sku,name,category_id,quantity\nE-1,Hammer,Tools,3\nE-2,=cmd,,4\n")
    assert confirm(client, upload_page).status_code == 303
    listing = client.get(ITEMS, params={"cols": "sku,category_id"})
    link = re.search(r'href="([^"]*export\.csv[^"]*names=1)"', listing.text)
    assert link and "cols=sku%2Ccategory_id" in link.group(1)
    body = client.get(html.unescape(link.group(1))).text
    rows = list(csv.DictReader(io.StringIO(body)))
    assert list(rows[0]) == ["id", "sku", "category_id", "created_at", "updated_at"]
    assert {r["sku"]: r["category_id"] for r in rows} == {"E-1": "Tools", "E-2": ""}
    # The export with names imports again, updating by SKU: nothing changes.
    again = upload(client, body, key="sku")
    assert counts(again.text) == {"created": 0, "updated": 0, "skipped": 2, "refused": 0}


def test_a_batch_written_together_refuses_what_a_single_write_would(tenants, app):
    """The bulk path (app.records.bulk) keeps the record service's answers: a SKU another record holds
    is refused by name (the multi-row INSERT's ON CONFLICT), an id of another tenant's category is not
    found, the other rows are created with their audit rows and events, and an update by key bumps the
    version once."""
    client = tenants
    make(client, ITEMS, {"sku": "T-1", "name": "Taken", "status": "active"})
    theirs = make(client, "/t/globex/p/inventory/inventory/categories", {"name": "Secret", "code": "SC"})
    page = upload(
        client,
        f"sku,name,quantity,category_id\nT-1,Again,1,\nT-2,New,2,\nT-3,Foreign,3,{theirs}\n",
        skip_invalid="1",
    )
    assert counts(page.text) == {"created": 1, "updated": 0, "skipped": 0, "refused": 2}, text_of(page.text)
    result = finished(client, confirm(client, page, skip_invalid="1"))
    assert result.status_code == 200 and counts(result.text)["created"] == 1
    text = " ".join(r["errors"] for r in refused_rows(client, result))
    assert "already has SKU = T-1" in text and "No Category with that id in this tenant." in text
    assert [r["sku"] for r in items(client)] == ["T-1", "T-2"]

    updated = confirm(client, upload(client, "sku,name\nT-2,Renamed\n", key="sku"), key="sku")
    assert updated.status_code in (200, 303)

    async def work(session: Any) -> dict[str, Any]:
        acme = (await directory.get_tenant(session, "acme")).id
        t = runtime.find_entity(await runtime.enabled_for(session, acme), "inventory_item").table
        row = (await session.execute(sa.select(t).where(t.c.sku == "T-2"))).mappings().one()
        audit = await session.scalar(
            sa.text("SELECT count(*) FROM audit_log WHERE target_id = :id"), {"id": str(row["id"])}
        )
        events = await session.scalar(
            sa.text("SELECT count(*) FROM event_log WHERE CAST(payload AS TEXT) LIKE :id"),
            {"id": f"%{row['id']}%"},
        )
        return {"name": row["name"], "version": row["version"], "audit": audit, "events": events}

    assert in_db(app, work) == {"name": "Renamed", "version": 2, "audit": 2, "events": 2}
