"""The interface's language per request (preference, header switch, Accept-Language) and the tenant's
time zone, against the real app on both databases."""

from __future__ import annotations

import datetime as dt
import re

from app.core.settings import SYSTEM_TENANT_ID
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.helpers import login, logout, post_form, text_of


def test_signed_out_pages_follow_accept_language(client):
    zh = client.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
    assert '<html lang="zh">' in zh.text and "登录门户" in zh.text and "Sign in to Portal" not in zh.text
    en = client.get("/login", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert '<html lang="en">' in en.text and "Sign in to Portal" in en.text
    other = client.get("/login", headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    assert '<html lang="en">' in other.text  # no supported language asked for: English


def test_switch_signed_out_sets_a_cookie_that_wins_over_the_browser(client):
    client.get("/login")
    r = post_form(client, "/language", {"language": "zh", "next": "/login"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert client.cookies.get("portal_lang") == "zh"
    page = client.get("/login", headers={"Accept-Language": "en"})
    assert "登录门户" in page.text
    # The switch offers the other language, in its own name.
    assert 'name="language" value="en"' in page.text and 'value="zh" lang="zh"' not in page.text
    # An error from Python code is in the chosen language too.
    r = post_form(client, "/login", {"email": ADMIN_EMAIL, "password": "wrong-wrong-1", "next": "/"})
    assert "邮箱或密码不正确" in r.text
    # An unknown language changes nothing; a foreign target is refused.
    r = post_form(client, "/language", {"language": "xx", "next": "//evil.example/"}, follow_redirects=False)
    assert r.headers["location"] == "/" and client.cookies.get("portal_lang") == "zh"


def test_signed_in_switch_saves_the_preference(client):
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    home = client.get("/t/system/", headers={"Accept-Language": "zh"})
    assert "Roles" in home.text and "角色" not in home.text  # the stored preference (en) wins
    r = post_form(
        client, "/language", {"language": "zh", "next": "/t/system/admin/roles"}, follow_redirects=False
    )
    assert r.status_code == 303
    client.cookies.delete("portal_lang")  # the preference is stored with the account, not only in the cookie
    roles = client.get("/t/system/admin/roles", headers={"Accept-Language": "en"})
    text = text_of(roles.text)
    assert "Platform 的角色" in text and "系统管理" in text and "退出登录" in text
    assert 'value="zh" selected' in client.get("/t/system/account").text
    audit = client.get("/t/system/admin/audit?action=user.update").text
    assert '"language": "zh"' in audit.replace("&#34;", '"')
    # A fresh sign-in elsewhere keeps it.
    logout(client)
    client.cookies.clear()
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert "成员" in client.get("/t/system/admin/members").text


def test_tenant_time_zone_is_validated_and_used_for_times(client):
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    url = f"/t/system/admin/tenants/{SYSTEM_TENANT_ID}"
    assert 'value="Asia/Shanghai"' in client.get(url).text
    r = post_form(client, url, {"name": "Platform", "is_active": "on", "time_zone": "Mars/Olympus"})
    assert r.status_code == 422 and "Choose a time zone from the list" in r.text
    r = post_form(
        client,
        url,
        {"name": "Platform", "is_active": "on", "time_zone": "Asia/Shanghai"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert 'value="Asia/Shanghai" selected' in client.get(url).text
    page = post_form(client, "/t/system/account/tokens", {"name": "tz check"})
    cells = re.findall(r'<td class="muted">([A-Z][a-z]{2} \d{1,2}, \d{4}, [^<]+)</td>', page.text)
    assert cells, page.text[:2000]
    shown = dt.datetime.strptime(cells[0].replace("\u202f", " "), "%b %d, %Y, %I:%M:%S %p")
    shanghai_now = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(hours=8)
    assert abs(shown - shanghai_now) < dt.timedelta(minutes=5)


def test_python_messages_and_flashes_follow_the_language(client):
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    post_form(client, "/language", {"language": "zh", "next": "/"}, follow_redirects=False)
    r = post_form(client, "/t/system/account", {"display_name": "", "language": "zh"})
    assert r.status_code == 422 and "请输入显示名称。" in r.text  # a parameterised message, its parameter too
    r = post_form(client, "/t/system/admin/tenants", {"slug": "Bad Slug!", "name": ""})
    assert "使用 1–63 个小写字母、数字和中间的连字符" in r.text and "请输入名称。" in r.text
    r = post_form(client, "/t/system/account/sign-out-everywhere", {})
    assert "已在所有设备退出：结束了 1 个会话。" in r.text  # the flash on the sign-in page, in Chinese
    # The API answers the same errors as English JSON (messages are strings there).
    api = client.post("/api/v1/tenants", json={"slug": "x", "name": ""})
    assert api.status_code in (401, 403, 422)
    assert api.headers["content-type"].startswith("application/problem+json")


def test_json_answers_carry_messages_and_labels_as_text(client):
    from tests.helpers import api_token

    token = api_token(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    r = client.post(
        "/api/v1/tenants",
        json={"slug": "Bad Slug!", "name": ""},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert errors["slug"].startswith("Use 1–63 lower-case letters") and errors["name"] == "Enter a name."


def test_an_invitation_notification_is_written_in_the_invitees_language(app):
    import sqlalchemy as sa

    from app.access import roles
    from app.audit import Actor
    from app.core.models import Message
    from app.identity import directory, invitations
    from tests.integration.test_record_pages import in_db

    async def work(s):
        actor = Actor(None, "admin@test")
        tenant = await directory.create_tenant(s, actor, "acme", "Acme")
        home = await directory.create_tenant(s, actor, "home", "Home")  # the inbox is per tenant
        member = await roles.get_role(s, tenant.id, "Member")
        for email, language in (("zoe@test.example", "zh"), ("ed@test.example", "en")):
            user = await directory.create_user(s, actor, email, "zoe-password-1", email[:3])
            user.language = language
            await directory.add_member(s, actor, home.id, user, await roles.get_role(s, home.id, "Member"))
            await invitations.invite(s, actor, tenant, email, member)
        await s.flush()
        return [tuple(r) for r in (await s.execute(sa.select(Message.title, Message.body))).all()]

    rows = sorted(in_db(app, work))
    assert rows[0][0] == "Invitation to join Acme" and "invites you to join Acme as Member" in rows[0][1]
    assert rows[1][0] == "邀请您加入 Acme" and "admin@test 邀请您以 Member 角色加入 Acme" in rows[1][1]


def test_record_form_errors_and_flashes_follow_the_language(client, app):
    """A generated form's field errors (a value's shape, a taken unique value) and the flash after the
    save, in Chinese; the entity's label in the flash comes from the manifest's zh label."""
    from app.demo import DEMO_PASSWORD, ensure_demo
    from tests.integration.test_record_pages import in_db

    async def setup(s):
        assert await ensure_demo(s, app.state.settings)

    in_db(app, setup)
    login(client, "alice@demo.test", DEMO_PASSWORD)
    post_form(client, "/language", {"language": "zh", "next": "/"}, follow_redirects=False)
    items = "/t/demo/p/inventory/inventory/items"
    row = {"sku": "SKU-9001", "name": "Torque wrench", "quantity": "lots", "unit": "pcs"}
    r = post_form(client, items, row)
    assert r.status_code == 422 and "请输入整数，例如 42。" in r.text
    assert 'value="Torque wrench"' in r.text  # what was typed stays
    r = post_form(client, items, {**row, "sku": "SKU-1001", "quantity": "3"})
    assert r.status_code == 409 and "已有另一条物品的" in r.text and "SKU-1001" in r.text
    r = post_form(client, items, {**row, "quantity": "3"})
    page = text_of(r.text)
    assert r.status_code == 200 and "已创建物品 Torque wrench" in page, page[:600]
    assert "<h1>物品 Torque wrench</h1>" in r.text and "Item Torque wrench" not in page
