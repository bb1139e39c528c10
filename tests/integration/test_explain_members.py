"""The explain tool answers for members of the tenant only: a tenant admin asking about another tenant's
member and about an email nobody has gets the same 404 on the page and in the API (both backends);
platform admins may still explain anyone."""

from __future__ import annotations

from typing import Any

import pytest

from app.access import roles
from app.audit import Actor
from app.identity import directory
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.helpers import api_token, bearer, login, text_of
from tests.integration.test_record_pages import in_db

PW = "member-password-1"
ACTOR = Actor(None, "test")


@pytest.fixture
def two_tenants(app: Any) -> dict[str, Any]:
    """demo: alice (Admin), bob (Member); other: gus (Member)."""

    async def work(s: Any) -> dict[str, Any]:
        ids: dict[str, Any] = {}
        for slug in ("demo", "other"):
            ids[slug] = (await directory.create_tenant(s, ACTOR, slug, slug.title())).id
        for name, slug, role in (
            ("alice", "demo", "Admin"),
            ("bob", "demo", "Member"),
            ("gus", "other", "Member"),
        ):
            u = await directory.create_user(s, ACTOR, f"{name}@{slug}.test", PW, name.title())
            await directory.add_member(s, ACTOR, ids[slug], u, await roles.get_role(s, ids[slug], role))
            ids[name] = u.id
        return ids

    return in_db(app, work)


def test_explain_refuses_non_members_alike_in_the_api(client, two_tenants):
    h = bearer(api_token(client, "alice@demo.test", PW), "demo")
    ok = client.get(
        "/api/v1/explain", params={"user": "bob@demo.test", "permission": "db.roles.select"}, headers=h
    )
    assert ok.status_code == 200 and ok.json()["user"] == "bob@demo.test"
    by_id = client.get(
        "/api/v1/explain",
        params={"user": str(two_tenants["bob"]), "permission": "db.roles.select"},
        headers=h,
    )
    assert by_id.status_code == 200 and by_id.json()["user"] == "bob@demo.test"
    answers = [
        client.get("/api/v1/explain", params={"user": ref, "permission": "db.roles.select"}, headers=h)
        for ref in (
            "gus@other.test",
            "nobody@other.test",
            str(two_tenants["gus"]),
            "00000000-0000-0000-0000-00000000abcd",
            ADMIN_EMAIL,
        )
    ]
    assert {a.status_code for a in answers} == {404}
    assert len({a.text for a in answers}) == 1, [a.text for a in answers]
    assert answers[0].json()["detail"] == "No member of this tenant has that name, email or id."


def test_explain_page_refuses_non_members_alike_and_platform_admin_may_explain_anyone(client, two_tenants):
    login(client, "alice@demo.test", PW)
    pages = [
        client.get("/t/demo/admin/explain", params={"user": ref, "permission": "db.roles.select"})
        for ref in ("gus@other.test", "nobody@other.test")
    ]
    assert [p.status_code for p in pages] == [404, 404]
    bodies = [
        text_of(p.text).replace(ref, "X")
        for p, ref in zip(pages, ("gus@other.test", "nobody@other.test"), strict=True)
    ]
    assert bodies[0] == bodies[1]
    assert (
        "No member of this tenant has that name, email or id." in bodies[0]
        and "explain-result" not in pages[0].text
    )
    member = client.get(
        "/t/demo/admin/explain", params={"user": "bob@demo.test", "permission": "db.roles.select"}
    )
    assert member.status_code == 200 and "explain-result" in member.text
    client.cookies.clear()

    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    outsider = client.get(
        "/t/demo/admin/explain", params={"user": "gus@other.test", "permission": "db.roles.select"}
    )
    assert (
        outsider.status_code == 200
        and "Gus may not use “View roles of the tenant”: they are not a member of demo."
        in text_of(outsider.text)
    )
    unknown = client.get(
        "/t/demo/admin/explain", params={"user": "nobody@other.test", "permission": "db.roles.select"}
    )
    assert unknown.status_code == 404
