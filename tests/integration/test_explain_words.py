"""The explain page answers in words with role names (both backends, English and Chinese): no Casbin line,
no role id; a denied answer says which roles would grant it and never describes row scopes; the member
and the permission are picked by searching (name or email among the tenant's members; a permission's
words in the reader's language, or its code), with and without script."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from app.access import roles
from app.audit import Actor
from tests.helpers import api_token, bearer, login, text_of
from tests.integration.test_record_pages import in_db
from tests.integration.test_role_matrix import PW, seed_acme, speak

EXPLAIN = "/t/acme/admin/explain"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture
def acme(client: Any, app: Any, tmp_path: Path) -> dict[str, Any]:
    ids = in_db(app, lambda s: seed_acme(s, app.state.settings, tmp_path))
    login(client, "alice@acme.test", PW)
    return ids  # type: ignore[no-any-return]


def answer(client: Any, user: str, permission: str) -> tuple[int, str, str]:
    """(status, the result section's text and HTML) of asking the page."""
    r = client.get(EXPLAIN, params={"user": user, "permission": permission})
    section = (
        r.text.split('id="explain-result"', 1)[1].split("</section>", 1)[0]
        if "explain-result" in r.text
        else ""
    )
    return r.status_code, text_of(section), section


def test_allowed_in_words_with_the_role_and_the_rows(client: Any, acme: dict[str, Any]) -> None:
    status, text, html = answer(client, "carol@acme.test", "db.purchase_order.insert")
    assert status == 200
    assert "Yes" in text
    assert (
        "Carol may create Purchase order records because of the role Buyer (grant db.purchase_order.*)."
        in text
    )
    assert not UUID.search(html) and "role:" not in html and "p, " not in text  # no Casbin line
    assert "Which rows" in text and "All rows of acme — from role Buyer sets no scope" in text
    # A base permission is named by its description.
    _, text, _ = answer(client, "alice@acme.test", "db.roles.select")
    assert "Alice may use “View roles of the tenant” because of the role Admin (grant *)." in text


def test_the_most_specific_grant_is_named(client: Any, app: Any, acme: dict[str, Any]) -> None:
    """Whichever of its lines Casbin meets first, the answer names the role's exact grant."""

    async def work(s: Any) -> None:
        buyer = await roles.get_role(s, acme["acme"], acme["buyer"])
        await roles.grant(s, Actor(None, "test"), buyer, ["db.purchase_order.insert", "db.*"])

    in_db(app, work)
    _, text, _ = answer(client, "carol@acme.test", "db.purchase_order.insert")
    assert "because of the role Buyer (grant db.purchase_order.insert)." in text
    _, text, _ = answer(client, "carol@acme.test", "db.purchase_order.delete")
    assert "because of the role Buyer (grant db.purchase_order.*)." in text  # longer than db.*


def test_denied_names_the_roles_that_would_grant_it_and_no_rows(client: Any, acme: dict[str, Any]) -> None:
    status, text, html = answer(client, "bob@acme.test", "db.purchase_order.insert")
    assert status == 200 and "No" in text
    assert "Bob may not create Purchase order records: their role Member does not grant it." in text
    assert "Roles that would grant it: Buyer (grant db.purchase_order.*) Admin (grant *)" in text
    assert f'href="/t/acme/admin/roles/{acme["buyer"]}"' in html  # the role is a link to its matrix
    assert "Which rows" not in text and "explain-scope" not in html and "rows of" not in text
    # A platform permission: only the system tenant's roles grant it.
    _, text, _ = answer(client, "bob@acme.test", "db.tenants.select")
    assert "it is a platform permission, which only a role of the system tenant can grant" in text
    assert "platform role Admin (grant *)" in text


def test_chinese_answers(client: Any, acme: dict[str, Any]) -> None:
    speak(client, "zh")
    _, text, _ = answer(client, "carol@acme.test", "db.purchase_order.insert")
    assert "Carol 可以创建采购订单记录，因为其角色 Buyer（授权 db.purchase_order.*）。" in text
    assert "acme 的全部行——来自角色 Buyer 未设置范围（默认为全部）。" in text
    _, text, _ = answer(client, "bob@acme.test", "ui.inventory.purchase-approve")
    assert "Bob 不能使用“批准或驳回已提交的采购订单”：其角色 Member 没有授予该权限。" in text
    assert "可以授予该权限的角色：" in text


def test_members_are_found_by_name_and_words_find_permissions(client: Any, acme: dict[str, Any]) -> None:
    status, text, _ = answer(client, "carol", "db.purchase_order.insert")  # a display name, any case
    assert status == 200 and "Carol may create" in text
    r = client.get(EXPLAIN, params={"user": "Sam", "permission": "db.roles.select"})
    assert "Several members are called Sam" in text_of(r.text) and "explain-result" not in r.text
    # Part of a name: the matches to pick from, each a link asking again (works without script).
    r = client.get(EXPLAIN, params={"user": "car", "permission": "db.roles.select"})
    assert r.status_code == 200 and "Pick a member from the list below." in text_of(r.text)
    assert "/admin/explain?user=carol%40acme.test&amp;permission=db.roles.select" in r.text
    assert "carla@globex.test" not in r.text  # members of this tenant only
    # Words instead of a code.
    r = client.get(EXPLAIN, params={"user": "carol@acme.test", "permission": "purchase order"})
    assert "Pick a permission from the list below" in text_of(r.text) and "explain-result" not in r.text
    assert 'data-value="db.purchase_order.insert"' in r.text and "Create Purchase order records" in r.text
    r = client.get(EXPLAIN, params={"user": "carol@acme.test", "permission": "zzz qqq"})
    assert "No permission matches these words" in text_of(r.text)


def test_the_pickers_search_as_you_type(client: Any, acme: dict[str, Any]) -> None:
    users = client.get(f"{EXPLAIN}/choices/user", params={"user": "CAR", "permission": "db.roles.select"})
    assert users.status_code == 200
    assert 'data-value="carol@acme.test"' in users.text and "Carol" in users.text and "Buyer" in users.text
    assert "globex" not in users.text
    everyone = client.get(f"{EXPLAIN}/choices/user", params={"user": ""}).text
    assert {"alice@acme.test", "bob@acme.test", "carol@acme.test"} <= set(
        re.findall(r'data-value="([^"]+)"', everyone)
    )
    perms = client.get(f"{EXPLAIN}/choices/permission", params={"permission": "approve purchase"}).text
    assert re.findall(r'data-value="([^"]+)"', perms) == ["ui.inventory.purchase-approve"]
    assert "No member matches." in client.get(f"{EXPLAIN}/choices/user", params={"user": "nobody"}).text
    assert client.get(f"{EXPLAIN}/choices/other").status_code == 404
    speak(client, "zh")
    zh = client.get(f"{EXPLAIN}/choices/permission", params={"permission": "创建 采购订单"}).text
    assert re.findall(r'data-value="([^"]+)"', zh) == [
        "db.purchase_order.insert",
        "db.purchase_order_line.insert",
    ]
    assert "创建采购订单记录" in zh
    # The pickers need the explain permission, like the page.
    client.cookies.clear()
    login(client, "bob@acme.test", PW)
    assert client.get(f"{EXPLAIN}/choices/user", params={"user": "a"}).status_code == 403


def test_the_api_answers_in_words_too(client: Any, acme: dict[str, Any]) -> None:
    h = bearer(api_token(client, "alice@acme.test", PW), "acme")
    denied = client.get(
        "/api/v1/explain", params={"user": "bob", "permission": "db.purchase_order.insert"}, headers=h
    )
    body = denied.json()
    assert body["allowed"] is False and body["scope"] is None
    assert body["reason"] == "Bob may not create Purchase order records: their role Member does not grant it."
    assert body["would_grant"] == [
        {"role": "Buyer", "grant": "db.purchase_order.*", "platform": False},
        {"role": "Admin", "grant": "*", "platform": False},
    ]
