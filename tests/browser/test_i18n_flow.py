"""The interface in Chinese and English, in Chromium, on SQLite and PostgreSQL: a Chinese browser gets the
sign-in page in Chinese, the header switch changes the language (and is kept with the account), plugin
labels follow it, and both languages are photographed at 1280 and 390 px."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from app.access import roles as role_service
from app.audit import Actor
from app.core.db import make_alchemy_config
from app.core.settings import load_settings
from app.identity import directory
from tests.browser.conftest import VIEWPORT, run_off_loop
from tests.browser.test_csp import install_inventory

pytestmark = pytest.mark.browser

ALICE = ("alice@acme.test", "alice-password-1")
PHONE = {"width": 390, "height": 844}


def seed(settings_env: dict[str, str]) -> None:
    async def work() -> None:
        config = make_alchemy_config(load_settings(settings_env))
        try:
            async with config.get_session() as s:
                actor = Actor(None, "test")
                tenant = await directory.create_tenant(s, actor, "acme", "Acme")
                user = await directory.create_user(s, actor, ALICE[0], ALICE[1], "Alice")
                admin = await role_service.get_role(s, tenant.id, "Admin")
                await directory.add_member(s, actor, tenant.id, user, admin)
                await s.commit()
        finally:
            await config.get_engine().dispose()

    run_off_loop(work, 60)


def both_widths(page: Page, shot: Any, name: str) -> None:
    shot(page, f"{name}-1280", full_page=True)
    page.set_viewport_size(PHONE)
    shot(page, f"{name}-390")  # the first screen: what a phone shows
    page.set_viewport_size(VIEWPORT)


def test_chinese_and_english(
    browser: Any, live_server: Any, settings_env: dict[str, str], shot: Any, tmp_path: Path
) -> None:
    seed(settings_env)
    install_inventory(settings_env, tmp_path)
    context = browser.new_context(base_url=live_server.url, viewport=VIEWPORT, locale="zh-CN")
    try:
        page = context.new_page()
        page.goto("/login")
        expect(page.locator("html")).to_have_attribute("lang", "zh")
        expect(page.get_by_role("heading", name="登录门户")).to_be_visible()
        both_widths(page, shot, "login-zh")
        page.get_by_label("邮箱").fill(ALICE[0])
        page.get_by_label("密码").fill(ALICE[1])
        page.get_by_role("button", name="登录", exact=True).click()
        expect(page).to_have_url(re.compile(r"/t/acme/$"))
        # Alice's stored preference is English: it wins over the browser's Chinese.
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        nav = page.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("link", name="Items", exact=True)).to_be_visible()
        page.get_by_role("button", name="中文").click()
        expect(page.get_by_role("button", name="退出登录")).to_be_visible()
        nav = page.get_by_role("navigation", name="主导航")
        expect(nav.get_by_role("heading", name="库存")).to_be_visible()  # the plugin's menu group
        expect(nav.get_by_role("heading", name="系统管理")).to_be_visible()
        expect(nav.get_by_role("link", name="物品", exact=True)).to_be_visible()
        both_widths(page, shot, "home-zh")
        nav.get_by_role("link", name="成员").click()
        expect(page.get_by_role("heading", name="Acme 的成员")).to_be_visible()
        expect(page.get_by_role("columnheader", name="角色")).to_be_visible()
        both_widths(page, shot, "members-zh")
        page.goto("/t/acme/admin/roles")
        page.get_by_role("link", name="Member", exact=True).click()
        expect(page.get_by_role("heading", name="数据范围")).to_be_visible()
        expect(page.get_by_text("物品", exact=False).first).to_be_visible()  # entity labels in Chinese
        both_widths(page, shot, "role-zh")
        # Back to English: the switch names the other language in its own tongue.
        page.get_by_role("button", name="English").click()
        expect(page.get_by_role("heading", name="Data scopes")).to_be_visible()
        expect(page.get_by_role("button", name="中文")).to_be_visible()
        both_widths(page, shot, "role-en")
        page.goto("/t/acme/admin/members")
        expect(page.get_by_role("heading", name="Members of Acme")).to_be_visible()
        both_widths(page, shot, "members-en")
    finally:
        context.close()
