"""The issue's acceptance walk in a real browser, on SQLite and on PostgreSQL.

The platform admin creates a tenant and a member through the pages, the member is refused the Roles
page, the admin grants db.roles.select on the role matrix, the explain page says why it is now allowed,
and the member then finds Roles in the menu. Plus: the HTMX member search and HTML escaping of names.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
BOB = ("bob@acme.test", "bob-password-1")
HOSTILE = "<img src=x onerror=alert(1)>"


# --- steps a person takes ------------------------------------------------------------------------


def sign_in(page: Page, email: str, password: str, *, lands_on: str = r"/t/[a-z0-9-]+/$") -> None:
    """Fill the login form (the current page when it is one, else /login)."""
    if "/login" not in page.url:
        page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(lands_on))
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def nav(page: Page) -> Any:
    return page.get_by_role("navigation", name="Main")


def flash(page: Page) -> Any:
    return page.locator(".flash")


def create_tenant(page: Page, slug: str, name: str) -> None:
    if not page.url.endswith("/t/system/admin/tenants"):
        page.goto("/t/system/admin/tenants")
    details = page.locator("details", has=page.get_by_text("New tenant"))
    slug_field = details.get_by_label("Slug")
    expect(slug_field).to_be_hidden()  # collapsed until opened
    details.locator("summary").click()
    expect(details).to_have_attribute("open", "")
    slug_field.fill(slug)
    details.get_by_label("Name").fill(name)
    details.get_by_role("button", name="Create tenant").click()
    expect(page).to_have_url(re.compile(r"/t/system/admin/tenants$"))
    expect(flash(page)).to_have_text(f"Tenant {slug} created")
    expect(
        page.locator("#rows tbody tr", has=page.get_by_role("link", name=slug, exact=True))
    ).to_contain_text(name)


def add_member(
    page: Page, tenant: str, email: str, display_name: str, password: str, role: str = "Member"
) -> None:
    page.goto(f"/t/{tenant}/admin/members")
    details = page.locator("details", has=page.get_by_text("Add a member"))
    details.locator("summary").click()
    details.get_by_label("Email").fill(email)
    details.get_by_label("Role").select_option(role)
    details.get_by_label("Display name (new account)").fill(display_name)
    details.get_by_label("Initial password (new account)").fill(password)
    details.get_by_role("button", name="Add member").click()
    expect(page).to_have_url(re.compile(rf"/t/{tenant}/admin/members$"))
    expect(flash(page)).to_have_text(f"Created and added {email}")
    expect(member_row(page, email)).to_be_visible()


def open_tenant_from_tenants_page(page: Page, slug: str) -> None:
    nav(page).get_by_role("link", name="Tenants").click()
    page.locator("#rows").get_by_role("link", name=slug, exact=True).click()
    expect(page).to_have_url(re.compile(rf"/t/{slug}/$"))
    expect(page.locator("#tenant-switch")).to_have_value(slug)


def member_row(page: Page, email: str) -> Any:
    return page.locator("#rows tbody tr", has=page.get_by_text(email, exact=True))


def edit_member(page: Page, email: str) -> Any:
    """Open the member's edit dialog (role, reports to, unit); the open dialog."""
    page.get_by_role("link", name=f"Edit {email}", exact=True).click()
    dialog = page.locator("dialog.member-dialog[open]")
    expect(dialog).to_be_visible()
    return dialog


# --- the acceptance walk -------------------------------------------------------------------------


def test_admin_grants_a_role_and_the_member_sees_it(page: Page, shot: Any) -> None:
    page.goto("/t/system/admin/tenants")  # not signed in: the login form, which leads back here
    expect(page).to_have_url(re.compile(r"/login\?next=/t/system/admin/tenants$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to Portal")
    shot(page, "login")
    sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD, lands_on=r"/t/system/admin/tenants$")
    expect(nav(page).get_by_role("link", name="Tenants")).to_have_attribute("aria-current", "page")
    create_tenant(page, "acme", "Acme Inc")
    shot(page, "tenants")

    add_member(page, "acme", BOB[0], "Bob", BOB[1])
    expect(member_row(page, BOB[0])).to_contain_text("Bob")
    expect(member_row(page, BOB[0]).locator(".member-role")).to_have_text("Member")
    shot(page, "members")

    # The header's tenant switcher moves between tenants.
    switcher = page.locator("#tenant-switch")
    expect(switcher).to_have_value("acme")
    switcher.select_option("system")
    expect(page).to_have_url(re.compile(r"/t/system/$"))
    expect(page.locator("#tenant-switch")).to_have_value("system")
    page.locator("#tenant-switch").select_option("acme")
    expect(page).to_have_url(re.compile(r"/t/acme/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme Inc")
    sign_out(page)

    # Bob is a plain Member: no administration, and the Roles page is refused.
    sign_in(page, *BOB, lands_on=r"/t/acme/$")
    expect(nav(page)).to_be_visible()
    expect(nav(page)).not_to_contain_text("Administration")
    expect(nav(page).get_by_role("link", name="Roles")).to_have_count(0)
    shot(page, "member-home-before")
    response = page.goto("/t/acme/admin/roles")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("No access")
    expect(page.locator("main")).to_contain_text("You can't see Roles in Acme Inc.")
    expect(page.locator("main")).to_contain_text("Ask an admin of Acme Inc for access.")
    expect(page.locator("main")).not_to_contain_text("db.roles.select")
    expect(nav(page)).to_be_visible()  # the error page keeps the layout
    shot(page, "forbidden")
    sign_out(page)

    # The admin grants db.roles.select to the Member role on the matrix.
    sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD, lands_on=r"/t/system/$")
    open_tenant_from_tenants_page(page, "acme")
    nav(page).get_by_role("link", name="Roles").click()
    expect(page).to_have_url(re.compile(r"/t/acme/admin/roles$"))
    page.get_by_role("link", name="Member", exact=True).click()
    expect(page).to_have_url(re.compile(r"/t/acme/admin/roles/[0-9a-f-]{36}$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Role Member")
    box = page.get_by_role("checkbox", name="View roles of the tenant (db.roles.select)", exact=True)
    expect(box).not_to_be_checked()
    box.check()
    page.get_by_role("button", name="Save permissions").click()
    expect(flash(page)).to_have_text("Saved: 1 granted, 0 revoked")
    expect(page.get_by_role("checkbox", name="db.roles.select")).to_be_checked()
    expect(page.get_by_role("checkbox", name="db.roles.delete")).not_to_be_checked()
    role_url = page.url
    if os.environ.get("PORTAL_UPDATE_SCREENSHOT") == "1":  # the README picture; not rewritten on every run
        page.screenshot(path=str(ROOT / "docs" / "screenshot.png"))  # the viewport, 1280x800, top of the page
    shot(page, "role-matrix", full_page=True)

    # The explain page says yes, and why.
    nav(page).get_by_role("link", name="Permissions explain").click()
    expect(page).to_have_url(re.compile(r"/t/acme/admin/explain$"))
    page.get_by_label("Member").fill(BOB[0])
    page.get_by_label("Permission").fill("db.roles.select")
    page.get_by_role("button", name="Explain").click()
    expect(page).to_have_url(
        re.compile(r"/t/acme/admin/explain\?user=bob%40acme.test&permission=db.roles.select$")
    )
    result = page.locator("#explain-result")
    expect(result.locator(".yes")).to_have_text("Yes")
    expect(result).to_contain_text(
        "Bob may use “View roles of the tenant” because of the role Member (grant db.roles.select)."
    )
    shot(page, "explain")
    page.get_by_label("Permission").fill("db.roles.delete")
    page.get_by_role("button", name="Explain").click()
    expect(result.locator(".no")).to_have_text("No")
    expect(result).to_contain_text("their role Member does not grant it")
    sign_out(page)

    # Bob now finds Roles in the menu and may open it, read-only.
    sign_in(page, *BOB)
    expect(nav(page)).to_contain_text("Administration")
    nav(page).get_by_role("link", name="Roles").click()
    expect(page).to_have_url(re.compile(r"/t/acme/admin/roles$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Roles of Acme Inc")
    expect(page.get_by_role("link", name="Roles")).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("button", name="Create role")).to_have_count(0)
    shot(page, "member-roles-after")
    response = page.goto(role_url)  # the matrix needs db.role_permissions.select, which Bob lacks
    assert response is not None and response.status == 403


# --- HTMX: the member list filters in place ------------------------------------------------------


def test_member_search_updates_rows_without_reloading(page: Page, shot: Any) -> None:
    sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    create_tenant(page, "acme", "Acme Inc")
    add_member(page, "acme", BOB[0], "Bob", BOB[1])
    add_member(page, "acme", "carol@acme.test", "Carol", "carol-password-1")
    expect(page.locator("#rows tbody tr")).to_have_count(2)  # the platform admin is no member of acme

    page.evaluate("window.__noReload = 'still here'")
    with page.expect_response(lambda r: "/t/acme/admin/members?" in r.url and "q=carol" in r.url) as caught:
        page.get_by_role("searchbox", name="Search").fill("carol")
    response = caught.value
    assert response.ok
    assert response.request.headers.get("hx-request") == "true"
    assert "<html" not in response.text().lower(), "HTMX should get only the rows fragment"
    expect(page.locator("#rows tbody tr")).to_have_count(1)
    expect(member_row(page, "carol@acme.test")).to_be_visible()
    expect(member_row(page, BOB[0])).to_have_count(0)
    expect(page).to_have_url(re.compile(r"/t/acme/admin/members\?q=carol(&|$)"))
    assert page.evaluate("window.__noReload") == "still here", "the page was reloaded"
    shot(page, "members-search")

    page.get_by_role("searchbox", name="Search").fill("nobody-like-this")
    expect(page.locator("#rows")).to_contain_text("No members match “nobody-like-this”")
    expect(page).to_have_url(re.compile(r"\?q=nobody-like-this(&|$)"))
    page.get_by_role("searchbox", name="Search").fill("")
    expect(page.locator("#rows tbody tr")).to_have_count(2)
    assert page.evaluate("window.__noReload") == "still here"


# --- names are text, never markup ---------------------------------------------------------------


def test_hostile_names_are_shown_escaped(page: Page, shot: Any) -> None:
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    hostile_tenant = "Acme <script>alert(2)</script>"
    sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    create_tenant(page, "acme", hostile_tenant)
    add_member(page, "acme", "eve@acme.test", HOSTILE, "eve-password-1")

    def assert_inert() -> None:
        expect(page.locator("img")).to_have_count(0)  # the portal has no images; an <img> here is injected
        expect(page.locator("main script, header script")).to_have_count(0)

    row = member_row(page, "eve@acme.test")
    expect(row).to_contain_text(HOSTILE)  # shown literally, as text
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Members of {hostile_tenant}")
    assert hostile_tenant in page.title()
    assert_inert()
    shot(page, "members")

    page.get_by_role("searchbox", name="Search").fill("eve")  # the HTMX fragment is escaped too
    expect(page).to_have_url(re.compile(r"\?q=eve(&|$)"))
    expect(page.locator("#rows tbody tr")).to_have_count(1)
    expect(member_row(page, "eve@acme.test")).to_contain_text(HOSTILE)
    assert_inert()

    nav(page).get_by_role("link", name="Audit log").click()
    expect(page.locator("#rows")).to_contain_text("member.add")
    assert_inert()
    sign_out(page)

    sign_in(page, "eve@acme.test", "eve-password-1")  # her own name in the header and on the home page
    expect(page.locator("header.top")).to_contain_text(HOSTILE)
    expect(page.locator("main")).to_contain_text(HOSTILE)
    expect(page.locator("#tenant-switch option:checked")).to_have_text(f"{hostile_tenant} (Member)")
    assert_inert()
    shot(page, "home")
    assert dialogs == [], f"markup from user input ran: {dialogs}"


# --- regressions: bugs found by these browser tests, now fixed ---------------------------------

UI_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # no database difference involved


@UI_ONLY
def test_platform_admin_switches_from_system_to_any_tenant(page: Page) -> None:
    sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    create_tenant(page, "acme", "Acme Inc")
    expect(page.locator("#tenant-switch option[value=acme]")).to_have_count(1, timeout=1_000)
    page.locator("#tenant-switch").select_option("acme")
    expect(page).to_have_url(re.compile(r"/t/acme/$"))


@UI_ONLY
def test_row_actions_still_work_after_an_htmx_search(page: Page) -> None:
    sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    create_tenant(page, "acme", "Acme Inc")
    add_member(page, "acme", BOB[0], "Bob", BOB[1])
    page.get_by_role("searchbox", name="Search").fill("bob")
    expect(page).to_have_url(re.compile(r"\?q=bob(&|$)"))
    expect(member_row(page, BOB[0]).get_by_role("link", name=f"Edit {BOB[0]}")).to_have_attribute(
        "href", re.compile(r"^/t/acme/admin/members\?q=bob&(size=\d+&)?edit=[0-9a-f-]{36}$"), timeout=1_000
    )
    dialog = edit_member(page, BOB[0])
    expect(dialog.locator("form")).to_have_attribute(
        "action", re.compile(r"^/t/acme/admin/members/[0-9a-f-]{36}\?q=bob(&size=\d+)?$")
    )
    dialog.get_by_label(f"Role of {BOB[0]}").select_option("Admin")
    dialog.get_by_role("button", name="Save").click()
    expect(flash(page)).to_have_text("Member saved")
    expect(member_row(page, BOB[0]).locator(".member-role")).to_have_text("Admin")


@UI_ONLY
def test_back_button_restores_a_searched_list_as_a_full_page(page: Page) -> None:
    sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    create_tenant(page, "acme", "Acme Inc")
    add_member(page, "acme", BOB[0], "Bob", BOB[1])
    page.get_by_role("searchbox", name="Search").fill("bob")
    expect(page).to_have_url(re.compile(r"\?q=bob(&|$)"))
    nav(page).get_by_role("link", name="Home").click()
    expect(page).to_have_url(re.compile(r"/t/acme/$"))
    page.go_back()
    expect(page).to_have_url(re.compile(r"\?q=bob(&|$)"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Members of Acme Inc", timeout=1_000)
    expect(member_row(page, BOB[0])).to_be_visible()
