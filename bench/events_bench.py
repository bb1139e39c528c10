"""What the event outbox costs a write, and how fast events reach a WASM subscriber.

    .venv/bin/python bench/events_bench.py [--database-url postgresql://postgres@127.0.0.1:5432/portal_events_bench]
                                           [--writes 500] [--events 300]

Measures, on a fresh database (recreated each run):
  1. `emit` alone (event row + subscriber check, inside an open transaction): median and p95 µs, for
     an event nobody subscribes to and for one a plugin subscribes to;
  2. a record insert (one transaction each) in a tenant without subscribers and in one where the
     listener test plugin subscribes: median ms, so the difference is what delivery-worthy events add
     to the user's write (delivery itself happens after the commit, elsewhere);
  3. delivery throughput: --events pending events drained by one dispatcher, then by two dispatchers
     competing (events/s, and p50/p95 of the guest's handle-event duration from event_deliveries).
The listener and probe components are built from tests/fixtures/guests on first use (cached).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from records_bench import ensure_database  # noqa: E402

CACHE = Path.home() / ".cache" / "portal" / "bench-wasm-cache"


def pct(values: list[float], q: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))]


async def run(url: str, data_dir: Path, writes: int, events: int) -> None:
    import sqlalchemy as sa

    from app.audit import Actor
    from app.core.db import make_alchemy_config, upgrade
    from app.core.models import EventDelivery, EventRecord
    from app.core.settings import load_settings
    from app.events import Event, EventBus, emit
    from app.identity import directory
    from app.installs import lifecycle
    from app.plugins import runtime
    from app.plugins.packages import read_folder
    from app.records.service import RecordService
    from app.sandbox import Sandbox
    from app.sandbox.delivery import Dispatcher
    from tests.guests import FIXTURES

    env = {
        "DATABASE_URL": url,
        "PORTAL_DATA_DIR": str(data_dir),
        "PORTAL_SECRET_KEY": "bench-secret",
        "PORTAL_WASM_CACHE_DIR": str(CACHE),
    }
    settings = load_settings(env)
    await asyncio.to_thread(upgrade, settings)
    actor = Actor(None, "bench@portal.test")

    from app.sandbox.build import build_component
    from app.sandbox.engine import ComponentStore, sha256_file, shared_engine

    folders = {}
    for name in ("probe", "listener"):
        target = data_dir / "src" / name
        shutil.copytree(FIXTURES / name, target)
        await asyncio.to_thread(build_component, target)
        shutil.rmtree(target / "guest")
        wasm = target / "plugin.wasm"
        await asyncio.to_thread(
            ComponentStore(shared_engine()[0], CACHE).get, wasm, sha256_file(wasm), wait=None
        )
        folders[name] = target

    config = make_alchemy_config(settings)
    async with config.get_session() as s:
        for name in ("probe", "listener"):
            await lifecycle.upload(s, actor, read_folder(folders[name]), settings, install_now=True)
        quiet = await directory.create_tenant(s, actor, "quiet", "Quiet")
        busy = await directory.create_tenant(s, actor, "busy", "Busy")
        await lifecycle.enable(s, actor, quiet.id, "probe")
        for name in ("probe", "listener"):
            await lifecycle.enable(s, actor, busy.id, name)
        await s.commit()

    print(f"1. emit alone ({writes} each, inside one open transaction)")
    for tenant, event_type in ((quiet, "probe.probe_note.created"), (busy, "probe.probe_note.created")):
        async with config.get_session() as s:
            await runtime.enabled_for(s, tenant.id)  # a request has usually loaded this already
            took = []
            for i in range(writes):
                started = time.perf_counter()
                await emit(
                    s,
                    Event(
                        event_type,
                        str(tenant.id),
                        {"id": str(i), "record": {"title": "x" * 40}},
                        source="probe",
                    ),
                )
                took.append((time.perf_counter() - started) * 1e6)
            await s.rollback()
        label = "no subscriber" if tenant is quiet else "subscribed   "
        print(f"   {label}: median {statistics.median(took):7.1f} µs   p95 {pct(took, 95):7.1f} µs")

    print(f"2. record insert, one transaction each ({writes} each)")
    for tenant in (quiet, busy):
        took = []
        for i in range(writes):
            async with config.get_session() as s:
                ref = await runtime.entity_in_tenant(s, tenant.id, "probe", "probe_note")
                started = time.perf_counter()
                await RecordService(s, tenant.id, actor, lambda _p: True).insert(ref, {"title": f"n{i}"})
                await s.commit()
                took.append((time.perf_counter() - started) * 1000)
        label = "no subscriber" if tenant is quiet else "subscribed   "
        print(f"   {label}: median {statistics.median(took):6.2f} ms   p95 {pct(took, 95):6.2f} ms")

    async def delivered_throughput(dispatchers: int) -> None:
        async with config.get_session() as s:
            await s.execute(
                sa.update(EventRecord).where(EventRecord.status == "pending").values(status="none")
            )
            ref = await runtime.entity_in_tenant(s, busy.id, "probe", "probe_note")
            service = RecordService(s, busy.id, actor, lambda _p: True)
            for i in range(events):
                await service.insert(ref, {"title": f"e{i}"})
            await s.commit()
        sandboxes = [Sandbox(settings, config.get_session) for _ in range(dispatchers)]
        workers = [
            Dispatcher(settings, config.get_session, sb, EventBus(), worker=f"bench{i}")
            for i, sb in enumerate(sandboxes)
        ]
        started = time.perf_counter()
        await asyncio.gather(*(w.drain(timeout=600) for w in workers))
        seconds = time.perf_counter() - started
        async with config.get_session() as s:
            durations = list(
                (
                    await s.scalars(
                        sa.select(EventDelivery.duration_ms).where(EventDelivery.worker.like("bench%"))
                    )
                ).all()
            )
            await s.execute(sa.delete(EventDelivery).where(EventDelivery.worker.like("bench%")))
            await s.commit()
        for sb in sandboxes:
            sb.close()
        print(
            f"   {dispatchers} dispatcher(s): {events} events in {seconds:5.2f} s = {events / seconds:6.1f} events/s;"
            f" handle-event p50 {statistics.median(durations):6.1f} ms  p95 {pct(durations, 95):6.1f} ms"
            f" (includes each dispatcher's first, cold instance)"
        )

    print("3. delivery to the listener's handle-event (a Python guest writing one row per event)")
    await delivered_throughput(1)
    await delivered_throughput(2)
    await config.get_engine().dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/portal_events_bench")
    parser.add_argument("--writes", type=int, default=500)
    parser.add_argument("--events", type=int, default=300)
    args = parser.parse_args()
    ensure_database(args.database_url, rebuild=True)
    with tempfile.TemporaryDirectory(prefix="portal-events-bench-") as tmp:
        asyncio.run(run(args.database_url, Path(tmp), args.writes, args.events))


if __name__ == "__main__":
    main()
