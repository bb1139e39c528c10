"""The plugin pages speak the reader's language: a platform admin reading Chinese gets a rejected
manifest's located problems, a bad package's fault, the lifecycle's messages and its refusals in Chinese;
the JSON API keeps answering English (its convention, docs/operators.md "Languages and time zones")."""

from __future__ import annotations

from typing import Any

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.helpers import api_token, bearer, csrf, login, post_form, text_of
from tests.integration.test_plugin_lifecycle import MISSING_MODULE_TOML, notes_toml, plugin_zip

PLUGINS = "/t/system/admin/plugins"


def files(data: bytes) -> dict[str, Any]:
    return {"plugin": ("notes.zip", data, "application/zip")}


def upload(client: Any, data: bytes, **fields: str) -> Any:
    return client.post(
        f"{PLUGINS}/upload",
        data={"_csrf_token": csrf(client), **fields},
        files=files(data),
        follow_redirects=False,
    )


def flash_after(client: Any, response: Any) -> str:
    assert response.status_code == 303, response.text[:300]
    page = client.get(response.headers["location"])
    return text_of(page.text)


def in_chinese(client: Any) -> None:
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    switched = post_form(client, "/language", {"language": "zh", "next": PLUGINS}, follow_redirects=False)
    assert switched.status_code == 303


def test_manifest_problems_are_shown_in_the_readers_language(client):
    in_chinese(client)
    bad = upload(client, plugin_zip(MISSING_MODULE_TOML), install_now="on")
    assert bad.status_code == 422
    shown = text_of(bad.text)
    assert "插件清单无效" in shown and "清单（plugin.toml）有以下问题：" in shown
    # Located: the path as written, the message in Chinese, the values it names kept.
    assert "dependencies.modules[1]: 本平台没有基础模块“config”（可用：auth, message, workflow）" in shown
    assert "is not available on this platform" not in shown
    wrong_type = upload(client, plugin_zip(notes_toml().replace('version = "1.0.0"', "version = 1")))
    assert wrong_type.status_code == 422
    assert "plugin.version: 应为字符串，实际为整数" in text_of(wrong_type.text)
    junk = upload(client, b"not a zip")
    assert junk.status_code == 422
    assert "插件包无效" in text_of(junk.text) and "不是 zip 压缩包" in text_of(junk.text)


def test_lifecycle_messages_and_refusals_in_the_readers_language(client):
    in_chinese(client)
    assert "已安装 notes 1.0.0" in flash_after(
        client, upload(client, plugin_zip(notes_toml()), install_now="on")
    )
    enabled = post_form(client, f"{PLUGINS}/notes/enable", {}, follow_redirects=False)
    assert "已在 Platform 中启用 notes" in flash_after(client, enabled)
    destructive = client.post(
        f"{PLUGINS}/notes/upgrade",
        data={"_csrf_token": csrf(client)},
        files=files(plugin_zip(notes_toml("2.0.0", body=False))),
        follow_redirects=False,
    )
    assert destructive.status_code == 409
    shown = text_of(destructive.text)
    assert "已拒绝破坏性升级" in shown and "note.body：字段被删除（其数据会丢失）" in shown
    refused = post_form(client, f"{PLUGINS}/notes/uninstall", {}, follow_redirects=False)
    assert refused.status_code == 409
    assert "notes 仍在以下租户中启用：system；请先在那里停用" in text_of(refused.text)
    disabled = post_form(client, f"{PLUGINS}/notes/disable", {}, follow_redirects=False)
    assert "已在 Platform 中停用 notes" in flash_after(client, disabled)
    uninstalled = post_form(client, f"{PLUGINS}/notes/uninstall", {}, follow_redirects=False)
    assert "已卸载 notes；其数据表和数据在清除前会保留" in flash_after(client, uninstalled)
    again = post_form(client, f"{PLUGINS}/notes/uninstall", {}, follow_redirects=False)
    assert again.status_code == 409 and "notes 已卸载" in text_of(again.text)
    purge = post_form(client, f"{PLUGINS}/notes/purge", {"confirm": "no"}, follow_redirects=False)
    assert "请输入插件 ID（notes）以确认清除；未删除任何内容" in text_of(purge.text)


def test_the_json_api_keeps_english(client):
    token = api_token(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    headers = {**bearer(token, "system"), "Accept-Language": "zh-CN"}
    bad = client.post(
        "/api/v1/admin/plugins/upload", files=files(plugin_zip(MISSING_MODULE_TOML)), headers=headers
    )
    assert bad.status_code == 422
    body = bad.json()
    assert body["title"] == "Invalid plugin manifest"
    assert any("base module 'config' is not available on this platform" in e for e in body["errors"])
