"""A tenant never loses its last active Admin: demote and remove are refused through the page and the
API, whoever asks, and two admins demoting each other at once leave one Admin (both backends)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
import sqlalchemy as sa

from app.access import roles
from app.audit import Actor
from app.core.db import make_alchemy_config
from app.core.errors import Conflict
from app.core.models import Membership, Role, User
from app.identity import directory
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.helpers import api_token, bearer, login, logout, post_form, text_of
from tests.integration.test_record_pages import in_db

PW = "member-password-1"
ACTOR = Actor(None, "test")
REFUSAL = "Demo Company needs at least one Admin; make someone else Admin first."


@pytest.fixture
def demo(app: Any) -> dict[str, Any]:
    """Tenant demo ("Demo Company"): alice (Admin), bob (Member)."""

    async def work(s: Any) -> dict[str, Any]:
        t = await directory.create_tenant(s, ACTOR, "demo", "Demo Company")
        ids: dict[str, Any] = {"demo": t.id}
        for name, role in (("alice", "Admin"), ("bob", "Member")):
            u = await directory.create_user(s, ACTOR, f"{name}@demo.test", PW, name.title())
            await directory.add_member(s, ACTOR, t.id, u, await roles.get_role(s, t.id, role))
            ids[name] = u.id
        return ids

    return in_db(app, work)


def admins(app: Any, tenant_id: Any) -> list[str]:
    async def work(s: Any) -> list[str]:
        rows = await s.scalars(
            sa.select(User.email)
            .join(Membership, Membership.user_id == User.id)
            .join(Role, Role.id == Membership.role_id)
            .where(Membership.tenant_id == tenant_id, Role.builtin == "admin")
            .order_by(User.email)
        )
        return list(rows.all())

    return in_db(app, work)


def test_last_admin_cannot_be_demoted_or_removed_through_the_page(client, app, demo):
    login(client, "alice@demo.test", PW)
    alice = demo["alice"]
    demoted = post_form(
        client, f"/t/demo/admin/members/{alice}/role", {"role": "Member"}, follow_redirects=False
    )
    assert demoted.status_code == 409 and REFUSAL in text_of(demoted.text)
    assert "Members of Demo Company" in demoted.text  # the members page again, not an error page
    removed = post_form(client, f"/t/demo/admin/members/{alice}/remove", {}, follow_redirects=False)
    assert removed.status_code == 409 and REFUSAL in text_of(removed.text)
    assert admins(app, demo["demo"]) == ["alice@demo.test"]
    logout(client)

    # Nobody else may either, not even the platform admin.
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    by_root = post_form(client, f"/t/demo/admin/members/{alice}/remove", {}, follow_redirects=False)
    assert by_root.status_code == 409 and REFUSAL in text_of(by_root.text)
    # With a second Admin, the first may step down; the new last one is protected in turn.
    assert (
        post_form(
            client, f"/t/demo/admin/members/{demo['bob']}/role", {"role": "Admin"}, follow_redirects=False
        ).status_code
        == 303
    )
    assert (
        post_form(
            client, f"/t/demo/admin/members/{alice}/role", {"role": "Member"}, follow_redirects=False
        ).status_code
        == 303
    )
    again = post_form(client, f"/t/demo/admin/members/{demo['bob']}/remove", {}, follow_redirects=False)
    assert again.status_code == 409 and REFUSAL in text_of(again.text)
    assert admins(app, demo["demo"]) == ["bob@demo.test"]
    audit = text_of(client.get("/t/demo/admin/audit").text)
    assert "Changed role of alice@demo.test to Member" in audit and "Removed bob" not in audit


def test_last_admin_cannot_be_demoted_or_removed_through_the_api(client, app, demo):
    h = bearer(api_token(client, "alice@demo.test", PW), "demo")
    alice = demo["alice"]
    demoted = client.patch(f"/api/v1/members/{alice}", json={"role": "Member"}, headers=h)
    assert demoted.status_code == 409 and demoted.json()["detail"] == REFUSAL
    removed = client.delete(f"/api/v1/members/{alice}", headers=h)
    assert removed.status_code == 409 and removed.json()["detail"] == REFUSAL
    assert client.get(f"/api/v1/members/{alice}", headers=h).json()["role"] == "Admin"
    # Another member may still be changed and removed; Admin to Admin is no demotion.
    assert client.patch(f"/api/v1/members/{alice}", json={"role": "Admin"}, headers=h).status_code == 200
    assert client.delete(f"/api/v1/members/{demo['bob']}", headers=h).status_code == 204
    assert admins(app, demo["demo"]) == ["alice@demo.test"]


def test_an_inactive_admin_does_not_count(client, app, demo):
    async def work(s: Any) -> None:
        await directory.change_member_role(
            s, ACTOR, demo["demo"], demo["bob"], await roles.get_role(s, demo["demo"], "Admin")
        )
        (await s.get(User, demo["bob"])).is_active = False

    in_db(app, work)

    async def demote_alice(s: Any) -> None:
        await directory.change_member_role(
            s, ACTOR, demo["demo"], demo["alice"], await roles.get_role(s, demo["demo"], "Member")
        )

    with pytest.raises(Conflict, match=re.escape(REFUSAL)):
        in_db(app, demote_alice)


def test_two_admins_demoting_each_other_at_once_leave_one(app, demo):
    """Each transaction demotes the other admin; the second waits for the first's lock (PostgreSQL) or
    write lock (SQLite) and is then refused, whichever order they run in."""

    async def promote(s: Any) -> None:
        await directory.change_member_role(
            s, ACTOR, demo["demo"], demo["bob"], await roles.get_role(s, demo["demo"], "Admin")
        )

    in_db(app, promote)

    async def go() -> list[Any]:
        config = make_alchemy_config(app.state.settings)
        first_locked = asyncio.Event()

        async def demote(who: str, *, hold: bool) -> Any:
            async with config.get_session() as s:
                try:
                    member = await roles.get_role(s, demo["demo"], "Member")
                    await directory.change_member_role(s, ACTOR, demo["demo"], demo[who], member)
                    if hold:  # keep the transaction open while the other one tries
                        first_locked.set()
                        await asyncio.sleep(0.5)
                    await s.commit()
                    return who
                except Exception as exc:
                    await s.rollback()
                    return exc
                finally:
                    first_locked.set()

        async def second() -> Any:
            await first_locked.wait()
            return await demote("alice", hold=False)

        try:
            return list(await asyncio.gather(demote("bob", hold=True), second()))
        finally:
            await config.get_engine().dispose()

    first, second = asyncio.run(go())
    assert first == "bob"
    # PostgreSQL: refused with the message once the first commits. SQLite: the second writer either
    # waits and is refused, or fails to write from its overtaken snapshot; never both succeed.
    assert isinstance(second, Exception), second
    if app.state.settings.is_sqlite is False:
        assert isinstance(second, Conflict) and str(second) == REFUSAL
    assert admins(app, demo["demo"]) == ["alice@demo.test"]


def test_the_last_admin_cannot_be_deactivated_from_the_cli(app, demo, settings_env):
    from click.testing import CliRunner

    from app.cli import main

    runner = CliRunner()
    refused = runner.invoke(main, ["user", "deactivate", "alice@demo.test"], env=settings_env)
    assert refused.exit_code != 0 and REFUSAL in refused.output
    assert runner.invoke(main, ["user", "deactivate", "bob@demo.test"], env=settings_env).exit_code == 0

    async def state(s: Any) -> dict[str, bool]:
        return dict(
            (
                await s.execute(sa.select(User.email, User.is_active).where(User.email.like("%@demo.test")))
            ).all()
        )

    assert in_db(app, state) == {"alice@demo.test": True, "bob@demo.test": False}
    # With bob back and made Admin, alice may go.
    assert (
        runner.invoke(main, ["user", "deactivate", "bob@demo.test", "--activate"], env=settings_env).exit_code
        == 0
    )

    async def promote(s: Any) -> None:
        await directory.change_member_role(
            s, ACTOR, demo["demo"], demo["bob"], await roles.get_role(s, demo["demo"], "Admin")
        )

    in_db(app, promote)
    done = runner.invoke(main, ["user", "deactivate", "alice@demo.test"], env=settings_env)
    assert done.exit_code == 0, done.output
    assert in_db(app, state) == {"alice@demo.test": False, "bob@demo.test": True}
