"""Adding a member is an invitation its holder accepts: a tenant admin gets the same answer for an email
with an account and one without (page and API), the invitee accepts or declines at /invitations/{id},
invitations expire and can be revoked; platform admins still add directly (both backends)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
import sqlalchemy as sa

from app.access import roles
from app.audit import Actor
from app.core.models import AuditEntry, EventRecord, Invitation, Membership, Message, User
from app.identity import directory
from app.web.render import decode_flash
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.helpers import api_token, bearer, login, logout, post_form, text_of
from tests.integration.test_record_pages import in_db

PW = "member-password-1"
ACTOR = Actor(None, "test")
KNOWN, UNKNOWN = "gus@other.test", "nobody@other.test"


@pytest.fixture
def world(app: Any) -> dict[str, Any]:
    """demo ("Demo Company"): alice (Admin), bob (Member), role Sales. other: gus (Member)."""

    async def work(s: Any) -> dict[str, Any]:
        ids: dict[str, Any] = {}
        for slug, name in (("demo", "Demo Company"), ("other", "Other")):
            ids[slug] = (await directory.create_tenant(s, ACTOR, slug, name)).id
        await roles.create_role(s, ACTOR, ids["demo"], "Sales")
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


def query(app: Any, stmt: Any) -> list[Any]:
    async def work(s: Any) -> list[Any]:
        return list((await s.execute(stmt)).all())

    return in_db(app, work)


def flash_of(response: Any) -> str:
    """`level|message` of the flash the response sets (its English text)."""
    found = decode_flash(response.cookies.get("portal_flash"))
    return f"{found[0]}|{found[1]}" if found else ""


def invitation_id(app: Any, email: str) -> str:
    return str(
        query(
            app,
            sa.select(Invitation.id).where(Invitation.email == email).order_by(Invitation.created_at.desc()),
        )[0][0]
    )


def test_known_and_unknown_emails_get_the_same_answer_on_the_page(client, app, world):
    login(client, "alice@demo.test", PW)
    answers = {}
    for email in (KNOWN, UNKNOWN):
        r = post_form(
            client,
            "/t/demo/admin/members",
            {
                "email": email,
                "role": "Sales",
                "display_name": "New",
                "password": "initial-pass-42",
                "manager": "bob@demo.test",
                "unit": "north",
            },
            follow_redirects=False,
        )
        answers[email] = (r.status_code, r.headers["location"], flash_of(r).replace(email, "X"))
    assert (
        answers[KNOWN] == answers[UNKNOWN] == (303, "/t/demo/admin/members", "success|Invitation sent to X")
    )
    page = client.get("/t/demo/admin/members")
    pending = page.text[
        page.text.index('id="invitations"') : page.text.index("</table>", page.text.index('id="invitations"'))
    ]
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td>", pending)
    assert sorted(rows) == [(KNOWN, "Sales"), (UNKNOWN, "Sales")]
    # Refusals read alike too: a weak password, with or without an account behind the email...
    weak = [
        post_form(client, "/t/demo/admin/members", {"email": e, "password": "short"})
        for e in ("a@x.test", "bob@demo.test")
    ]
    assert [w.status_code for w in weak] == [422, 422]
    assert len({re.sub(r'value="[^"]*"', "", w.text) for w in weak}) == 1
    # ...and a current member or a pending invitee is "already a member or invited".
    for email in ("bob@demo.test", KNOWN, UNKNOWN):
        again = post_form(client, "/t/demo/admin/members", {"email": email, "role": "Member"})
        assert (
            again.status_code == 422
            and f"{email} is already a member of this tenant or invited." in text_of(again.text)
        )

    # Nobody joined; gus got the invitation in his own tenant's inbox, and the account was created for
    # the unknown email (as before: the admin may create accounts and set a password).
    demo_members = {
        e
        for (e,) in query(
            app,
            sa.select(User.email)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.tenant_id == world["demo"]),
        )
    }
    assert demo_members == {"alice@demo.test", "bob@demo.test"}
    inbox = query(
        app, sa.select(Message.tenant_id, Message.title, Message.link).where(Message.user_id == world["gus"])
    )
    assert inbox == [
        (world["other"], "Invitation to join Demo Company", f"/invitations/{invitation_id(app, KNOWN)}")
    ]
    assert query(app, sa.select(User.id).where(User.email == UNKNOWN))
    # The tenant's audit log reads alike for both (the new account is audited platform-wide)...
    demo_log = query(
        app,
        sa.select(AuditEntry.action, AuditEntry.summary).where(
            AuditEntry.tenant_id == world["demo"], AuditEntry.action.like("%invite%")
        ),
    )
    assert sorted(demo_log) == [
        ("member.invite", f"Invited {KNOWN} as Sales"),
        ("member.invite", f"Invited {UNKNOWN} as Sales"),
    ]
    assert not query(
        app,
        sa.select(AuditEntry.id).where(
            AuditEntry.tenant_id == world["demo"],
            AuditEntry.summary.like(f"%{UNKNOWN}%"),
            AuditEntry.action != "member.invite",
        ),
    )
    # ...and the invitee's other tenant learns nothing from its audit log.
    assert not query(
        app,
        sa.select(AuditEntry.action).where(
            AuditEntry.tenant_id == world["other"], AuditEntry.action.like("message%")
        ),
    )


def test_known_and_unknown_emails_get_the_same_answer_in_the_api(client, app, world):
    h = bearer(api_token(client, "alice@demo.test", PW), "demo")
    bodies = {}
    for email in (KNOWN, UNKNOWN, "nopass@other.test"):
        r = client.post(
            "/api/v1/members", json={"email": email, "role": "Sales", "manager": "bob@demo.test"}, headers=h
        )
        assert r.status_code == 202, r.text
        inv = r.json()["invitation"]
        assert inv["email"] == email and inv["state"] == "pending"
        bodies[email] = {
            **r.json(),
            "invitation": {
                k: v for k, v in inv.items() if k not in ("id", "email", "created_at", "expires_at")
            },
        }
    assert bodies[KNOWN] == bodies[UNKNOWN] == bodies["nopass@other.test"]
    assert "created_account" not in r.text
    listed = client.get("/api/v1/invitations", headers=h).json()
    assert {i["email"] for i in listed["items"]} == {KNOWN, UNKNOWN, "nopass@other.test"}
    # Without a password no account is made; the invitation waits for one with that email.
    assert not query(app, sa.select(User.id).where(User.email == "nopass@other.test"))
    assert client.get(f"/api/v1/members/{world['gus']}", headers=h).status_code == 404


def test_invitee_accepts_and_joins_with_the_chosen_role_manager_and_unit(client, app, world):
    h = bearer(api_token(client, "alice@demo.test", PW), "demo")
    assert (
        client.post(
            "/api/v1/members",
            json={"email": KNOWN, "role": "Sales", "manager": "bob@demo.test", "unit": "north"},
            headers=h,
        ).status_code
        == 202
    )
    inv = invitation_id(app, KNOWN)
    login(client, KNOWN, PW)
    listed = client.get("/invitations")
    assert f"/invitations/{inv}" in listed.text and "Demo Company" in listed.text
    page = client.get(f"/invitations/{inv}")
    assert page.status_code == 200
    assert "invites you to join Demo Company as Sales" in text_of(page.text) and "Accept" in page.text
    accepted = post_form(client, f"/invitations/{inv}/accept", {}, follow_redirects=False)
    assert accepted.status_code == 303 and accepted.headers["location"] == "/t/demo/"
    assert flash_of(accepted) == "success|You joined Demo Company as Sales"
    assert client.get("/t/demo/").status_code == 200
    member = client.get(f"/api/v1/members/{world['gus']}", headers=h).json()
    assert (member["role"], member["manager"], member["unit"]) == ("Sales", "bob@demo.test", "north")
    again = post_form(client, f"/invitations/{inv}/accept", {})
    assert again.status_code == 409 and "no longer open (accepted)" in text_of(again.text)
    actions = {
        a for (a,) in query(app, sa.select(AuditEntry.action).where(AuditEntry.tenant_id == world["demo"]))
    }
    assert {"member.invite", "member.add", "member.invite.accepted"} <= actions
    events = query(
        app,
        sa.select(EventRecord.payload).where(
            EventRecord.type == "user.added", EventRecord.tenant_id == world["demo"]
        ),
    )
    assert any(p["email"] == KNOWN and p["role"] == "Sales" for (p,) in events)


def test_decline_expiry_revoke_and_strangers(client, app, world):
    login(client, "alice@demo.test", PW)
    for email in (KNOWN, "bob@other.test"):
        post_form(client, "/t/demo/admin/members", {"email": email, "role": "Member"}, follow_redirects=False)
    inv = invitation_id(app, KNOWN)
    logout(client)

    # Someone else's invitation is not there.
    login(client, "bob@demo.test", PW)
    assert client.get(f"/invitations/{inv}").status_code == 404
    assert post_form(client, f"/invitations/{inv}/accept", {}).status_code == 404
    logout(client)

    login(client, KNOWN, PW)
    declined = post_form(client, f"/invitations/{inv}/decline", {}, follow_redirects=False)
    assert (
        declined.status_code == 303
        and flash_of(declined) == "success|You declined the invitation to Demo Company"
    )
    assert "is declined" in text_of(client.get(f"/invitations/{inv}").text)
    assert post_form(client, f"/invitations/{inv}/accept", {}).status_code == 409
    assert not query(
        app,
        sa.select(Membership.id).where(
            Membership.tenant_id == world["demo"], Membership.user_id == world["gus"]
        ),
    )
    logout(client)

    # An expired invitation cannot be accepted; the admin sees it marked and may invite again.
    login(client, "alice@demo.test", PW)
    post_form(client, "/t/demo/admin/members", {"email": KNOWN, "role": "Member"}, follow_redirects=False)
    second = invitation_id(app, KNOWN)

    async def expire(s: Any) -> None:
        await s.execute(
            sa.update(Invitation)
            .where(Invitation.id == second)
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
        )

    in_db(app, expire)
    assert "expired" in client.get("/t/demo/admin/members").text
    logout(client)
    login(client, KNOWN, PW)
    assert f"/invitations/{second}" not in client.get("/invitations").text
    late = post_form(client, f"/invitations/{second}/accept", {})
    assert late.status_code == 409 and "has expired" in text_of(late.text)
    logout(client)
    login(client, "alice@demo.test", PW)
    assert (
        post_form(
            client, "/t/demo/admin/members", {"email": KNOWN, "role": "Member"}, follow_redirects=False
        ).status_code
        == 303
    )
    third = invitation_id(app, KNOWN)

    # Revoked through the page: the invitee can no longer accept it.
    revoked = post_form(client, f"/t/demo/admin/invitations/{third}/revoke", {}, follow_redirects=False)
    assert revoked.status_code == 303 and flash_of(revoked) == f"success|Invitation of {KNOWN} revoked"
    assert post_form(client, f"/t/demo/admin/invitations/{third}/revoke", {}).status_code == 404
    logout(client)
    login(client, KNOWN, PW)
    assert post_form(client, f"/invitations/{third}/accept", {}).status_code == 409
    logout(client)
    client.cookies.clear()
    # Through the API too; a tenant may not revoke another tenant's invitation.
    h = bearer(api_token(client, "alice@demo.test", PW), "demo")
    other = invitation_id(app, "bob@other.test")
    gus_h = bearer(api_token(client, KNOWN, PW), "other")
    assert client.delete(f"/api/v1/invitations/{other}", headers=gus_h).status_code == 403
    assert client.delete(f"/api/v1/invitations/{other}", headers=h).status_code == 204
    assert client.get("/api/v1/invitations", headers=h).json()["total"] == 0
    # The invitee's side of the API: list, then decline.
    assert client.post("/api/v1/members", json={"email": KNOWN}, headers=h).status_code == 202
    mine = client.get("/api/v1/me/invitations", headers=gus_h).json()["items"]
    assert [(i["tenant"], i["role"]) for i in mine] == [("demo", "Member")]
    no = client.post(f"/api/v1/me/invitations/{mine[0]['id']}/decline", headers=gus_h)
    assert no.status_code == 200 and no.json()["state"] == "declined"
    assert client.post(f"/api/v1/me/invitations/{mine[0]['id']}/accept", headers=gus_h).status_code == 409
    states = {
        s for (s,) in query(app, sa.select(Invitation.state).where(Invitation.tenant_id == world["demo"]))
    }
    assert states == {"declined", "expired", "revoked"}


def test_a_new_account_lands_on_its_invitation_and_accepts(client, app, world):
    login(client, "alice@demo.test", PW)
    post_form(
        client,
        "/t/demo/admin/members",
        {"email": UNKNOWN, "password": "initial-pass-42", "role": "Member"},
        follow_redirects=False,
    )
    logout(client)
    r = post_form(
        client,
        "/login",
        {"email": UNKNOWN, "password": "initial-pass-42", "next": "/"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    landing = client.get("/", follow_redirects=False)
    assert landing.headers["location"] == "/invitations"
    inv = invitation_id(app, UNKNOWN)
    assert f"/invitations/{inv}" in client.get("/invitations").text
    joined = post_form(client, f"/invitations/{inv}/accept", {}, follow_redirects=False)
    assert joined.status_code == 303 and joined.headers["location"] == "/t/demo/"
    assert client.get("/", follow_redirects=False).headers["location"] == "/t/demo/"


def test_platform_admin_still_adds_directly(client, app, world):
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    r = post_form(client, "/t/demo/admin/members", {"email": KNOWN, "role": "Member"}, follow_redirects=False)
    assert r.status_code == 303 and flash_of(r) == f"success|Added {KNOWN}"
    assert query(
        app,
        sa.select(Membership.id).where(
            Membership.tenant_id == world["demo"], Membership.user_id == world["gus"]
        ),
    )
