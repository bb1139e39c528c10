"""A plugin's whole life in a real browser, on SQLite and on PostgreSQL.

The platform admin uploads the CRM package (with "install now") on the system tenant's plugin page,
enables it for acme, finds the CRM menu group and works with customers through the generated pages:
a refused create (required name empty), create, edit, an optimistic-lock conflict between two tabs
resolved with "Overwrite with mine", delete, restore from the Deleted view and a CSV export.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from app.plugins.packages import make_zip
from tests.browser.test_admin_flow import create_tenant, flash, nav, open_tenant_from_tenants_page, sign_in
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CRM = ROOT / "plugins" / "crm"
CUSTOMERS = "/t/acme/p/crm/crm/customers"
RECORD_URL = re.compile(rf"{CUSTOMERS}/([0-9a-f-]{{36}})$")
CSV_HEADER = [
    "id",
    "name",
    "code",
    "email",
    "phone",
    "status",
    "notes",
    "contract",
    "created_at",
    "updated_at",
]

# Remembers the upload progress bar's state after each htmx:xhr:progress event (the page's own listener
# runs first: it was registered earlier). sessionStorage survives the HX-Redirect that follows the upload.
WATCH_PROGRESS = """() => document.addEventListener("htmx:xhr:progress", () => {
  const bar = document.getElementById("upload-progress");
  sessionStorage.setItem("uploadProgress", JSON.stringify({hidden: bar.hidden, value: bar.value, max: bar.max}));
})"""


# --- steps ---------------------------------------------------------------------------------------


def upload_plugin(page: Page, package: Path, *, install_now: bool) -> None:
    """On the (current) plugin list page: choose the package, tick "Install now", upload via HTMX."""
    form = page.locator("#plugin-upload")
    expect(form).to_be_visible()  # the upload box is open while there are no plugins
    page.evaluate(WATCH_PROGRESS)
    form.get_by_label(re.compile(r"^Package \(\.zip")).set_input_files(str(package))
    install = form.get_by_label("Install now")
    if install_now:
        install.check()
    expect(install).to_be_checked(checked=install_now)
    with page.expect_request(
        lambda r: r.url.endswith("/admin/plugins/upload") and r.method == "POST"
    ) as sent:
        form.get_by_role("button", name="Upload").click()
    assert sent.value.headers.get("hx-request") == "true", "the upload should go through HTMX (progress bar)"


def field_value(page: Page, label: str) -> Any:
    """The <dd> after the <dt> with this label on a record's detail page."""
    return page.locator("dl.record dt", has_text=re.compile(rf"^{re.escape(label)}$")).locator(
        "xpath=following-sibling::dd[1]"
    )


def conflict_row(page: Page, label: str) -> Any:
    return page.locator(
        "table.conflict tbody tr", has=page.get_by_role("rowheader", name=re.compile(rf"^{label}\b"))
    )


def list_row(page: Page, text: str) -> Any:
    return page.locator("#rows table.records tbody tr", has_text=text)


# --- the walk ------------------------------------------------------------------------------------


def test_plugin_upload_enable_and_customer_crud(page: Page, shot: Any, tmp_path: Path) -> None:
    dialogs: list[str] = []
    package = tmp_path / "crm-1.2.0.zip"
    package.write_bytes(make_zip(CRM))

    sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    create_tenant(page, "acme", "Acme Inc")

    # --- the platform admin uploads and installs CRM -------------------------------------------
    nav(page).get_by_role("link", name="Plugins").click()
    expect(page).to_have_url(re.compile(r"/t/system/admin/plugins$"))
    expect(page.locator("#plugins")).to_contain_text("No plugins yet.")
    upload_plugin(page, package, install_now=True)
    expect(page).to_have_url(re.compile(r"/t/system/admin/plugins/crm$"))  # HX-Redirect to the plugin's page
    expect(flash(page)).to_have_text("Installed crm 1.2.0")
    expect(page.get_by_role("heading", level=1)).to_contain_text("CRM")
    state = page.locator("#plugin-state")
    expect(state.locator("tr", has_text="Platform").locator(".badge")).to_have_text("installed")
    expect(page.locator("#plugin-schema-versions")).to_contain_text("customer")
    progress = json.loads(page.evaluate("sessionStorage.getItem('uploadProgress')") or "null")
    assert progress == {"hidden": False, "value": 100, "max": 100}, f"progress bar: {progress}"
    shot(page, "installed")

    nav(page).get_by_role("link", name="Plugins").click()
    crm_row = page.locator("#plugin-crm")
    expect(crm_row.locator("td").nth(2)).to_have_text("installed")
    expect(crm_row.locator("td").nth(1)).to_have_text("1.2.0")

    # --- enabled for acme; the CRM menu appears --------------------------------------------------
    open_tenant_from_tenants_page(page, "acme")
    expect(nav(page).get_by_role("heading", name="CRM")).to_have_count(0)
    nav(page).get_by_role("link", name="Plugins").click()
    expect(page).to_have_url(re.compile(r"/t/acme/admin/plugins$"))
    crm_row = page.locator("#plugin-crm")
    expect(crm_row.locator("td").nth(3)).to_have_text("—")  # never enabled in acme
    crm_row.get_by_role("button", name="Enable").click()
    expect(page).to_have_url(re.compile(r"/t/acme/admin/plugins$"))
    expect(flash(page)).to_have_text("Enabled crm in Acme Inc")
    expect(crm_row.locator("td").nth(3)).to_have_text("enabled")
    expect(crm_row.get_by_role("button", name="Disable")).to_be_visible()
    menu = nav(page)
    expect(menu.get_by_role("heading", name="CRM")).to_be_visible()
    for name in ("Customers", "Contacts", "Tags", "Customer tags"):
        expect(menu.get_by_role("link", name=name, exact=True)).to_be_visible()
    shot(page, "enabled")

    # --- create: first refused (name is required), then saved ------------------------------------
    menu.get_by_role("link", name="Customers", exact=True).click()
    expect(page).to_have_url(re.compile(rf"{CUSTOMERS}$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Customers")
    expect(page.locator("#rows")).to_contain_text("No customer records yet.")
    page.get_by_role("link", name="New Customer").click()
    expect(page).to_have_url(re.compile(rf"{CUSTOMERS}/new$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("New Customer")
    page.get_by_label("Code").fill("GLX-1")
    page.get_by_label("Email").fill("info@globex.test")
    page.get_by_role("button", name="Create").click()
    expect(page.locator(".flash.error")).to_have_text(
        re.compile(r"Please correct the marked field; nothing was saved")
    )
    name_box = page.get_by_label("Name")
    expect(name_box).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#e-name")).to_have_text("This field is required.")
    expect(name_box).to_have_attribute("aria-describedby", "e-name")
    expect(page.get_by_label("Code")).to_have_value("GLX-1")  # what was typed is kept
    shot(page, "create-error")
    name_box.fill("Globex")
    page.get_by_label("Status").select_option("Active")
    page.get_by_role("button", name="Create").click()
    expect(page).to_have_url(RECORD_URL)
    expect(flash(page)).to_have_text("Customer Globex created")
    expect(page.get_by_role("heading", level=1)).to_have_text("Customer Globex")
    expect(field_value(page, "Code")).to_have_text("GLX-1")
    expect(field_value(page, "Status")).to_have_text("Active")
    detail_url = page.url

    # --- edit -----------------------------------------------------------------------------------
    page.get_by_role("link", name="Edit", exact=True).click()
    expect(page).to_have_url(f"{detail_url}/edit")
    expect(page.get_by_label("Name")).to_have_value("Globex")
    page.get_by_label("Phone").fill("+1 555 0100")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(detail_url)
    expect(flash(page)).to_have_text("Customer Globex saved")
    expect(field_value(page, "Phone")).to_have_text("+1 555 0100")
    expect(field_value(page, "Version")).to_have_text("2")
    expect(page.locator("table.history")).to_contain_text("+1 555 0100")

    # --- the optimistic lock: two tabs edit the same version -------------------------------------
    theirs = page
    mine = page.context.new_page()
    for tab in (theirs, mine):
        tab.goto(f"{detail_url}/edit")
        expect(tab.get_by_label("Email")).to_have_value("info@globex.test")
    theirs.get_by_label("Email").fill("sales@globex.test")
    theirs.get_by_role("button", name="Save").click()
    expect(flash(theirs)).to_have_text("Customer Globex saved")
    expect(field_value(theirs, "Email")).to_have_text("sales@globex.test")

    mine.get_by_label("Email").fill("hello@globex.test")
    mine.get_by_label("Notes").fill("Met at the fair")
    mine.get_by_role("button", name="Save").click()
    expect(mine.get_by_role("heading", level=1)).to_have_text("Someone else changed Customer Globex")
    expect(mine.locator(".flash.warning")).to_contain_text("not saved")
    email_row = conflict_row(mine, "Email")
    expect(email_row.locator("td").nth(0)).to_have_text("sales@globex.test")  # theirs
    expect(email_row.locator("td").nth(1)).to_have_text("hello@globex.test")  # yours
    expect(email_row.locator(".badge")).to_have_text("differs")
    expect(conflict_row(mine, "Name").locator(".badge")).to_have_count(0)  # the same on both sides
    shot(mine, "conflict", full_page=True)
    mine.get_by_role("button", name="Overwrite with mine").click()
    expect(mine).to_have_url(detail_url)
    expect(flash(mine)).to_have_text("Customer Globex saved")
    expect(field_value(mine, "Email")).to_have_text("hello@globex.test")
    expect(field_value(mine, "Notes")).to_have_text("Met at the fair")
    expect(field_value(mine, "Phone")).to_have_text("+1 555 0100")  # the first edit survives
    expect(field_value(mine, "Version")).to_have_text("4")
    shot(mine, "overwritten")
    mine.close()

    # --- delete, then restore from the Deleted view ----------------------------------------------
    page.goto(detail_url)
    expect(field_value(page, "Email")).to_have_text("hello@globex.test")

    def accept(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.get_by_role("button", name="Delete").click()
    expect(flash(page)).to_have_text("Customer Globex deleted")
    assert dialogs == ["Delete Customer Globex? It can be restored from the Deleted view."]
    expect(page).to_have_url(re.compile(rf"{CUSTOMERS}$"))
    expect(page.locator("#rows")).to_contain_text("No customer records yet.")

    page.get_by_label("Deleted").check()
    expect(page).to_have_url(re.compile(r"[?&]deleted=1(&|$)"))  # pushed: the view can be bookmarked
    expect(page.locator("#rows")).to_contain_text("Showing deleted records")
    deleted = list_row(page, "Globex")
    expect(deleted).to_contain_text("GLX-1")
    shot(page, "deleted-view")
    deleted.get_by_role("button", name="Restore").click()
    expect(flash(page)).to_have_text("Customer Globex restored")
    expect(page.locator("#rows")).to_contain_text("No deleted customer records.")

    page.get_by_label("Deleted").uncheck()
    expect(page).not_to_have_url(re.compile(r"deleted="))
    expect(page.locator("#rows .count")).to_have_text("1 total")  # the refused create left nothing behind
    row = list_row(page, "Globex")
    expect(row).to_contain_text("GLX-1")
    expect(row).to_contain_text("hello@globex.test")
    expect(row.locator(".badge")).to_have_text("Active")
    shot(page, "restored")

    # --- export CSV -----------------------------------------------------------------------------
    with page.expect_download() as caught:
        page.get_by_role("link", name="Export CSV", exact=True).click()
    download = caught.value
    assert re.fullmatch(r"customer-\d{8}-\d{4}\.csv", download.suggested_filename), (
        download.suggested_filename
    )
    text = Path(download.path()).read_text(encoding="utf-8")
    table = list(csv.reader(io.StringIO(text, newline="")))
    assert table[0] == CSV_HEADER
    assert len(table) == 2, table
    record = dict(zip(table[0], table[1], strict=True))
    match = RECORD_URL.search(detail_url)
    assert match is not None
    assert record["id"] == match.group(1)
    assert {k: record[k] for k in ("name", "code", "email", "phone", "status", "notes")} == {
        "name": "Globex",
        "code": "GLX-1",
        "email": "hello@globex.test",
        "phone": "+1 555 0100",  # phone-like values need no formula guard
        "status": "active",
        "notes": "Met at the fair",
    }
    assert dialogs == ["Delete Customer Globex? It can be restored from the Deleted view."]
