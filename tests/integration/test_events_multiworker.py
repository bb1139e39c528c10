"""With several worker processes, each event is delivered once (not once per worker).

Runs the real `portal serve --workers 2` against PostgreSQL (several workers are a PostgreSQL
deployment). Two kinds of events: ones raised by requests (the worker that committed delivers at
once) and a burst left in the log by another process (this test), which both workers' sweeps compete
for. Every event must end up with exactly one delivery to the listener plugin, the listener must
have exactly one row per event, and both workers must have delivered some of the burst.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.cli.common import run_db
from app.core.models import EventDelivery, EventRecord
from app.core.settings import load_settings
from app.identity import directory
from app.installs import lifecycle
from app.plugins import runtime
from app.plugins.packages import read_folder
from app.records.service import RecordService
from tests.conftest import ADMIN_EMAIL, WASM_CACHE, reset_pg
from tests.integration.test_events import ACTOR, event_packages  # noqa: F401  (the session fixture)
from tests.integration.test_multiworker import cli_token, server_env, start_server, stop_server

BURST = 150
BY_REQUEST = 30


def test_each_event_is_delivered_once_across_two_workers(
    request: pytest.FixtureRequest, tmp_path: Path, event_packages: dict[str, Path]
) -> None:
    url: str = request.getfixturevalue("pg_migrated")
    reset_pg()
    env = server_env(tmp_path, url)
    env.update({"PORTAL_WASM_CACHE_DIR": str(WASM_CACHE), "PORTAL_EVENT_SWEEP_SECONDS": "0.2"})
    settings = load_settings(env)

    async def setup(s: Any) -> None:
        for name in ("probe", "listener"):
            await lifecycle.upload(s, ACTOR, read_folder(event_packages[name]), settings, install_now=True)
        tenant = await directory.create_tenant(s, ACTOR, "acme", "Acme")
        for name in ("probe", "listener"):
            await lifecycle.enable(s, ACTOR, tenant.id, name)

    run_db(settings, setup)
    server = start_server(env, tmp_path)
    try:
        token = cli_token(env, ADMIN_EMAIL)
        for i in range(BY_REQUEST):
            status, body, _ = server.request(
                "POST", "/api/v1/plugins/probe/probe_note", token, "acme", {"title": f"by request {i}"}
            )
            assert status == 201, body

        async def burst(s: Any) -> None:  # committed here, where no dispatcher runs: left for the sweeps
            tenant = await directory.get_tenant(s, "acme")
            ref = await runtime.entity_in_tenant(s, tenant.id, "probe", "probe_note")
            service = RecordService(s, tenant.id, ACTOR, lambda _p: True)
            for i in range(BURST):
                await service.insert(ref, {"title": f"burst {i}"})

        run_db(settings, burst)

        async def open_events(s: Any) -> int:
            return int(
                await s.scalar(
                    sa.select(sa.func.count())
                    .select_from(EventRecord)
                    .where(EventRecord.status.in_(("pending", "running")))
                )
                or 0
            )

        deadline = time.monotonic() + 120
        while run_db(settings, open_events) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert run_db(settings, open_events) == 0, (
            f"events still undelivered after 120 s:\n{server.log_tail()}"
        )
    finally:
        stop_server(server)

    async def outcome(s: Any) -> tuple[list[Any], list[Any], int]:
        events = (
            await s.execute(
                sa.select(
                    EventRecord.id, EventRecord.status, EventRecord.attempts, EventRecord.payload
                ).where(EventRecord.type == "probe.probe_note.created")
            )
        ).all()
        deliveries = (
            await s.execute(sa.select(EventDelivery.event_id, EventDelivery.status, EventDelivery.worker))
        ).all()
        tenant = await directory.get_tenant(s, "acme")
        plugin = next(p for p in await runtime.installed(s) if p.id == "listener")
        t = plugin.entities["heard"].table
        heard = await s.scalar(sa.select(sa.func.count()).select_from(t).where(t.c.tenant_id == tenant.id))
        return list(events), list(deliveries), int(heard or 0)

    events, deliveries, heard = run_db(settings, outcome)
    assert len(events) == BURST + BY_REQUEST
    assert all(e.status == "delivered" and e.attempts == 1 for e in events)
    per_event = Counter(d.event_id for d in deliveries)
    assert set(per_event) == {e.id for e in events} and set(per_event.values()) == {1}, (
        "an event was delivered twice"
    )
    assert all(d.status == "ok" for d in deliveries)
    assert heard == BURST + BY_REQUEST  # one listener row per event: no delivery ran twice
    burst_ids = {e.id for e in events if e.payload["record"]["title"].startswith("burst")}
    burst_workers = Counter(d.worker.rsplit(":", 2)[1] for d in deliveries if d.event_id in burst_ids)
    assert len(burst_workers) == 2, f"only worker process(es) {dict(burst_workers)} delivered the burst"
