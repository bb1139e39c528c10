"""Where a custom page's time goes (issue 17: a custom page end to end ≤ 5 ms of server CPU).

    .venv/bin/python bench/guest_page_profile.py [--database-url postgresql://postgres@127.0.0.1:5432/portal_guest_page_profile]
                                                 [--requests 300] [--top 30]

The probe plugin (built and compiled like bench/wasm_bench.py, same caches) installed in a tenant; the
whole app in this process (Litestar's TestClient: the app's event loop in a thread of its own), signed
in; `GET /t/bench/p/probe/probe?mode=bench` (the page of wasm_bench's end-to-end run: three host calls,
a few blocks) requested `--requests` times after warming. Prints this process's CPU per request
(every thread: the client's share is included, an upper bound) and the event loop thread's profile,
by own time and cumulative (route, session, guest call, UI-instruction validation, template).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from host_call_profile import cpu  # noqa: E402
from records_bench import ensure_database  # noqa: E402
from wasm_bench import ADMIN, CACHE, build_variants, env_for  # noqa: E402

PAGE = "/t/bench/p/probe/probe?mode=bench"


async def install(url: str, data_dir: Path, folder: Path) -> None:
    from app import bootstrap
    from app.access import roles
    from app.audit import Actor
    from app.core.db import make_alchemy_config
    from app.core.settings import load_settings
    from app.identity import directory
    from app.installs import lifecycle
    from app.plugins.packages import read_folder
    from app.sandbox.engine import ComponentStore, sha256_file, shared_engine

    settings = load_settings(env_for(url, data_dir))
    wasm = folder / "plugin.wasm"
    ComponentStore(shared_engine()[0], CACHE).get(wasm.read_bytes, sha256_file(wasm), wait=None)
    config = make_alchemy_config(settings)
    actor = Actor(None, "bench")
    async with config.get_session() as s:
        await bootstrap.ensure_base(s, settings)
        tenant = await directory.create_tenant(s, actor, "bench", "Bench")
        admin = await directory.find_user(s, ADMIN[0])
        await directory.add_member(s, actor, tenant.id, admin, await roles.get_role(s, tenant.id, "Admin"))
        await lifecycle.upload(s, actor, read_folder(folder), settings, install_now=True)
        await lifecycle.enable(s, actor, tenant.id, "probe")
        await s.commit()
    await config.get_engine().dispose()


def statements(app: Any, client: Any) -> list[str]:
    """What one warm request sends to the database (as tests/integration/test_list_round_trips.py counts)."""
    from sqlalchemy import event

    engine = app.state.alchemy.get_engine().sync_engine
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split())[:60])

    def begin(_conn: Any) -> None:
        seen.append("BEGIN")

    def commit(_conn: Any) -> None:
        seen.append("COMMIT")

    hooks = (("before_cursor_execute", note), ("begin", begin), ("commit", commit))
    for name, fn in hooks:
        event.listen(engine, name, fn)
    try:
        client.get(PAGE)
    finally:
        for name, fn in hooks:
            event.remove(engine, name, fn)
    return seen


def measure(url: str, data_dir: Path, requests: int, top: int) -> None:
    from litestar.testing import TestClient

    from app.core.settings import load_settings
    from app.server import create_app

    logging.getLogger("httpx").setLevel(logging.WARNING)
    app = create_app(load_settings(env_for(url, data_dir)))
    with TestClient(app=app, base_url="http://testserver.local") as client:
        client.get("/login")
        client.post(
            "/login",
            data={
                "email": ADMIN[0],
                "password": ADMIN[1],
                "next": "/",
                "_csrf_token": client.cookies["portal_csrf"],
            },
        )
        for _ in range(50):
            r = client.get(PAGE)
            if r.status_code == 200 and "notes=" in r.text:
                break
            time.sleep(0.5)  # the component may still be loading
        else:
            sys.exit(f"guest_page_profile: the page answers {r.status_code}: {r.text[:300]}")
        for _ in range(30):
            client.get(PAGE)
        print(f"\nstatements of one request (BEGIN/COMMIT included): {statements(app, client)}")
        per: list[float] = []
        for _ in range(5):
            t = cpu()
            for _ in range(requests // 5):
                client.get(PAGE)
            per.append((cpu() - t) * 1000 / (requests // 5))
        profiler = cProfile.Profile(time.thread_time)  # CPU: waits for the GIL or a socket are not counted
        client.blocking_portal.call(profiler.enable)  # the app's event loop thread
        for _ in range(requests):
            client.get(PAGE)
        client.blocking_portal.call(profiler.disable)
    print(
        f"\n{PAGE}: process CPU per request, 5 runs of {requests // 5}: median {statistics.median(per):.2f} ms "
        f"(runs: {', '.join(f'{p:.2f}' for p in per)})"
    )
    stats = pstats.Stats(profiler)
    print(f"\nevent loop thread, {requests} requests, by own time (top {top}):")
    stats.sort_stats("tottime").print_stats(top)
    print(f"\nevent loop thread, cumulative (top {top}):")
    stats.sort_stats("cumulative").print_stats(f"{ROOT.name}/(app|templates)", top)  # the app's own


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/portal_guest_page_profile"
    )
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    ensure_database(args.database_url, rebuild=True)
    data_dir = Path(tempfile.mkdtemp(prefix="portal-guest-page-"))
    try:
        env = env_for(args.database_url, data_dir)
        subprocess.run(
            [str(ROOT / ".venv/bin/portal"), "db", "upgrade"], env=env, check=True, capture_output=True
        )
        (folder,) = build_variants(1, data_dir / "src")
        asyncio.run(install(args.database_url, data_dir, folder))
        measure(args.database_url, data_dir, args.requests, args.top)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
