"""The message base module: the notify service (membership, caps, links, isolation), the inbox page with
its header bell, HTMX mark-read, the JSON API and escaping of hostile text."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from app import messages
from app.access import roles as role_service
from app.audit import Actor
from app.core.errors import NotFound, ValidationFailed
from app.core.models import AuditEntry
from app.identity import directory
from app.plugins.modules import available_modules
from tests.helpers import api_token, bearer, login, post_form, text_of
from tests.integration.test_record_pages import in_db

PASSWORD = "member-password-1"
HX = {"HX-Request": "true"}
SYSTEM = Actor(None, "system")


def make_world(app: Any) -> dict[str, uuid.UUID]:
    """acme: alice, bob; globex: alice, carol. Returns ids by name."""

    async def work(s: Any) -> dict[str, uuid.UUID]:
        ids: dict[str, uuid.UUID] = {}
        for slug in ("acme", "globex"):
            ids[slug] = (await directory.create_tenant(s, SYSTEM, slug, slug.title())).id
        for name in ("alice", "bob", "carol"):
            ids[name] = (
                await directory.create_user(s, SYSTEM, f"{name}@corp.test", PASSWORD, name.title())
            ).id
        for slug, names in (("acme", ("alice", "bob")), ("globex", ("alice", "carol"))):
            role = await role_service.get_role(s, ids[slug], "Member")
            for name in names:
                user = await directory.find_user(s, f"{name}@corp.test")
                await directory.add_member(s, SYSTEM, ids[slug], user, role)  # type: ignore[arg-type]
        return ids

    return in_db(app, work)  # type: ignore[no-any-return]


def send(
    app: Any,
    tenant: uuid.UUID,
    users: list[Any],
    title: str = "Hello",
    body: str = "",
    link: str | None = None,
    source: str = "workflow",
) -> list[str]:
    async def work(s: Any) -> list[str]:
        rows = await messages.notify(s, tenant, users, title, body, link, source=source, actor=SYSTEM)
        return [str(r.id) for r in rows]

    return in_db(app, work)  # type: ignore[no-any-return]


def refused(app: Any, tenant: uuid.UUID, users: list[Any], **kw: Any) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as info:
        send(app, tenant, users, **kw)
    return info.value.errors


def test_message_is_a_registered_base_module() -> None:
    assert "message" in available_modules()


def test_notify_checks_membership_caps_and_links(app: Any) -> None:
    w = make_world(app)
    # carol is not a member of acme: nothing is sent, and the error names her
    errors = refused(app, w["acme"], [w["bob"], w["carol"]])
    assert str(w["carol"]) in errors["user_ids"] and str(w["bob"]) not in errors["user_ids"]
    assert "not a user id" in refused(app, w["acme"], ["nope"])["user_ids"]
    assert "at least one" in refused(app, w["acme"], [])["user_ids"]
    many = [uuid.uuid4() for _ in range(messages.MAX_RECIPIENTS + 1)]
    assert f"at most {messages.MAX_RECIPIENTS}" in refused(app, w["acme"], many)["user_ids"]
    assert "required" in refused(app, w["acme"], [w["bob"]], title="  ")["title"]
    assert "at most 200" in refused(app, w["acme"], [w["bob"]], title="x" * 201)["title"]
    assert "at most 4000" in refused(app, w["acme"], [w["bob"]], body="x" * 4001)["body"]
    for evil in (
        "https://evil.test/",
        "//evil.test/x",
        "javascript:alert(1)",
        "/\\evil.test",
        "relative/path",
        "/ok\r\nSet-Cookie: x=1",
    ):
        assert "link" in refused(app, w["acme"], [w["bob"]], link=evil), evil
    # duplicates collapse; the audit trail has one row for the call, saying who sent to how many
    ids = send(app, w["acme"], [w["alice"], w["bob"], str(w["bob"])], link="/t/acme/messages?x=1")
    assert len(ids) == 2

    async def check(s: Any) -> None:
        audits = (await s.scalars(sa.select(AuditEntry).where(AuditEntry.action == "message.notify"))).all()
        assert len(audits) == 1 and audits[0].after == {"source": "workflow", "recipients": 2}
        assert audits[0].tenant_id == w["acme"] and audits[0].actor_email == "system"

    in_db(app, check)


def test_unread_counts_mark_read_and_isolation(app: Any) -> None:
    w = make_world(app)
    acme_ids = send(app, w["acme"], [w["alice"], w["bob"]], title="for acme")
    send(app, w["acme"], [w["alice"]], title="second")
    send(app, w["globex"], [w["alice"], w["carol"]], title="for globex")

    async def check(s: Any) -> None:
        assert await messages.unread_count(s, w["acme"], w["alice"]) == 2
        assert await messages.unread_count(s, w["acme"], w["bob"]) == 1
        assert await messages.unread_count(s, w["globex"], w["alice"]) == 1
        inbox = await messages.list_for(s, w["globex"], w["alice"])
        assert [m.title for m in inbox.rows] == ["for globex"]  # tenant A's messages never show in tenant B
        # bob cannot read or mark alice's message, nor alice a message of acme through globex
        alice_msg = next(
            m for m in (await messages.list_for(s, w["acme"], w["alice"])).rows if m.title == "for acme"
        )
        with pytest.raises(NotFound):
            await messages.mark_read(s, w["acme"], w["bob"], alice_msg.id)
        with pytest.raises(NotFound):
            await messages.mark_read(s, w["globex"], w["alice"], alice_msg.id)
        await messages.mark_read(s, w["acme"], w["alice"], alice_msg.id)
        assert await messages.unread_count(s, w["acme"], w["alice"]) == 1
        listed = await messages.list_for(s, w["acme"], w["alice"])
        assert [m.title for m in listed.rows] == ["second", "for acme"]  # unread first
        assert listed.total == 2 and listed.unread == 1
        only = await messages.list_for(s, w["acme"], w["alice"], unread_only=True)
        assert [m.title for m in only.rows] == ["second"] and only.total == 1
        assert await messages.mark_all_read(s, w["acme"], w["alice"]) == 1
        assert await messages.unread_count(s, w["acme"], w["alice"]) == 0
        assert await messages.unread_count(s, w["acme"], w["bob"]) == 1  # bob's copy untouched
        assert await messages.unread_count(s, w["globex"], w["alice"]) == 1

    in_db(app, check)
    assert len(acme_ids) == 2


def bell(html: str) -> int:
    match = re.search(r'id="message-bell"[^>]*>.*?(?:data-unread="(\d+)"|</a>)', html, re.S)
    assert match, "the header has a message bell"
    return int(match.group(1) or 0)


def test_inbox_page_bell_htmx_mark_read_and_escaping(client: Any, app: Any) -> None:
    w = make_world(app)
    evil = "<script>window.__pwned=1</script>"
    send(app, w["acme"], [w["alice"]], title=f"Order {evil}", body=f"body {evil}", link="/t/acme/account")
    for i in range(3):
        send(app, w["acme"], [w["alice"]], title=f"note {i}")
    send(app, w["globex"], [w["alice"]], title="globex only")
    login(client, "alice@corp.test", PASSWORD)

    home = client.get("/t/acme/account")
    assert home.status_code == 200 and bell(home.text) == 4
    assert bell(client.get("/t/globex/account").text) == 1

    r = client.get("/t/acme/messages")
    assert r.status_code == 200 and "<script>window.__pwned" not in r.text
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in r.text
    assert "globex only" not in r.text
    ids = re.findall(r'data-message="([0-9a-f-]+)"', r.text)
    assert len(ids) == 4
    evil_id = re.search(r'data-message="([0-9a-f-]+)">\s*<strong class="title">Order', r.text).group(1)  # type: ignore[union-attr]
    ids.remove(evil_id)

    # paging state lives in the URL; the fragment answers HTMX
    page2 = client.get("/t/acme/messages", params={"size": 10, "page": 1, "unread": 1}, headers=HX)
    assert "<html" not in page2.text and len(re.findall(r'data-message="', page2.text)) == 4
    assert page2.headers.get("vary") == "HX-Request"

    # mark one read by HTMX: the list comes back (unread filter kept) with the bell out of band
    post = post_form(client, f"/t/acme/messages/{ids[1]}/read?unread=1", {}, headers=HX)
    assert post.status_code == 200 and "<html" not in post.text
    assert 'hx-swap-oob="true"' in post.text and bell(post.text) == 3
    assert ids[1] not in post.text  # filtered out: it is read now
    # without the CSRF token the post is refused
    assert client.post(f"/t/acme/messages/{ids[2]}/read", headers=HX).status_code == 403

    # following a link marks read and redirects to the (relative) link
    opened = post_form(client, f"/t/acme/messages/{evil_id}/open", {}, follow_redirects=False)
    assert opened.status_code == 303 and opened.headers["location"] == "/t/acme/account"
    assert bell(client.get("/t/acme/account").text) == 2

    # another user's message is not there for alice; bob sees none of hers
    send(app, w["acme"], [w["bob"]], title="for bob")
    login(client, "bob@corp.test", PASSWORD)
    bob_page = client.get("/t/acme/messages")
    assert "for bob" in bob_page.text and "note 1" not in bob_page.text
    bob_id = re.findall(r'data-message="([0-9a-f-]+)"', bob_page.text)[0]
    login(client, "alice@corp.test", PASSWORD)
    assert post_form(client, f"/t/acme/messages/{bob_id}/read", {}).status_code == 404

    # mark all read (plain form: redirect back with the state)
    done = post_form(client, "/t/acme/messages/read-all?unread=1", {}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/t/acme/messages?size=25&unread=1"
    after = client.get("/t/acme/messages?unread=1")
    assert bell(after.text) == 0 and "No unread messages." in text_of(after.text)


def test_api_lists_and_marks_read(client: Any, app: Any) -> None:
    w = make_world(app)
    send(app, w["acme"], [w["alice"]], title="one", link="/t/acme/")
    send(app, w["acme"], [w["alice"]], title="two")
    send(app, w["globex"], [w["alice"]], title="globex")
    token = api_token(client, "alice@corp.test", PASSWORD)
    h = bearer(token, "acme")
    listed = client.get("/api/v1/messages", headers=h).json()
    assert (
        listed["total"] == 2
        and listed["unread"] == 2
        and {m["title"] for m in listed["items"]} == {"one", "two"}
    )
    one = next(m for m in listed["items"] if m["title"] == "one")
    assert one["link"] == "/t/acme/" and one["read"] is False and one["source"] == "workflow"
    marked = client.post(f"/api/v1/messages/{one['id']}/read", headers=h)
    assert marked.status_code == 200 and marked.json()["read"] is True
    unread = client.get("/api/v1/messages", params={"unread": 1, "size": 10}, headers=h).json()
    assert [m["title"] for m in unread["items"]] == ["two"] and unread["size"] == 10
    # a message of another tenant is not found through this one
    g = client.get("/api/v1/messages", headers=bearer(token, "globex")).json()["items"][0]
    missing = client.post(f"/api/v1/messages/{g['id']}/read", headers=h)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith(
        "application/problem+json"
    )
    assert client.post("/api/v1/messages/read-all", headers=h).json()["marked"] == 1
    assert client.get("/api/v1/messages", headers=h).json()["unread"] == 0
    assert client.get("/api/v1/messages", headers=bearer(token, "globex")).json()["unread"] == 1
    # alice is in two tenants: without X-Tenant the API asks which one
    assert client.get("/api/v1/messages", headers=bearer(token)).status_code == 400
    assert client.get("/api/v1/messages").status_code == 401
    schema = client.get("/api/schema/openapi.json").json()["paths"]
    assert {"/api/v1/messages", "/api/v1/messages/{message_id}/read", "/api/v1/messages/read-all"} <= set(
        schema
    )


def test_paging_runs_across_unread_and_read(app: Any) -> None:
    w = make_world(app)
    for i in range(7):
        send(app, w["acme"], [w["bob"]], title=f"m{i}")

    async def check(s: Any) -> None:
        rows = (await messages.list_for(s, w["acme"], w["bob"], limit=10)).rows
        for m in rows:
            if m.title in {"m0", "m2", "m4", "m6"}:
                await messages.mark_read(s, w["acme"], w["bob"], m.id)
        pages = [
            [m.title for m in (await messages.list_for(s, w["acme"], w["bob"], offset=o, limit=2)).rows]
            for o in (0, 2, 4, 6)
        ]
        # unread newest first (m5, m3, m1), then read newest first (m6, m4, m2, m0)
        assert pages == [["m5", "m3"], ["m1", "m6"], ["m4", "m2"], ["m0"]]
        unread_pages = [
            [
                m.title
                for m in (
                    await messages.list_for(s, w["acme"], w["bob"], unread_only=True, offset=o, limit=2)
                ).rows
            ]
            for o in (0, 2, 4)
        ]
        assert unread_pages == [["m5", "m3"], ["m1"], []]

    in_db(app, check)
