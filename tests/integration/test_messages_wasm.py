"""The notify host function through a real component (tests/fixtures/guests/probe): capability gating,
tenant membership of recipients, link checks, the per-call notification limit, escaping in the inbox."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.access import roles as role_service
from app.audit import Actor
from app.core.models import Message
from app.identity import directory
from tests.helpers import login, text_of
from tests.integration.test_record_pages import in_db
from tests.integration.test_sandbox import install_probes, panel_kind, probe_packages  # noqa: F401 (fixture)

PAGE = "/t/acme/p/probe/probe"
PASSWORD = "member-password-1"
EVIL = "<script>window.__pwned=1</script>"


@pytest.fixture
def world(client: Any, app: Any, probe_packages: dict[str, Path]) -> dict[str, str]:
    """probe enabled in acme and globex, alice in acme, carol in globex; root signed in."""
    install_probes(client, app, probe_packages)

    async def work(s: Any) -> dict[str, str]:
        ids: dict[str, str] = {}
        for name, slug in (("alice", "acme"), ("carol", "globex")):
            tenant = await directory.get_tenant(s, slug)
            user = await directory.create_user(
                s, Actor(None, "test"), f"{name}@corp.test", PASSWORD, name.title()
            )
            await directory.add_member(
                s, Actor(None, "test"), tenant.id, user, await role_service.get_role(s, tenant.id, "Member")
            )
            ids[name] = str(user.id)
        return ids

    return in_db(app, work)  # type: ignore[no-any-return]


def stored(app: Any) -> list[Message]:
    async def work(s: Any) -> list[Message]:
        return list((await s.scalars(sa.select(Message))).all())

    return in_db(app, work)  # type: ignore[no-any-return]


def shown(r: Any) -> str:
    return text_of(r.text).replace("&#39;", "'").replace("&#34;", '"')


def test_notify_from_a_component(client: Any, app: Any, world: dict[str, str]) -> None:
    r = client.get(
        PAGE,
        params={
            "mode": "notify",
            "to": world["alice"],
            "title": f"Stock low {EVIL}",
            "body": f"Reorder {EVIL}",
            "link": "/t/acme/p/probe/probe?mode=hello",
        },
    )
    assert r.status_code == 200 and "notified=1" in shown(r), r.text[:500]
    [row] = stored(app)
    assert (
        row.source == "probe"
        and row.user_id == uuid.UUID(world["alice"])
        and row.title.startswith("Stock low")
    )

    # recipients outside the tenant: carol is in globex only, root in no tenant but system; nothing is sent
    for to in (world["carol"], "me", f"{world['alice']},{world['carol']}", "not-a-uuid"):
        refused = shown(client.get(PAGE, params={"mode": "notify", "to": to}))
        assert "refused: notify: user_ids:" in refused, refused
    assert "refused: notify: link:" in shown(
        client.get(PAGE, params={"mode": "notify", "to": world["alice"], "link": "https://evil.test/"})
    )
    # a plugin without `messages = true` is refused, whatever it asks
    nodb = client.get("/t/acme/p/probe-nodb/probe-nodb", params={"mode": "notify", "to": world["alice"]})
    assert "does not have the 'messages' capability" in shown(nodb), nodb.text[:500]
    assert len(stored(app)) == 1

    # alice sees it under the bell, escaped, with the plugin as source
    login(client, "alice@corp.test", PASSWORD)
    inbox = client.get("/t/acme/messages")
    assert re.search(r'data-unread="1"', inbox.text)
    assert (
        EVIL not in inbox.text
        and "Stock low &lt;script&gt;" in inbox.text
        and "probe ·" in text_of(inbox.text)
    )


def test_notification_limit_per_guest_call(client: Any, app: Any, world: dict[str, str]) -> None:
    login(client, "alice@corp.test", PASSWORD)  # alice is a member: each notify would succeed
    within = client.get(PAGE, params={"mode": "notify-flood", "n": 5})
    assert "notified=5" in shown(within), within.text[:500]
    flood = client.get(PAGE, params={"mode": "notify-flood", "n": 10})
    assert flood.status_code == 502 and panel_kind(flood.text) == "notifications"
    assert len(stored(app)) == 5  # the trapped call's notifications were rolled back with it
