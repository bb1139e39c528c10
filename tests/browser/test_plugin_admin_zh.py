"""The plugin administration in Chinese, in Chromium, on SQLite and PostgreSQL: a platform admin reading
Chinese gets a broken package's located manifest problems, the lifecycle's messages (installed, enabled,
disabled, uninstalled) and its refusals (uninstalling twice, a purge not confirmed) in Chinese; the API
tokens and messages pages too. Each page is photographed at 1280 and 390 px."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from app.plugins.packages import make_zip
from tests.browser.conftest import VIEWPORT
from tests.browser.test_i18n_flow import both_widths
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CRM = ROOT / "plugins" / "crm"
PLUGINS = "/t/system/admin/plugins"
# An unknown key (with a did-you-mean), a wrong type and a bad version: three located problems.
BROKEN_TOML = """
[plugin]
id = "broken"
name = "Broken"
version = "one"
descripton = "typo"

[permissions]
events = "yes"
"""


def sign_in_zh(page: Page) -> None:
    page.goto("/login")
    expect(page.locator("html")).to_have_attribute("lang", "zh")
    page.get_by_label("邮箱").fill(ADMIN_EMAIL)
    page.get_by_label("密码").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="登录", exact=True).click()
    # The first admin's stored preference is English: the header's switch changes it.
    page.get_by_role("button", name="中文").click()
    expect(page.get_by_role("button", name="退出登录")).to_be_visible()


def upload(page: Page, package: Path, *, install_now: bool = False) -> None:
    form = page.locator("#plugin-upload")
    if not form.is_visible():
        page.locator("details", has=form).locator("summary").click()
    form.locator("input[type=file]").set_input_files(str(package))
    if install_now:
        form.get_by_label("立即安装").check()
    form.get_by_role("button", name="上传").click()


def error_box(page: Page) -> Any:
    return page.locator("#plugin-error")


def test_plugin_admin_in_chinese(browser: Any, live_server: Any, shot: Any, tmp_path: Path) -> None:
    broken = tmp_path / "broken.zip"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("plugin.toml", BROKEN_TOML)
    broken.write_bytes(buffer.getvalue())
    crm = tmp_path / "crm.zip"
    crm.write_bytes(make_zip(CRM))
    context = browser.new_context(base_url=live_server.url, viewport=VIEWPORT, locale="zh-CN")
    try:
        page = context.new_page()
        sign_in_zh(page)
        page.goto(PLUGINS)
        expect(page.get_by_role("heading", level=1)).to_have_text("插件")

        # A broken manifest: every problem located, in Chinese (the paths stay as written).
        upload(page, broken)
        box = error_box(page)
        expect(box.locator("strong")).to_have_text("插件清单无效")
        expect(box).to_contain_text("清单（plugin.toml）有以下问题：")
        issues = box.locator("ul.issues li")
        expect(issues.filter(has_text="plugin.descripton")).to_contain_text(
            "未知键“descripton”（您是否想写“description”？）"
        )
        expect(issues.filter(has_text="plugin.version")).to_contain_text("不是语义化版本号")
        expect(issues.filter(has_text="permissions.events")).to_contain_text(
            "应为 true 或 false，实际为字符串"
        )
        expect(box).not_to_contain_text("expected")
        both_widths(page, shot, "manifest-errors-zh")

        # Not a zip at all: the package's fault, in Chinese.
        junk = tmp_path / "junk.zip"
        junk.write_bytes(b"not a zip")
        upload(page, junk)
        expect(error_box(page).locator("strong")).to_have_text("插件包无效")
        expect(error_box(page)).to_contain_text("不是 zip 压缩包")

        # The lifecycle's messages.
        upload(page, crm, install_now=True)
        expect(page).to_have_url(re.compile(r"/admin/plugins/crm$"))
        expect(page.locator(".flash")).to_have_text(re.compile(r"^已安装 crm \d+\.\d+\.\d+$"))
        both_widths(page, shot, "installed-zh")
        page.goto(PLUGINS)
        upload(page, crm, install_now=True)  # the same package again: refused, in Chinese
        expect(error_box(page)).to_contain_text("已使用完全相同的包安装")
        page.goto(f"{PLUGINS}/crm")
        page.get_by_role("button", name="启用", exact=True).click()
        expect(page.locator(".flash")).to_have_text("已在 Platform 中启用 crm")
        # A configuration's value errors, located by line, in Chinese.
        page.goto(f"{PLUGINS}/crm/config")
        form = page.locator("#config-form")
        form.get_by_label("名称").fill("main")
        form.get_by_label("值").fill("region\n1x = 2")
        form.get_by_role("button", name="创建").click()
        expect(page.locator("#e-text")).to_have_text(
            "第 1 行：应为 键 = 值；第 2 行：'1x' 不是有效的键（只能使用字母、数字、“_”、“.”、“-”，以字母或“_”开头）"
        )
        both_widths(page, shot, "config-errors-zh")
        page.goto(f"{PLUGINS}/crm")
        page.get_by_role("button", name="停用", exact=True).click()
        expect(page.locator(".flash")).to_have_text("已在 Platform 中停用 crm")
        asked: list[str] = []

        def accept(dialog: Any) -> None:
            asked.append(dialog.message)
            dialog.accept()

        page.once("dialog", accept)
        page.get_by_role("button", name="卸载", exact=True).click()
        expect(page.locator(".flash")).to_have_text("已卸载 crm；其数据表和数据在清除前会保留")
        assert asked == ["卸载 crm？其数据表和数据在清除前会保留。"]
        both_widths(page, shot, "uninstalled-zh")

        # A purge not confirmed (the browser's own check taken away: the server refuses it as well).
        purge = page.locator("#purge")
        purge.get_by_role("textbox").evaluate("field => field.removeAttribute('pattern')")
        purge.get_by_role("textbox").fill("wrong")
        purge.get_by_role("button", name="清除 crm").click()
        expect(error_box(page)).to_contain_text("请输入插件 ID（crm）以确认清除；未删除任何内容")
        both_widths(page, shot, "purge-refused-zh")

        # The API tokens and messages pages.
        page.goto("/t/system/account/tokens")
        expect(page.get_by_role("heading", level=1)).to_contain_text("API 令牌")
        expect(page.get_by_label("有效期")).to_contain_text("90 天")
        page.get_by_label("令牌名称").fill("nightly")
        page.get_by_role("button", name="创建令牌").click()
        expect(page.locator("#new-token")).to_contain_text("请立即复制新令牌")
        row = page.locator("tbody tr", has_text="nightly")
        expect(row).to_contain_text(re.compile(r"\d{4}年\d{1,2}月\d{1,2}日"))  # dates written the Chinese way
        both_widths(page, shot, "tokens-zh")
        page.goto("/t/system/messages")
        expect(page.get_by_role("heading", level=1)).to_contain_text("消息")
        both_widths(page, shot, "messages-zh")
    finally:
        context.close()
