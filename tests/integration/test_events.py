"""Event delivery end to end, with real components built from tests/fixtures/guests (probe publishes,
listener subscribes and stores a `heard` row per delivery): subscriptions follow enable/disable,
delivery after commit only, failing subscribers, guest-published events, tenant.created and user.*
events, the event log page and API, and two dispatchers delivering each event once."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.audit import Actor
from app.core.db import SQLITE_WRITE_LOCK, make_alchemy_config
from app.core.models import EventDelivery, EventRecord, PluginFault, PluginTenant
from app.events import EventBus
from app.identity import directory
from app.installs import lifecycle
from app.plugins import runtime
from app.plugins.packages import read_folder
from app.records.service import RecordService
from app.sandbox import Sandbox
from app.sandbox.delivery import Dispatcher
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.guests import built_plugin
from tests.helpers import api_token, bearer, login, post_form, text_of
from tests.integration.test_record_pages import in_db

ACTOR = Actor(None, "tests@portal.test")
HX = {"HX-Request": "true"}


@pytest.fixture(scope="session")
def event_packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("event-guests")
    return {name: built_plugin(name, base) for name in ("probe", "listener")}


async def install(s: Any, app_settings: Any, packages: dict[str, Path]) -> None:
    for name in ("probe", "listener"):
        await lifecycle.upload(s, ACTOR, read_folder(packages[name]), app_settings, install_now=True)


async def setup_tenants(s: Any, app: Any, packages: dict[str, Path]) -> None:
    """probe enabled in acme and globex, listener in acme only."""
    await install(s, app.state.settings, packages)
    for slug in ("acme", "globex"):
        tenant = await directory.create_tenant(s, ACTOR, slug, slug.title())
        await lifecycle.enable(s, ACTOR, tenant.id, "probe")
        if slug == "acme":
            await lifecycle.enable(s, ACTOR, tenant.id, "listener")


@pytest.fixture
def listening(client: Any, app: Any, event_packages: dict[str, Path]) -> Any:
    in_db(app, lambda s: setup_tenants(s, app, event_packages))
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    deliver(client, app)
    return client


def writing(app: Any, work: Any) -> Any:
    """Like in_db, holding SQLite's write lock from the start (as the portal's write requests do), so the
    test's write waits for a delivery in progress instead of failing."""

    async def go() -> Any:
        config = make_alchemy_config(app.state.settings)
        try:
            async with config.get_session() as session:
                if app.state.settings.is_sqlite:
                    await session.connection(execution_options={SQLITE_WRITE_LOCK: True})
                result = await work(session)
                await session.commit()
                return result
        finally:
            await config.get_engine().dispose()

    return asyncio.run(go())


def deliver(client: Any, app: Any) -> None:
    """Wait until every logged event is delivered (on the app's own loop, by its dispatcher)."""
    client.blocking_portal.call(app.state.events.drain)


def add_note(app: Any, slug: str, title: str) -> str:
    async def work(s: Any) -> str:
        tenant = await directory.get_tenant(s, slug)
        ref = await runtime.entity_in_tenant(s, tenant.id, "probe", "probe_note")
        row = await RecordService(s, tenant.id, ACTOR, lambda _p: True).insert(ref, {"title": title})
        return str(row["id"])

    return writing(app, work)  # type: ignore[no-any-return]


def add_notes(app: Any, slug: str, titles: list[str]) -> None:
    async def work(s: Any) -> None:
        tenant = await directory.get_tenant(s, slug)
        ref = await runtime.entity_in_tenant(s, tenant.id, "probe", "probe_note")
        service = RecordService(s, tenant.id, ACTOR, lambda _p: True)
        for title in titles:
            await service.insert(ref, {"title": title})

    writing(app, work)


def heard(app: Any, slug: str) -> list[tuple[str, str]]:
    """(event type, body) of the listener's rows in a tenant, oldest first."""

    async def work(s: Any) -> list[tuple[str, str]]:
        tenant = await directory.get_tenant(s, slug)
        plugin = next(p for p in await runtime.installed(s) if p.id == "listener")
        t = plugin.entities["heard"].table
        rows = await s.execute(
            sa.select(t.c.event_type, t.c.body).where(t.c.tenant_id == tenant.id).order_by(t.c.created_at)
        )
        return [(r[0], r[1]) for r in rows.all()]

    return in_db(app, work)  # type: ignore[no-any-return]


def logged(app: Any, event_type: str | None = None) -> list[tuple[EventRecord, list[EventDelivery]]]:
    async def work(s: Any) -> list[tuple[EventRecord, list[EventDelivery]]]:
        stmt = sa.select(EventRecord).order_by(EventRecord.created_at)
        if event_type:
            stmt = stmt.where(EventRecord.type == event_type)
        out = []
        for e in (await s.scalars(stmt)).all():
            ds = (await s.scalars(sa.select(EventDelivery).where(EventDelivery.event_id == e.id))).all()
            out.append((e, list(ds)))
        return out

    return in_db(app, work)  # type: ignore[no-any-return]


def of_note(app: Any, note_id: str) -> tuple[EventRecord, list[EventDelivery]]:
    found = [(e, d) for e, d in logged(app, "probe.probe_note.created") if e.payload["id"] == note_id]
    assert len(found) == 1, found
    return found[0]


def test_subscription_is_in_force_only_while_enabled(listening: Any, app: Any) -> None:
    first = add_note(app, "acme", "first")
    other = add_note(app, "globex", "other tenant")
    deliver(listening, app)
    got = heard(app, "acme")
    assert [t for t, _ in got] == ["probe.probe_note.created"]
    body = json.loads(got[0][1])
    assert body["id"] == first and body["record"]["title"] == "first" and body["actor"] == ACTOR.email
    assert body["tenant_id"] == str(in_db(app, lambda s: directory.get_tenant(s, "acme")).id)
    event, deliveries = of_note(app, first)
    assert event.status == "delivered" and event.source == "probe" and event.attempts == 1
    assert [(d.plugin_id, d.handler, d.status) for d in deliveries] == [("listener", "handle-event", "ok")]
    assert deliveries[0].duration_ms > 0
    # globex has no subscriber: logged as such, never delivered, and nothing crossed tenants.
    assert of_note(app, other)[0].status == "none" and heard(app, "globex") == []

    assert "In force in Acme" in text_of(listening.get("/t/acme/admin/plugins/listener").text)
    r = post_form(listening, "/t/acme/admin/plugins/listener/disable", {}, follow_redirects=False)
    assert r.status_code == 303, r.text[:300]
    assert "Not in force in Acme" in text_of(listening.get("/t/acme/admin/plugins/listener").text)
    while_off = add_note(app, "acme", "while disabled")
    deliver(listening, app)
    assert len(heard(app, "acme")) == 1
    event, deliveries = of_note(app, while_off)
    assert event.status == "none" and deliveries == []

    r = post_form(listening, "/t/acme/admin/plugins/listener/enable", {}, follow_redirects=False)
    assert r.status_code == 303, r.text[:300]
    add_note(app, "acme", "enabled again")
    deliver(listening, app)
    assert [json.loads(b)["record"]["title"] for _, b in heard(app, "acme")] == ["first", "enabled again"]


def test_a_plugin_disabled_before_delivery_gets_nothing(listening: Any, app: Any) -> None:
    """The subscriber is checked again when the event is handled, not only when it is raised."""

    async def raise_then_disable(s: Any) -> str:
        tenant = await directory.get_tenant(s, "acme")
        ref = await runtime.entity_in_tenant(s, tenant.id, "probe", "probe_note")
        row = await RecordService(s, tenant.id, ACTOR, lambda _p: True).insert(ref, {"title": "raced"})
        await lifecycle.disable(s, ACTOR, tenant.id, "listener")
        return str(row["id"])

    note = in_db(app, raise_then_disable)
    deliver(listening, app)
    event, deliveries = of_note(app, note)
    assert event.status == "none" and deliveries == [] and heard(app, "acme") == []


def test_delivery_happens_after_commit_and_never_after_rollback(listening: Any, app: Any) -> None:
    token = api_token(listening, ADMIN_EMAIL, ADMIN_PASSWORD)

    async def insert_then_fail(s: Any) -> None:
        tenant = await directory.get_tenant(s, "acme")
        ref = await runtime.entity_in_tenant(s, tenant.id, "probe", "probe_note")
        await RecordService(s, tenant.id, ACTOR, lambda _p: True).insert(ref, {"title": "rolled back"})
        assert (
            await s.scalar(
                sa.select(sa.func.count()).select_from(EventRecord).where(EventRecord.status == "pending")
            )
            == 1
        )  # in the outbox, uncommitted
        raise RuntimeError("the change fails after raising its event")

    with pytest.raises(RuntimeError):
        in_db(app, insert_then_fail)
    # A request that fails (here a validation error after nothing was written) logs nothing either.
    bad = listening.post(
        "/api/v1/plugins/probe/probe_note", json={"amount": 3}, headers=bearer(token, "acme")
    )
    assert bad.status_code == 422
    deliver(listening, app)
    assert logged(app, "probe.probe_note.created") == [] and heard(app, "acme") == []

    # Through a real request: the worker that committed delivers right away (no drain needed).
    ok = listening.post(
        "/api/v1/plugins/probe/probe_note", json={"title": "via api"}, headers=bearer(token, "acme")
    )
    assert ok.status_code == 201, ok.text
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not heard(app, "acme"):
        time.sleep(0.05)
    assert [json.loads(b)["record"]["title"] for _, b in heard(app, "acme")] == ["via api"]
    event, deliveries = of_note(app, ok.json()["id"])
    assert event.actor == ADMIN_EMAIL and event.status == "delivered" and len(deliveries) == 1


def test_failing_subscribers_never_fail_the_request_and_count_as_faults(listening: Any, app: Any) -> None:
    token = api_token(listening, ADMIN_EMAIL, ADMIN_PASSWORD)
    started = time.perf_counter()
    r = listening.post(
        "/api/v1/plugins/probe/probe_note", json={"title": "loop"}, headers=bearer(token, "acme")
    )
    assert r.status_code == 201, r.text
    assert time.perf_counter() - started < 0.8, (
        "the request waited for the subscriber (its deadline is 800 ms)"
    )
    loop_id = r.json()["id"]
    err_id = add_note(app, "acme", "err")
    deliver(listening, app)
    event, deliveries = of_note(app, loop_id)
    assert event.status == "failed"
    assert [(d.plugin_id, d.status) for d in deliveries] == [("listener", "failed")]
    assert "800 ms deadline" in deliveries[0].message
    err_event, err_deliveries = of_note(app, err_id)
    assert err_event.status == "failed" and "the listener refuses" in err_deliveries[0].message
    assert heard(app, "acme") == []  # the failed deliveries' writes were rolled back
    assert [
        n["title"]
        for n in listening.get("/api/v1/plugins/probe/probe_note", headers=bearer(token, "acme")).json()[
            "items"
        ]
    ] in (["loop", "err"], ["err", "loop"])

    async def faults(s: Any) -> list[tuple[str, str, bool]]:
        rows = await s.execute(
            sa.select(PluginFault.call, PluginFault.kind, PluginFault.counts_as_trap)
            .where(PluginFault.plugin_id == "listener")
            .order_by(PluginFault.created_at)
        )
        return [tuple(r) for r in rows.all()]

    assert in_db(app, faults) == [("handle-event", "deadline_ms", True), ("handle-event", "error", False)]

    # The crash policy: more than five traps within a minute switch the listener off in acme.
    for _ in range(5):
        add_note(app, "acme", "loop")
    deliver(listening, app)

    async def state(s: Any) -> tuple[str, str]:
        row = await s.scalar(sa.select(PluginTenant).where(PluginTenant.plugin_id == "listener"))
        return row.status, row.error_message

    status, message = in_db(app, state)
    assert status == "error" and "Auto-disabled after 6 failures" in message
    last = logged(app, "probe.probe_note.created")[-1][1]
    assert "switched off in this tenant" in last[0].message
    after = add_note(app, "acme", "after the switch-off")
    deliver(listening, app)
    assert of_note(app, after)[0].status == "none"


def test_guest_published_events_are_delivered(listening: Any, app: Any) -> None:
    listening.get("/t/acme/p/probe/probe")
    r = post_form(listening, "/t/acme/p/probe/probe/actions/add", {"title": "from the probe"}, headers=HX)
    assert r.status_code == 200, r.text[:300]
    deliver(listening, app)
    types = [t for t, _ in heard(app, "acme")]
    assert sorted(types) == ["probe.probe_note.created", "probe.probe_note.flagged"]
    flagged, deliveries = logged(app, "probe.probe_note.flagged")[0]
    assert flagged.source == "probe" and flagged.actor == ADMIN_EMAIL and deliveries[0].status == "ok"

    # The listener publishes from inside its handler: the same outbox, one level deeper.
    echo_of = add_note(app, "acme", "echo")
    deliver(listening, app)
    echoes = logged(app, "listener.heard.echo")
    assert len(echoes) == 1
    echo, echo_deliveries = echoes[0]
    assert (echo.source, echo.depth, echo.payload) == ("listener", 1, {"of": echo_of, "chain": False})
    assert echo.actor == "plugin:listener" and [d.status for d in echo_deliveries] == ["ok"]
    assert [t for t, _ in heard(app, "acme")][-1] == "listener.heard.echo"


def test_handler_chains_stop_at_the_depth_limit(listening: Any, app: Any) -> None:
    from app.events import MAX_DEPTH

    add_note(app, "acme", "chain")
    deliver(listening, app)
    echoes = [e for e, _ in logged(app, "listener.heard.echo")]
    assert sorted(e.depth for e in echoes) == list(range(1, MAX_DEPTH + 2))
    assert [e.depth for e in echoes if e.status == "dropped"] == [MAX_DEPTH + 1]
    assert all(e.status == "delivered" for e in echoes if e.depth <= MAX_DEPTH)


def test_tenant_created_reaches_default_plugins_and_user_events_follow(listening: Any, app: Any) -> None:
    token = api_token(listening, ADMIN_EMAIL, ADMIN_PASSWORD)
    r = listening.patch(
        "/api/v1/admin/plugins/listener",
        json={"enable_for_new_tenants": True},
        headers=bearer(token, "system"),
    )
    assert r.status_code == 200 and r.json()["enable_for_new_tenants"] is True, r.text
    r = listening.post(
        "/api/v1/tenants", json={"slug": "initech", "name": "Initech"}, headers=bearer(token, "system")
    )
    assert r.status_code == 201, r.text
    tenant_id = r.json()["id"]
    deliver(listening, app)
    got = heard(app, "initech")
    assert ("on-tenant-created", tenant_id) in got
    created = next(json.loads(b) for t, b in got if t == "tenant.created")
    assert (
        created["tenant_id"] == tenant_id
        and created["slug"] == "initech"
        and created["plugins"] == ["listener"]
    )
    assert created["actor"] == ADMIN_EMAIL
    created_event, deliveries = logged(app, "tenant.created")[-1]
    assert created_event.payload["slug"] == "initech"
    assert sorted((d.handler, d.status) for d in deliveries) == [
        ("handle-event", "ok"),
        ("on-tenant-created", "ok"),
    ]

    h = bearer(token, "initech")
    r = listening.post(
        "/api/v1/members",
        json={"email": "dana@initech.test", "password": "dana-password-1", "role": "Member"},
        headers=h,
    )
    assert r.status_code == 201, r.text
    user_id = r.json()["id"]
    assert listening.patch(f"/api/v1/members/{user_id}", json={"role": "Admin"}, headers=h).status_code == 200
    # Initech's only Admin cannot leave (a refused change raises no event); once erin is Admin too, she can.
    assert listening.delete(f"/api/v1/members/{user_id}", headers=h).status_code == 409
    assert (
        listening.patch(f"/api/v1/members/{user_id}", json={"role": "Member"}, headers=h).status_code == 409
    )
    assert (
        listening.post(
            "/api/v1/members",
            json={"email": "erin@initech.test", "password": "erin-password-1", "role": "Admin"},
            headers=h,
        ).status_code
        == 201
    )
    assert listening.delete(f"/api/v1/members/{user_id}", headers=h).status_code == 204
    deliver(listening, app)
    users = [
        (t, json.loads(b))
        for t, b in heard(app, "initech")
        if t.startswith("user.") and json.loads(b)["user_id"] == user_id
    ]
    assert [t for t, _ in users] == ["user.created", "user.added", "user.role_changed", "user.removed"]
    for _, body in users:
        assert body["user_id"] == user_id and body["tenant_id"] == tenant_id and body["actor"] == ADMIN_EMAIL
    assert users[1][1]["role"] == "Member"
    assert (users[2][1]["old_role"], users[2][1]["role"]) == ("Member", "Admin")
    # acme's listener heard none of initech's events.
    assert not [t for t, _ in heard(app, "acme") if t.startswith(("user.", "tenant."))]

    # The toggle on the plugin page turns it off again; a tenant created now gets no listener.
    login(listening, ADMIN_EMAIL, ADMIN_PASSWORD)
    page = listening.get("/t/system/admin/plugins/listener")
    assert "enabled by default" in text_of(page.text)
    r = post_form(
        listening, "/t/system/admin/plugins/listener/new-tenants", {"enable": "off"}, follow_redirects=False
    )
    assert r.status_code == 303
    r = listening.post(
        "/api/v1/tenants", json={"slug": "hooli", "name": "Hooli"}, headers=bearer(token, "system")
    )
    deliver(listening, app)
    assert logged(app, "tenant.created")[-1][0].status == "none"
    states = listening.get("/api/v1/admin/plugins/listener", headers=bearer(token, "hooli")).json()
    assert states["tenant_state"] is None and states["enable_for_new_tenants"] is False


def test_event_log_page_filters_and_api(listening: Any, app: Any) -> None:
    add_note(app, "acme", "<script>window.__pwned=1</script>")
    add_note(app, "acme", "err")
    add_note(app, "globex", "globex only")
    deliver(listening, app)
    base = "/t/acme/admin/events"
    page = listening.get(base)
    assert page.status_code == 200 and "<html" in page.text and "Event log" in text_of(page.text)
    assert "<script>window.__pwned" not in page.text and "__pwned" in page.text  # escaped, still shown
    assert "globex only" not in page.text  # acme's admins see acme's events only

    def types_of(html: str) -> list[str]:
        return re.findall(r"<td><code>([a-z0-9_.-]+)</code>", html)

    partial = listening.get(base, params={"type": "probe."}, headers=HX)
    assert "<html" not in partial.text
    assert types_of(partial.text) == ["probe.probe_note.created"] * 2
    # `*` is one segment: tenant.created (two segments) does not match *.*.created.
    pattern = listening.get(base, params={"type": "*.*.created"}, headers=HX)
    assert set(types_of(pattern.text)) == {"probe.probe_note.created", "listener.heard.created"}
    failed = listening.get(base, params={"status": "failed"}, headers=HX)
    assert types_of(failed.text) == ["probe.probe_note.created"] and "the listener refuses" in failed.text
    assert types_of(listening.get(base, params={"source": "base"}, headers=HX).text) == ["tenant.created"]
    assert types_of(listening.get(base, params={"source": "listener"}, headers=HX).text) == [
        "listener.heard.created"
    ]
    assert types_of(listening.get(base, params={"until": "2000-01-01"}, headers=HX).text) == []
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert len(types_of(listening.get(base, params={"since": today, "until": today}, headers=HX).text)) == 4
    bad = listening.get(base, params={"since": "yesterday", "type": "user.ad*"}, headers=HX)
    assert bad.status_code == 422 and "not a date" in bad.text and "whole segment" in bad.text

    # Paging: the filters stay in the page links (and the same URL gives the full page).
    add_notes(app, "acme", [f"n{i}" for i in range(10)])
    first = listening.get(base, params={"size": "10", "type": "probe."}, headers=HX)
    assert len(types_of(first.text)) == 10 and "page 1 of 2" in first.text
    next_link = re.search(r'hx-get="([^"]+)"[^>]*>Next', first.text)
    assert next_link and "type=probe." in next_link.group(1).replace("&amp;", "&")
    second = listening.get(next_link.group(1).replace("&amp;", "&"), headers=HX)
    assert len(types_of(second.text)) == 2 and "page 2 of 2" in second.text
    assert "<html" in listening.get(next_link.group(1).replace("&amp;", "&")).text

    # The platform view (system tenant) shows every tenant's events, with the tenant column.
    everything = listening.get("/t/system/admin/events", params={"type": "probe.", "size": "50"})
    assert "globex only" in everything.text and "<th>Tenant</th>" in everything.text

    token = api_token(listening, ADMIN_EMAIL, ADMIN_PASSWORD)
    api = listening.get(
        "/api/v1/events",
        params={"type": "probe.probe_note.*", "status": "failed"},
        headers=bearer(token, "acme"),
    )
    assert api.status_code == 200, api.text
    items = api.json()["items"]
    assert len(items) == 1 and items[0]["payload"]["record"]["title"] == "err"
    assert (
        items[0]["deliveries"][0]["plugin"] == "listener" and items[0]["deliveries"][0]["status"] == "failed"
    )
    one = listening.get(f"/api/v1/events/{items[0]['id']}", headers=bearer(token, "acme"))
    assert one.status_code == 200 and one.json()["id"] == items[0]["id"]
    assert (
        listening.get(f"/api/v1/events/{items[0]['id']}", headers=bearer(token, "globex")).status_code == 404
    )
    problem = listening.get("/api/v1/events", params={"status": "lost"}, headers=bearer(token, "acme"))
    assert problem.status_code == 400 and problem.headers["content-type"].startswith(
        "application/problem+json"
    )


def test_members_without_the_permission_see_no_event_log(listening: Any, app: Any) -> None:
    async def bob(s: Any) -> None:
        from app.access import roles

        tenant = await directory.get_tenant(s, "acme")
        user = await directory.create_user(s, ACTOR, "bob@acme.test", "bob-password-1")
        await directory.add_member(s, ACTOR, tenant.id, user, await roles.get_role(s, tenant.id, "Member"))

    in_db(app, bob)
    # Bob's membership events go to the listener's guest: delivered here, so that no guest call is still
    # running in a worker thread when the app shuts down (app shutdown does not wait for it; runs that
    # left one running while the next test's app started have ended in a segfault inside wasmtime).
    deliver(listening, app)
    listening.cookies.clear()
    login(listening, "bob@acme.test", "bob-password-1")
    assert listening.get("/t/acme/admin/events").status_code == 403
    assert "/admin/events" not in listening.get("/t/acme/").text


def test_a_crashed_workers_claims_are_taken_over_without_delivering_twice(listening: Any, app: Any) -> None:
    """A worker died after claiming two events; for one it had already made (and committed) the delivery."""
    listening.blocking_portal.call(app.state.events.stop)  # so that the dead worker claims them first
    lost = add_note(app, "acme", "claimed, never delivered")
    half = add_note(app, "acme", "delivered, never finished")
    dead = "gone-host:999999:dead"

    async def crash(s: Any) -> None:
        long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
        for note in (lost, half):
            event = next(
                e
                for e in (
                    await s.scalars(
                        sa.select(EventRecord).where(EventRecord.type == "probe.probe_note.created")
                    )
                ).all()
                if e.payload["id"] == note
            )
            event.status, event.claimed_by, event.claimed_at, event.attempts = "running", dead, long_ago, 1
            if note == half:
                s.add(
                    EventDelivery(
                        event_id=event.id,
                        plugin_id="listener",
                        handler="handle-event",
                        status="ok",
                        duration_ms=1.0,
                        worker=dead,
                    )
                )

    writing(app, crash)
    listening.blocking_portal.call(app.state.events.start)
    deliver(listening, app)
    for note in (lost, half):
        event, deliveries = of_note(app, note)
        assert event.status == "delivered" and event.attempts == 2 and len(deliveries) == 1, note
    assert of_note(app, half)[1][0].worker == dead  # kept, not repeated
    assert [json.loads(b)["record"]["title"] for _, b in heard(app, "acme")] == ["claimed, never delivered"]


def test_two_dispatchers_deliver_each_event_once(app: Any, event_packages: dict[str, Path]) -> None:
    """Two dispatchers (as two workers would) compete for the same pending events."""
    in_db(app, lambda s: setup_tenants(s, app, event_packages))
    notes = 45

    add_notes(app, "acme", [f"note {i}" for i in range(notes)])

    async def compete() -> tuple[int, int]:
        config = make_alchemy_config(app.state.settings)
        sandboxes = [Sandbox(app.state.settings, config.get_session) for _ in range(2)]
        workers = [
            Dispatcher(app.state.settings, config.get_session, sb, EventBus(), worker=f"w{i}")
            for i, sb in enumerate(sandboxes)
        ]
        try:
            await asyncio.gather(*(w.drain() for w in workers))
            return workers[0].delivered, workers[1].delivered
        finally:
            for sb in sandboxes:
                sb.close()
            await config.get_engine().dispose()

    first, second = asyncio.run(compete())
    assert first + second == notes and first > 0 and second > 0
    events = logged(app, "probe.probe_note.created")
    assert len(events) == notes
    assert all(e.status == "delivered" and e.attempts == 1 and len(d) == 1 for e, d in events)
    assert len(heard(app, "acme")) == notes
    assert {d[0].worker for _, d in events} == {"w0", "w1"}


def test_prune_deletes_old_handled_events_only(
    listening: Any, app: Any, settings_env: dict[str, str]
) -> None:
    from click.testing import CliRunner

    from app.cli import main

    old_note, new_note = add_note(app, "acme", "old"), add_note(app, "acme", "new")
    deliver(listening, app)
    stuck = add_note(app, "acme", "still pending")  # not delivered yet (no drain): must survive

    async def age(s: Any) -> None:
        for event in (await s.scalars(sa.select(EventRecord))).all():
            if event.payload.get("id") in (old_note, stuck) or event.type == "tenant.created":
                event.created_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)

    listening.blocking_portal.call(app.state.events.stop)
    writing(app, age)
    result = CliRunner().invoke(main, ["events", "prune", "--older-than", "30"], env=settings_env)
    assert result.exit_code == 0, result.output
    assert "Deleted 4 event(s)" in result.output  # the old note's, and tenant.created of system, acme, globex
    left = {
        e.payload.get("id"): (e.status, len(d))
        for e, d in logged(app)
        if e.type == "probe.probe_note.created"
    }
    assert left == {new_note: ("delivered", 1), stuck: ("pending", 0)}
    refused = CliRunner().invoke(main, ["events", "prune", "--older-than", "0"], env=settings_env)
    assert refused.exit_code == 2 and "0 is not in the range" in refused.output
