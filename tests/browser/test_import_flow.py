"""A CSV import that updates, in Chromium, on SQLite and PostgreSQL, with the demo's data: a pasted file
keyed by SKU (one existing item changed, one new item in a category named "Hardware", one bad row);
the preview counts what will be created, updated and refused; "Import" starts a background job whose
page polls its progress until the bar is full and shows the result with the refused rows to download,
and the list shows the change. A job halfway through (its row as a running job writes it) shows the
bar, the counts so far and the cancel button. Looked at in English and Chinese, at 1280 and 390 px."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, expect

from app.core.db import make_alchemy_config
from app.core.import_jobs import ImportJob
from app.core.models import Tenant, User
from app.core.settings import load_settings
from app.demo import DEMO_PASSWORD
from tests.browser.conftest import run_off_loop
from tests.browser.test_admin_flow import sign_in
from tests.browser.test_inventory_approval_flow import _demo
from tests.browser.test_phone import PHONE, page_width

pytestmark = pytest.mark.browser

WIDE = {"width": 1280, "height": 900}
ITEMS = "/t/demo/p/inventory/inventory/items"
CSV = "sku,name,category_id,quantity\nSKU-1001,Renamed by import,Hardware,7\nNEW-1,Imported item,HW,3\nNEW-2,Bad,Hardware,lots\n"


def count(page: Page, kind: str) -> Any:
    return page.locator(f".import-counts .{kind} dd")


def preview(page: Page) -> None:
    page.goto(f"{ITEMS}/import")
    page.locator("details.field summary").click()
    page.locator("#f-csv").fill(CSV)
    page.locator("#f-key").select_option("sku")
    page.locator("input[name=skip_invalid]").check()
    page.locator("form.card button[type=submit]").click()
    expect(count(page, "created")).to_have_text("1")
    expect(count(page, "updated")).to_have_text("1")
    expect(count(page, "skipped")).to_have_text("0")
    expect(count(page, "refused")).to_have_text("1")


def test_import_that_updates_previews_counts_then_imports(
    page: Page, live_server: Any, settings_env: dict[str, str], shot: Any
) -> None:
    _demo(settings_env)
    page.set_viewport_size(WIDE)
    sign_in(page, "alice@demo.test", DEMO_PASSWORD)
    page.goto(f"{ITEMS}/import")
    expect(page.get_by_label("Existing records")).to_be_visible()
    shot(page, "form-1280-en", full_page=True)
    preview(page)
    expect(page.locator("table.import-preview")).to_contain_text("Enter a whole number")
    shot(page, "preview-1280-en", full_page=True)
    page.set_viewport_size(PHONE)
    assert page_width(page) <= PHONE["width"], page_width(page)
    shot(page, "preview-390-en", full_page=True)

    page.get_by_role("button", name="中文").click()
    preview(page)
    expect(page.get_by_text("将更新")).to_be_visible()
    assert page_width(page) <= PHONE["width"], page_width(page)
    shot(page, "preview-390-zh", full_page=True)
    page.set_viewport_size(WIDE)
    shot(page, "preview-1280-zh", full_page=True)
    page.get_by_role("button", name="English").click()
    preview(page)
    assert page.locator(".flash.success, .flash.error").count() >= 1

    page.get_by_role("button", name="Import 2 valid rows, skip 1").click()
    expect(page).to_have_url(re.compile(r"/import/jobs/[0-9a-f-]{36}$"))
    bar = page.locator("progress.import-bar")
    expect(bar).to_have_attribute("value", "3")  # polled until every row is done
    expect(bar).to_have_attribute("max", "3")
    expect(page.get_by_role("heading", name="Result")).to_be_visible()
    expect(page.locator(".import-done")).to_have_text("3 of 3 rows done (100%)")
    expect(count(page, "created")).to_have_text("1")
    expect(count(page, "updated")).to_have_text("1")
    expect(count(page, "refused")).to_have_text("1")
    expect(page.get_by_role("link", name="Download the refused rows (CSV with their errors)")).to_be_visible()
    shot(page, "result-1280-en", full_page=True)

    page.goto(f"{ITEMS}?q=import")
    expect(page.locator("table.records")).to_contain_text("Renamed by import")
    expect(page.locator("table.records")).to_contain_text("Imported item")
    expect(page.locator("table.records")).not_to_contain_text("NEW-2")


def _running_job(settings_env: dict[str, str]) -> str:
    """A job halfway through, as the import job's batches leave its row (beating now)."""

    made: list[str] = []

    async def work() -> None:
        config = make_alchemy_config(load_settings(settings_env))
        try:
            async with config.get_session() as s:
                tenant = await s.scalar(sa.select(Tenant).where(Tenant.slug == "demo"))
                alice = await s.scalar(sa.select(User).where(User.email == "alice@demo.test"))
                assert tenant is not None and alice is not None
                job = ImportJob(
                    id=uuid.uuid4(),
                    tenant_id=tenant.id,
                    user_id=alice.id,
                    entity="inventory_item",
                    page_url=ITEMS,
                    filename="items-2026.csv",
                    status="running",
                    cancel_requested=False,
                    total=100_000,
                    done=42_500,
                    created=40_100,
                    updated=1_900,
                    skipped=300,
                    refused=200,
                    source=b"sku,name\n",
                    refused_csv="",
                )
                s.add(job)
                await s.commit()
                made.append(str(job.id))
        finally:
            await config.get_engine().dispose()

    run_off_loop(work, 60)
    return made[0]


def test_a_running_import_shows_its_progress(
    page: Page, live_server: Any, settings_env: dict[str, str], shot: Any
) -> None:
    _demo(settings_env)
    job = _running_job(settings_env)
    page.set_viewport_size(WIDE)
    sign_in(page, "alice@demo.test", DEMO_PASSWORD)
    page.goto(f"{ITEMS}/import/jobs/{job}")
    expect(page.get_by_role("heading", name="Importing…")).to_be_visible()
    expect(page.locator(".import-done")).to_have_text("42,500 of 100,000 rows done (42%)")
    expect(page.locator("#import-progress")).to_have_attribute("hx-trigger", "every 1s")
    expect(count(page, "created")).to_have_text("40,100")
    expect(page.get_by_role("button", name="Cancel the import")).to_be_visible()
    shot(page, "progress-1280-en", full_page=True)
    page.set_viewport_size(PHONE)
    assert page_width(page) <= PHONE["width"], page_width(page)
    shot(page, "progress-390-en", full_page=True)
    page.get_by_role("button", name="中文").click()
    expect(page.get_by_role("heading", name="正在导入…")).to_be_visible()
    assert page_width(page) <= PHONE["width"], page_width(page)
    shot(page, "progress-390-zh", full_page=True)
    page.set_viewport_size(WIDE)
    shot(page, "progress-1280-zh", full_page=True)
    page.get_by_role("button", name="取消导入").click()
    expect(page.get_by_text("当前批次完成后停止…")).to_be_visible()
    page.get_by_role("button", name="English").click()
