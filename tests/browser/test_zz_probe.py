import re
import pytest
from playwright.sync_api import expect
from tests.browser.test_admin_flow import sign_in, sign_out, create_tenant, add_member, BOB, nav
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
pytestmark = pytest.mark.browser

def test_probe(page):
    sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    create_tenant(page, "acme", "Acme Inc")
    page.goto("/t/acme/admin/roles")
    page.get_by_role("link", name="Member", exact=True).click()
    page.get_by_role("checkbox", name="db.roles.select", exact=True).check()
    page.get_by_role("button", name="Save permissions").click()
    expect(page.locator(".flash")).to_be_visible()
    page.get_by_role("heading", name="Permissions").evaluate("e => e.scrollIntoView({block: 'start'})")
    page.screenshot(path="/tmp/a.png")
    page.get_by_role("checkbox", name="db.roles.select", exact=True).evaluate("e => e.closest('tr').scrollIntoView({block: 'center'})")
    page.screenshot(path="/tmp/b.png")
    page.screenshot(path="/tmp/full.png", full_page=True)
