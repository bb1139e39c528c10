"""Background imports (issue 15): "Import the valid rows, skip the rest" starts a job whose page polls
its progress (one URL: the whole page, or for HTMX the progress fragment), reached again after a reload,
from another host over the same database, and only by the user who started it; each batch is its own
transaction, so other users write between batches (SQLite's write lock is free between them); cancel;
a job whose process died is failed at the next start with its committed batches kept. References in
imports respect the importing user's data scope. Each test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from typing import Any

import sqlalchemy as sa
from litestar.testing import TestClient

from app.core.import_jobs import ImportJob
from app.core.settings import load_settings
from app.identity import directory
from app.plugins import runtime
from app.records import import_jobs
from app.server import create_app
from app.web.records import csv_import
from tests.conftest import ADMIN_EMAIL
from tests.helpers import login, post_form, text_of
from tests.integration.test_imports import confirm, counts, finished, items, refused_rows, upload
from tests.integration.test_record_pages import BOB, CATS, HX, ITEMS, in_db, make, tenants  # noqa: F401
from tests.integration.test_scopes import ITEMS as SCOPED_ITEMS
from tests.integration.test_scopes import as_user, org  # noqa: F401


def rows_csv(n: int, *, bad_every: int = 0, prefix: str = "J") -> str:
    """n item rows; every `bad_every`-th has a quantity that is not a number."""
    lines = ["sku,name,quantity"]
    for i in range(1, n + 1):
        quantity = "lots" if bad_every and i % bad_every == 0 else str(i)
        lines.append(f"{prefix}-{i:05d},Item {i},{quantity}")
    return "\n".join(lines) + "\n"


def start(client: Any, text: str, **options: str) -> Any:
    preview = upload(client, text, skip_invalid="1", **options)
    assert preview.status_code == 200, text_of(preview.text)[:600]
    assert 'name="csv_text"' not in preview.text  # the file stays in the preview's job, not in the page
    started = confirm(client, preview, skip_invalid="1", **options)
    assert started.status_code == 303, text_of(started.text)[:600]
    return started


def progress(fragment: str) -> tuple[int, int, bool]:
    """(rows done, total, still polling) from the progress fragment."""
    bar = re.search(r'<progress class="import-bar" max="(\d+)" value="(\d+)"', fragment)
    assert bar, fragment[:600]
    return int(bar.group(2)), int(bar.group(1)), 'hx-trigger="every' in fragment


def test_a_job_shows_its_progress_then_the_result_and_the_refused_rows(tenants, monkeypatch):
    client = tenants
    # A pause between batches long enough for the polls below to see each batch land, on both databases.
    monkeypatch.setattr(import_jobs, "SQLITE_PAUSE", 0.3)
    monkeypatch.setattr(import_jobs, "POSTGRES_PAUSE", 0.3)
    started = start(client, rows_csv(1_300, bad_every=100))
    url = started.headers["location"]
    seen: list[int] = []
    while True:
        fragment = client.get(url, headers=HX)
        assert fragment.status_code == 200 and "<html" not in fragment.text  # HTMX: just the fragment
        done, total, polling = progress(fragment.text)
        seen.append(done)
        if not polling:
            break
        assert len(seen) < 2_000, seen
        time.sleep(0.05)
    assert total == 1_300 and seen[-1] == 1_300
    assert seen == sorted(seen)  # it only advances
    assert {500, 1_000} <= set(seen), sorted(set(seen))  # each batch's progress was seen on its own
    page = client.get(url)
    assert "<html" in page.text and 'id="import-progress"' in page.text  # the whole page, same URL
    assert counts(page.text) == {"created": 1_287, "updated": 0, "skipped": 0, "refused": 13}
    assert "1,300 of 1,300 rows done (100%)" in text_of(page.text)
    refused = refused_rows(client, page)
    assert [r["row"] for r in refused] == [str(n) for n in range(100, 1_301, 100)]
    assert refused[0]["sku"] == "J-00100" and "quantity: " in refused[0]["errors"]
    assert len(items(client)) == 1_287


def test_a_big_files_preview_checks_its_first_rows_and_the_job_the_rest(tenants, monkeypatch):
    """A file bigger than PREVIEW_CHECKED previews its first rows and counts the others (a 100,000-row
    file previews in seconds); the job checks every row, so a bad row past the preview is refused then."""
    client = tenants
    monkeypatch.setattr(csv_import, "PREVIEW_CHECKED", 1_000)
    preview = upload(client, rows_csv(1_300, bad_every=1_200), skip_invalid="1")
    assert preview.status_code == 200, text_of(preview.text)[:600]
    shown = text_of(preview.text)
    assert "The first 1,000 of 1,300 rows were checked" in shown
    assert (
        "All 1,000 checked rows are valid" in shown
        and "Import the 1,300 rows, skipping refused ones" in shown
    )
    assert counts(preview.text) == {"created": 1_000, "updated": 0, "skipped": 0, "refused": 0}
    assert items(client) == []  # a dry run
    result = finished(client, confirm(client, preview, skip_invalid="1"))
    assert counts(result.text) == {"created": 1_299, "updated": 0, "skipped": 0, "refused": 1}
    assert [r["row"] for r in refused_rows(client, result)] == ["1200"]


def test_other_users_write_between_batches(tenants):
    """SQLite has one write lock: the job must not hold it across batches. A form posted while the job
    runs is saved while the job is still running (PostgreSQL: only row locks, never in the way)."""
    client = tenants
    started = start(client, rows_csv(6_000))
    url = started.headers["location"]
    done, total, polling = progress(client.get(url, headers=HX).text)
    assert polling and done < total
    made = make(client, CATS, {"name": "Written meanwhile", "code": "WM"})
    after, _, still_running = progress(client.get(url, headers=HX).text)
    if client.app.state.settings.is_sqlite:
        assert still_running and after < total, (after, total)  # it got in between two batches
    result = finished(client, started)
    assert counts(result.text)["created"] == 6_000
    assert client.get(f"{CATS}/{made}").status_code == 200


def test_the_job_is_its_owners_and_any_host_shows_it(tenants, app, settings_env):
    client = tenants
    result = finished(client, start(client, rows_csv(40)))
    url = str(result.url)
    # Another host over the same database (a second app, its own process state) serves the same page.
    other = create_app(load_settings(settings_env))
    with TestClient(app=other, base_url="http://testserver.local") as second:
        second.cookies.update(client.cookies)
        page = second.get(url)
        assert page.status_code == 200 and counts(page.text)["created"] == 40
        assert progress(second.get(url, headers=HX).text) == (40, 40, False)
    # Another user of the tenant does not see it (nor its refused rows).
    bob = TestClient(app=client.app, base_url="http://testserver.local")
    with bob:
        login(bob, *BOB)
        assert bob.get(url).status_code == 404
        assert bob.get(f"{url}/refused.csv").status_code == 404
    # An id that is no job, or a preview's job, is not found either.
    assert client.get(f"{ITEMS}/import/jobs/{uuid.uuid4()}").status_code == 404


def test_cancel_stops_between_batches_and_keeps_what_was_committed(tenants, monkeypatch):
    client = tenants
    monkeypatch.setattr(import_jobs, "SQLITE_PAUSE", 0.4)
    monkeypatch.setattr(import_jobs, "POSTGRES_PAUSE", 0.4)
    started = start(client, rows_csv(2_000))
    url = started.headers["location"]
    while progress(client.get(url, headers=HX).text)[0] == 0:
        time.sleep(0.05)
    assert post_form(client, f"{url}/cancel", {}, follow_redirects=False).status_code == 303
    page = finished(client, started)
    done, total, _ = progress(page.text)
    assert "Import cancelled" in text_of(page.text) and 0 < done < total == 2_000
    assert counts(page.text)["created"] == done == len(items(client))  # whole batches, nothing half-done
    # A stopped job cannot be cancelled again; the request is harmless.
    assert post_form(client, f"{url}/cancel", {}, follow_redirects=False).status_code == 303


def test_a_job_left_running_by_a_dead_process_is_failed_at_the_next_start(tenants, app, settings_env):
    client = tenants

    async def orphan(session: Any) -> str:
        acme = await directory.get_tenant(session, "acme")
        admin = await directory.find_user(session, ADMIN_EMAIL)
        assert admin is not None
        beat = dt.datetime.now(dt.UTC) - import_jobs.STALE_AFTER - dt.timedelta(seconds=5)
        job = ImportJob(
            tenant_id=acme.id,
            user_id=admin.id,
            entity="inventory_item",
            page_url=ITEMS,
            filename="big.csv",
            status="running",
            cancel_requested=False,
            total=3_000,
            done=1_500,
            created=1_500,
            source=b"sku,name\n",
            refused_csv="",
            beat_at=beat,
        )
        session.add(job)
        await session.flush()
        return str(job.id)

    job_id = in_db(app, orphan)
    url = f"{ITEMS}/import/jobs/{job_id}"
    shown = client.get(url)  # already shown as stopped: no beat for STALE_AFTER
    assert "Import stopped" in text_of(shown.text) and 'hx-trigger="every' not in shown.text
    with TestClient(app=create_app(load_settings(settings_env)), base_url="http://testserver.local"):
        pass  # a start of the app (any host) marks it failed

    async def state(session: Any) -> tuple[str, str | None, bool]:
        job = await session.get(ImportJob, uuid.UUID(job_id))
        return job.status, job.problem, job.source is None

    assert in_db(app, state) == ("failed", import_jobs.LOST, True)
    page = client.get(url)
    assert "The import stopped because the server stopped" in text_of(page.text)
    assert "1,500 of 3,000 rows done (50%)" in text_of(page.text)
    post_form(client, "/language", {"language": "zh", "next": url})
    assert "服务器已停止，导入随之中止。" in text_of(client.get(url).text)  # the stored problem, translated


def test_a_stale_preview_cannot_be_imported(tenants):
    client = tenants
    preview = upload(client, rows_csv(3), skip_invalid="1")
    job = re.search(r'name="job" value="([0-9a-f-]{36})"', preview.text)
    assert job
    first = post_form(
        client,
        f"{ITEMS}/import",
        {"confirm": "1", "job": job.group(1), "skip_invalid": "1"},
        follow_redirects=False,
    )
    assert counts(finished(client, first).text)["created"] == 3 and len(items(client)) == 3
    again = post_form(client, f"{ITEMS}/import", {"confirm": "1", "job": job.group(1), "skip_invalid": "1"})
    assert again.status_code == 422
    assert "This preview is no longer available: choose the file again." in text_of(again.text)
    bogus = post_form(client, f"{ITEMS}/import", {"confirm": "1", "job": "nope", "skip_invalid": "1"})
    assert bogus.status_code == 422


def test_long_finished_jobs_are_dropped_by_later_imports(tenants):
    """A finished job's page (and its refused rows) stays for FINISHED_KEPT; a later import drops it."""
    client = tenants
    started = start(client, rows_csv(2))
    url = started.headers["location"]
    assert counts(finished(client, started).text)["created"] == 2
    job_id = uuid.UUID(url.rsplit("/", 1)[1])

    async def age(s: Any) -> None:
        job = await s.get(ImportJob, job_id)
        job.finished_at -= import_jobs.FINISHED_KEPT + dt.timedelta(days=1)

    in_db(client.app, age)
    assert client.get(url).status_code == 200  # kept until another import comes along
    assert upload(client, rows_csv(1, prefix="K"), skip_invalid="1").status_code == 200
    assert client.get(url).status_code == 404


def test_references_in_imports_respect_the_importers_data_scope(client: TestClient, org: dict[str, Any]):
    """Mid sees the subtree mid ← carol ← dave: a reference to a category of boss, eve or alice (by
    name, code or id) is a row error like a missing one, in the preview and in the job; carol's is fine."""
    rows = org["rows"]
    as_user(client, "mid")
    text = (
        "sku,name,category_id\n"
        "M-1,Carol's by name,Carol tools\n"
        "M-2,Dave's by code,DAVE\n"
        "M-3,Boss's by name,Boss tools\n"
        "M-4,Eve's by code,EVE\n"
        f"M-5,Alice's by id,{rows['cat-alice']}\n"
    )
    page = post_form(client, f"{SCOPED_ITEMS}/import", {"csv_text": text, "skip_invalid": "1"})
    assert counts(page.text) == {"created": 2, "updated": 0, "skipped": 0, "refused": 3}, text_of(page.text)
    shown = text_of(page.text)
    assert (
        "No Category “Boss tools” in this tenant." in shown and "No Category “EVE” in this tenant." in shown
    )
    assert "No Category with that id in this tenant." in shown
    job = re.search(r'name="job" value="([0-9a-f-]{36})"', page.text)
    assert job
    started = post_form(
        client,
        f"{SCOPED_ITEMS}/import",
        {"confirm": "1", "job": job.group(1), "skip_invalid": "1"},
        follow_redirects=False,
    )
    result = finished(client, started)
    assert counts(result.text) == {"created": 2, "updated": 0, "skipped": 0, "refused": 3}
    assert [r["sku"] for r in refused_rows(client, result)] == ["M-3", "M-4", "M-5"]

    async def written(session: Any) -> dict[str, str]:
        table = (await runtime.entity_in_tenant(session, org["acme"], "inventory", "inventory_item")).table
        found = await session.execute(
            sa.select(table.c.sku, table.c.category_id).where(table.c.sku.like("M-%"))
        )
        return {sku: str(cat) for sku, cat in found.all()}

    assert in_db(client.app, written) == {"M-1": rows["cat-carol"], "M-2": rows["cat-dave"]}
    # Alice (an admin, no scope) may reference boss's category.
    as_user(client, "alice")
    admin = post_form(
        client, f"{SCOPED_ITEMS}/import", {"csv_text": "sku,name,category_id\nM-6,x,Boss tools\n"}
    )
    assert counts(admin.text)["refused"] == 0


def test_a_shutdown_mid_import_fails_the_job_and_keeps_its_batches(tenants, app, settings_env, monkeypatch):
    monkeypatch.setattr(import_jobs, "SQLITE_PAUSE", 0.5)
    monkeypatch.setattr(import_jobs, "POSTGRES_PAUSE", 0.5)
    host = create_app(load_settings(settings_env))  # a host of its own, stopped mid-import
    with TestClient(app=host, base_url="http://testserver.local") as other:
        other.cookies.update(tenants.cookies)
        started = start(other, rows_csv(3_000))
        url = started.headers["location"]
        while progress(other.get(url, headers=HX).text)[0] == 0:
            time.sleep(0.05)
    page = tenants.get(url)  # the first host shows what the stopped one left
    done, total, polling = progress(page.text)
    assert not polling and 0 < done < total == 3_000
    assert "The import stopped because the server stopped." in text_of(page.text)
    assert counts(page.text)["created"] == done == len(items(tenants))
