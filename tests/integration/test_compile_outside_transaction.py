"""A plugin's first compile never holds the database (both backends): with an empty compile cache for the
listener's component, its first event delivery waits for the compile with no transaction open, while 20
concurrent writers (each holding SQLite's write lock, as write requests do) all succeed quickly; a guest
call made inside a transaction meanwhile answers `compiling` at once instead of waiting for the compile."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.core.db import SQLITE_WRITE_LOCK
from app.core.models import EventDelivery
from app.identity import directory
from app.installs import lifecycle
from app.plugins import runtime
from app.plugins.packages import read_folder
from app.records.service import RecordService
from app.sandbox import GuestFailure
from app.sandbox.engine import sha256_file
from app.sandbox.runner import plugin_principal
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, WASM_CACHE
from tests.helpers import login, post_form, text_of
from tests.integration.test_events import ACTOR, add_note, event_packages  # noqa: F401  (the session fixture)
from tests.integration.test_record_pages import in_db

WRITERS = 20


@pytest.fixture
def settings_env(
    settings_env: dict[str, str], tmp_path: Path, event_packages: dict[str, Path]
) -> dict[str, str]:
    """A compile cache of this test's own: the probe's component is in it, the listener's is not."""
    cache = tmp_path / "fresh-wasm-cache"
    cache.mkdir()
    probe = sha256_file(event_packages["probe"] / "plugin.wasm")
    for cwasm in WASM_CACHE.glob(f"{probe}-*.cwasm"):
        shutil.copy(cwasm, cache / cwasm.name)
    return {**settings_env, "PORTAL_WASM_CACHE_DIR": str(cache)}


def test_first_delivery_compiles_outside_any_transaction(
    client: Any, app: Any, event_packages: dict[str, Path]
) -> None:
    sandbox, events = app.state.sandbox, app.state.events
    factory = events.session_factory
    listener_sha = sha256_file(event_packages["listener"] / "plugin.wasm")
    assert sandbox.components.state(listener_sha) == "pending"  # the cache really is empty for it

    @contextlib.asynccontextmanager
    async def locked_session() -> Any:
        async with factory() as session:
            if app.state.settings.is_sqlite:
                await session.connection(execution_options={SQLITE_WRITE_LOCK: True})
            yield session

    async def scenario() -> dict[str, Any]:
        async with factory() as s:
            for name in ("probe", "listener"):
                await lifecycle.upload(
                    s, ACTOR, read_folder(event_packages[name]), app.state.settings, install_now=True
                )
            tenant = await directory.create_tenant(s, ACTOR, "acme", "Acme")
            for name in ("probe", "listener"):
                await lifecycle.enable(s, ACTOR, tenant.id, name)
            ref = await runtime.entity_in_tenant(s, tenant.id, "probe", "probe_note")
            await RecordService(s, tenant.id, ACTOR, lambda _p: True).insert(ref, {"title": "first event"})
            await (
                s.commit()
            )  # wakes the dispatcher: the listener's first delivery starts (and waits for the compile)
        tenant_id = tenant.id

        # Inside a transaction holding the write lock, a guest call refuses to compile or wait.
        async with locked_session() as session:
            listener = next(p for p in await runtime.enabled_for(session, tenant_id) if p.id == "listener")
            started = time.perf_counter()
            with pytest.raises(GuestFailure) as failure:
                await sandbox.call(
                    session,
                    listener,
                    tenant_id,
                    plugin_principal(listener, tenant_id),
                    "handle-event",
                    "probe.probe_note.created",
                    "{}",
                    record_faults=False,
                )
            in_tx_call = time.perf_counter() - started
            await session.rollback()

        errors: list[str] = []
        latencies: list[float] = []

        async def write(i: int) -> None:
            await asyncio.sleep(i * 0.25)  # spread over the compile
            began = time.perf_counter()
            try:
                async with locked_session() as session:
                    ref = await runtime.entity_in_tenant(session, tenant_id, "probe", "probe_note")
                    await RecordService(session, tenant_id, ACTOR, lambda _p: True).insert(
                        ref, {"title": f"user write {i}"}
                    )
                    await session.commit()
            except Exception as exc:  # "database is locked" was the failure
                errors.append(f"{type(exc).__name__}: {exc}")
            latencies.append(time.perf_counter() - began)

        await asyncio.gather(*(write(i) for i in range(WRITERS)))
        compiling_while_written = sandbox.components.state(listener_sha) == "compiling"
        await events.drain(timeout=240)
        async with factory() as s:
            ref = await runtime.entity_in_tenant(s, tenant_id, "probe", "probe_note")
            t = ref.table
            titles = set((await s.scalars(sa.select(t.c.title).where(t.c.tenant_id == tenant_id))).all())
            statuses = list(
                (
                    await s.scalars(
                        sa.select(EventDelivery.status).where(EventDelivery.plugin_id == "listener")
                    )
                ).all()
            )
        return {
            "failure": failure.value,
            "in_tx_call": in_tx_call,
            "errors": errors,
            "latencies": latencies,
            "titles": titles,
            "statuses": statuses,
            "compiling_while_written": compiling_while_written,
        }

    out = client.blocking_portal.call(scenario)
    assert out["failure"].kind == "compiling"
    assert out["in_tx_call"] < 2.0, out["in_tx_call"]
    assert out["errors"] == []
    assert {f"user write {i}" for i in range(WRITERS)} <= out["titles"]
    job = sandbox.components.job(listener_sha)
    assert job is not None and job.state == "ready"
    # The writes ran while the compile did, and none of them waited for it.
    assert out["compiling_while_written"] or max(out["latencies"]) < job.seconds / 2, (
        out["latencies"],
        job.seconds,
    )
    assert max(out["latencies"]) < 5.0, out["latencies"]
    # Every event reached the listener once its component was ready: the first one, and the 20 writes'.
    assert out["statuses"] and set(out["statuses"]) == {"ok"}
    assert len(out["statuses"]) >= 1 + WRITERS


def test_a_page_action_waits_for_the_compile_without_holding_the_write_lock(
    client: Any, app: Any, event_packages: dict[str, Path]
) -> None:
    """A custom page's action (a write request: on SQLite it takes the write lock up front) on a plugin whose
    component is still compiling ends its transaction before waiting; other writers are not held up."""
    probe_sha = sha256_file(event_packages["probe"] / "plugin.wasm")
    app.state.sandbox.components.cache_path(
        probe_sha
    ).unlink()  # this test's cache: the probe is not compiled
    app.state.sandbox.components.forget(probe_sha)

    async def setup(s: Any) -> None:
        await lifecycle.upload(
            s, ACTOR, read_folder(event_packages["probe"]), app.state.settings, install_now=True
        )
        tenant = await directory.create_tenant(s, ACTOR, "acme", "Acme")
        await lifecycle.enable(s, ACTOR, tenant.id, "probe")

    in_db(app, setup)
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    answer: dict[str, Any] = {}

    def act() -> None:
        answer["r"] = post_form(
            client,
            "/t/acme/p/probe/probe/actions/add",
            {"title": "by the guest", "amount": "1"},
            headers={"HX-Request": "true"},
        )

    thread = threading.Thread(target=act)
    thread.start()
    time.sleep(1.0)  # the action is waiting for the compile now
    latencies = []
    for i in range(5):
        began = time.perf_counter()
        add_note(app, "acme", f"user write {i}")
        latencies.append(time.perf_counter() - began)
        time.sleep(0.5)
    thread.join(120)
    assert max(latencies) < 2.0, latencies
    r = answer["r"]
    assert r.status_code == 200, r.text[:300]
    assert "added by the guest" in r.text or "still being compiled" in r.text, text_of(r.text)[:300]
