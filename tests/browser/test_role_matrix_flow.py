"""The role–permission matrix and the explain page in Chromium, on SQLite and PostgreSQL, in English and
Chinese, at 1280 and 390 px: the filter narrows the grid as you type, toggles tick a column (of the rows
shown), a row and a module, a box's description shows on hover and is its accessible name, one save keeps
it; the explain pickers find the member and the permission as you type and the answer is in words. Without
script the plain boxes and the pickers' links still do the job."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from app.core.db import make_alchemy_config
from app.core.settings import load_settings
from tests.browser.conftest import run_off_loop
from tests.browser.test_admin_flow import sign_in
from tests.integration.test_role_matrix import PW, seed_acme

pytestmark = pytest.mark.browser

SIZES = {1280: {"width": 1280, "height": 800}, 390: {"width": 390, "height": 844}}
# What each step reads and types, per language.
WORDS = {
    "en": {
        "roles": "Roles",
        "filter": "Filter permissions",
        "shown": "3 of {total} rows shown",
        "create_all": "Create: every row shown",
        "supplier_row": "Everything for Supplier",
        "workflow": "Everything in Workflow",
        "supplier_view": "View Supplier records (db.supplier.select)",
        "save": "Save permissions",
        "saved": "Saved: 7 granted, 0 revoked",
        "explain": "Permissions explain",
        "member": "Member",
        "permission": "Permission",
        "perm_words": "create purchase order",
        "perm_pick": "Create Purchase order records",
        "run": "Explain",
        # The grid just ticked it: the exact grant answers, not the role's wildcard.
        "yes": "Carol may create Purchase order records because of the role Buyer (grant db.purchase_order.insert).",
        "no": "Bob may not create Purchase order records: their role Member does not grant it.",
        "would": "Roles that would grant it:",
    },
    "zh": {
        "roles": "角色",
        "filter": "筛选权限",
        "shown": "显示 {total} 行中的 3 行",
        "create_all": "创建：所有显示的行",
        "supplier_row": "供应商 的全部权限",
        "workflow": "工作流 中的全部权限",
        "supplier_view": "查看供应商记录 (db.supplier.select)",
        "save": "保存权限",
        "saved": "已保存：授予 7 项，撤销 0 项",
        "explain": "权限诊断",
        "member": "成员",
        "permission": "权限",
        "perm_words": "创建 采购订单",
        "perm_pick": "创建采购订单记录",
        "run": "诊断",
        "yes": "Carol 可以创建采购订单记录，因为其角色 Buyer（授权 db.purchase_order.insert）。",
        "no": "Bob 不能创建采购订单记录：其角色 Member 没有授予该权限。",
        "would": "可以授予该权限的角色：",
    },
}
FILTER = {"en": "purchase", "zh": "采购"}


def seed(settings_env: dict[str, str], target: Path) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def work() -> None:
        settings = load_settings(settings_env)
        config = make_alchemy_config(settings)
        try:
            async with config.get_session() as s:
                found.update(await seed_acme(s, settings, target))
                await s.commit()
        finally:
            await config.get_engine().dispose()

    run_off_loop(work, 120)
    return found


def grid_box(page: Page, code: str) -> Any:
    return page.locator(f"#matrix-grid input[name=perm][value='{code}']")


def fits(page: Page, width: int) -> None:
    """The page itself never scrolls sideways (a wide grid scrolls inside its own box)."""
    assert page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.mark.parametrize("width", [1280, 390])
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_matrix_and_explain(
    browser: Browser,
    live_server: Any,
    settings_env: dict[str, str],
    shot: Any,
    tmp_path: Path,
    lang: str,
    width: int,
) -> None:
    ids = seed(settings_env, tmp_path)
    w = WORDS[lang]
    context = browser.new_context(base_url=live_server.url, viewport=SIZES[width])
    try:
        page = context.new_page()
        page.goto("/login")
        sign_in(page, "alice@acme.test", PW)
        if lang == "zh":
            page.get_by_role("button", name="中文").click()
            expect(page.locator("html")).to_have_attribute("lang", "zh")
        page.goto(f"/t/acme/admin/roles/{ids['buyer']}")
        name = f"matrix-{lang}-{width}"

        # The toggles and the filter are script's additions: shown now.
        expect(page.get_by_label(w["filter"])).to_be_visible()
        expect(page.get_by_role("checkbox", name=w["create_all"])).to_be_visible()
        fits(page, width)
        shot(page, f"{name}-top")
        supplier_view = page.get_by_role("checkbox", name=w["supplier_view"], exact=True)
        expect(supplier_view).not_to_be_checked()
        description = w["supplier_view"].split(" (")[0]
        expect(
            page.locator("label.cell-box", has=page.locator("input[value='db.supplier.select']"))
        ).to_have_attribute("title", description)

        # Typing narrows the rows; the column toggle then ticks only those shown.
        total = page.locator("#matrix-grid tr[data-row]").count()
        page.get_by_label(w["filter"]).fill(FILTER[lang])
        expect(page.locator("#matrix-grid tr[data-row]:visible")).to_have_count(3)
        expect(page.locator("[data-matrix-count]")).to_have_text(w["shown"].format(total=total))
        expect(page.locator("tbody[data-group=admin]")).to_be_hidden()
        shot(page, f"{name}-filtered", full_page=True)
        page.get_by_role("checkbox", name=w["create_all"]).check()
        expect(grid_box(page, "db.purchase_order.insert")).to_be_checked()
        expect(grid_box(page, "db.purchase_order_line.insert")).to_be_checked()
        expect(grid_box(page, "db.inventory_item.insert")).not_to_be_checked()  # filtered out
        page.get_by_label(w["filter"]).fill("")
        expect(page.locator("tbody[data-group=admin]")).to_be_visible()
        expect(page.get_by_role("checkbox", name=w["create_all"])).to_have_js_property("indeterminate", True)

        # A whole row, a whole module.
        page.get_by_role("checkbox", name=w["supplier_row"]).check()
        for op in ("select", "insert", "update", "delete"):
            expect(grid_box(page, f"db.supplier.{op}")).to_be_checked()
        page.get_by_role("checkbox", name=w["workflow"]).check()
        expect(grid_box(page, "ui.workflow.admin")).to_be_checked()
        page.get_by_role("button", name=w["save"]).click()
        expect(page.locator(".flash")).to_have_text(w["saved"])
        expect(supplier_view).to_be_checked()
        expect(grid_box(page, "db.purchase_order.insert")).to_be_checked()
        expect(grid_box(page, "db.inventory_item.insert")).not_to_be_checked()
        expect(page.get_by_role("checkbox", name=w["supplier_row"])).to_be_checked()
        shot(page, f"{name}-saved", full_page=True)
        # The grants without a box: the unknown wildcard is flagged.
        expect(page.locator(".grant-notes li.warning", has_text="db.ghost.*")).to_be_visible()

        # Explain: pick the member and the permission by searching.
        page.goto("/t/acme/admin/explain")
        member = page.get_by_label(w["member"], exact=True)
        member.fill("car")
        page.locator("#user-choices a", has_text="carol@acme.test").click()
        expect(member).to_have_value("carol@acme.test")
        page.wait_for_timeout(600)  # past the field's 250 ms search delay: no list comes back for it
        expect(page.locator("#user-choices a")).to_have_count(0)
        permission = page.get_by_label(w["permission"], exact=True)
        expect(permission).to_be_focused()
        permission.fill(w["perm_words"])
        expect(page.locator("#permission-choices a").first).to_contain_text(w["perm_pick"])
        shot(page, f"explain-pickers-{lang}-{width}", full_page=True)
        page.locator("#permission-choices a", has_text=w["perm_pick"]).first.click()
        expect(permission).to_have_value("db.purchase_order.insert")
        page.get_by_role("button", name=w["run"], exact=True).click()
        result = page.locator("#explain-result")
        expect(result.locator(".answer")).to_have_text(w["yes"])
        expect(page.locator("#explain-scope")).to_be_visible()
        fits(page, width)
        shot(page, f"explain-yes-{lang}-{width}", full_page=True)
        member.fill("bob@acme.test")
        page.get_by_role("button", name=w["run"], exact=True).click()
        expect(result.locator(".answer")).to_have_text(w["no"])
        expect(result).to_contain_text(w["would"])
        expect(result.locator(".would-grant a", has_text="Buyer")).to_have_attribute(
            "href", f"/t/acme/admin/roles/{ids['buyer']}"
        )
        expect(page.locator("#explain-scope")).to_have_count(0)  # rows do not matter when denied
        shot(page, f"explain-no-{lang}-{width}", full_page=True)
    finally:
        context.close()


def test_without_script(
    browser: Browser, live_server: Any, settings_env: dict[str, str], shot: Any, tmp_path: Path
) -> None:
    ids = seed(settings_env, tmp_path)
    context = browser.new_context(base_url=live_server.url, viewport=SIZES[1280], java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto("/login")
        page.get_by_label("Email").fill("alice@acme.test")
        page.get_by_label("Password").fill(PW)
        page.get_by_role("button", name="Sign in").click()
        page.goto(f"/t/acme/admin/roles/{ids['buyer']}")
        expect(page.locator("[data-matrix-tools]")).to_be_hidden()
        expect(page.locator("input[data-toggle]:visible")).to_have_count(0)
        page.get_by_role("checkbox", name="db.roles.select").check()
        grid_box(page, "db.inventory_item.select").uncheck()
        page.get_by_role("button", name="Save permissions").click()
        expect(page.locator(".flash")).to_have_text("Saved: 1 granted, 1 revoked")
        expect(page.get_by_role("checkbox", name="db.roles.select")).to_be_checked()
        expect(page.locator("#f-patterns")).to_have_value(re.compile(r"db\.ghost\.\*"))  # kept
        shot(page, "matrix-noscript", full_page=True)

        # The explain pickers: the page lists the matches as links that ask again.
        page.goto("/t/acme/admin/explain")
        page.get_by_label("Member", exact=True).fill("car")
        page.get_by_label("Permission", exact=True).fill("purchase order")
        page.get_by_role("button", name="Explain", exact=True).click()
        page.locator("#user-choices a", has_text="carol@acme.test").click()
        expect(page.get_by_label("Member", exact=True)).to_have_value("carol@acme.test")
        page.locator("#permission-choices a", has_text="db.purchase_order.insert").click()
        expect(page.locator("#explain-result .answer")).to_have_text(
            "Carol may create Purchase order records because of the role Buyer (grant db.purchase_order.*)."
        )
        shot(page, "explain-noscript", full_page=True)
    finally:
        context.close()
