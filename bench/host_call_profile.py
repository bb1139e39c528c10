"""Where a guest's db-query goes (issue 17: overhead over the record service called directly ≤ 100 µs).

    .venv/bin/python bench/host_call_profile.py [--database-url postgresql://postgres@127.0.0.1:5432/portal_host_call_profile]
                                                [--calls 200] [--rounds 5] [--cprofile] [--root ../other-checkout]
    .venv/bin/python bench/host_call_profile.py --on-loop    # design (b), an experiment

One probe plugin (built and compiled like bench/wasm_bench.py, same caches), one warm instance; the guest
makes `--calls` db-query calls per page. The host side is timed in place (wrapping the host function, the
hop to the event loop and the record service), so a call splits into:
  record service     RecordService construction and list() on the event loop;
  host function      argument parsing, entity lookup, the ListQuery, JSON of the answer and the
                     worker's side of the hop to the event loop (CallContext.run);
  the rest           the guest's own work (Python in wasm), wasmtime lifting/lowering the strings, the
                     loop's side of the hop and the epoch ticker;
and beside it the same list() called directly. Figures are CPU time, not wall time: the whole process's
for the totals (getrusage), the thread's for the parts (thread_time), so the split is approximate (the
parts do not count what the other thread spends waking up). `--cprofile` adds the event loop's profile of the calls.
`--on-loop` measures design (b) of issue 17 (run_guests_on_the_loop); `--root` another checkout's app.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from records_bench import ensure_database  # noqa: E402
from wasm_bench import ADMIN, CACHE, build_variants, env_for  # noqa: E402

TIMES: dict[str, float] = defaultdict(float)


def cpu() -> float:
    """CPU seconds of this process, every thread (the machine is shared: wall time is not a figure)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(owner: Any, name: str, label: str) -> None:
    original = getattr(owner, name)
    if asyncio.iscoroutinefunction(original):

        async def wrapper_async(*args: Any, **kwargs: Any) -> Any:
            t = time.thread_time()  # CPU of the event loop thread: an await of the database is not counted
            try:
                return await original(*args, **kwargs)
            finally:
                TIMES[label] += time.thread_time() - t

        setattr(owner, name, wrapper_async)
        return

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = time.thread_time()  # CPU of the guest's worker thread (a wait for the loop is not counted)
        try:
            return original(*args, **kwargs)
        finally:
            TIMES[label] += time.thread_time() - t

    setattr(owner, name, wrapper)


def run_guests_on_the_loop() -> None:
    """Design (b) of issue 17, as an experiment (not what the app does): the guest call runs on the event
    loop's thread inside SQLAlchemy's greenlet bridge, and a host function awaits the record service
    there (`await_only`) instead of hopping from a worker thread. Measured, not shipped: while the guest's
    own code runs, the worker's event loop serves nobody (a guest spinning to its deadline would stall
    every request for 1.5 s; tests/integration/test_sandbox.py holds the app to the opposite), and two
    guests suspended in host calls on one thread would interleave wasmtime's per-thread call state."""
    from sqlalchemy.util import await_only, greenlet_spawn

    from app.sandbox import host

    def run(self: Any, make: Any, *, reads: bool = False) -> Any:
        return await_only(host._call(make if reads else self._writing(make)))

    host.CallContext.run = run  # type: ignore[method-assign]
    loop = asyncio.get_running_loop()
    threaded = loop.run_in_executor

    def run_in_executor(executor: Any, fn: Any, *args: Any) -> Any:
        if getattr(fn, "__name__", "") == "_execute":  # the guest call itself
            return asyncio.ensure_future(greenlet_spawn(fn, *args))
        return threaded(executor, fn, *args)

    loop.run_in_executor = run_in_executor  # type: ignore[method-assign]


async def profile(
    url: str, data_dir: Path, folder: Path, calls: int, rounds: int, use_cprofile: bool, on_loop: bool
) -> None:
    from app import bootstrap
    from app.access import roles
    from app.access.cache import compute_access
    from app.audit import Actor
    from app.core.db import make_alchemy_config
    from app.core.settings import load_settings
    from app.identity import directory
    from app.installs import lifecycle
    from app.plugins import runtime
    from app.plugins.packages import read_folder
    from app.records import service as record_service
    from app.records.service import ListQuery, RecordService
    from app.sandbox import Sandbox, host
    from app.sandbox.engine import ComponentStore, sha256_file, shared_engine
    from app.sandbox.host import Principal

    if on_loop:
        run_guests_on_the_loop()
    settings = load_settings(env_for(url, data_dir))
    wasm = folder / "plugin.wasm"
    ComponentStore(shared_engine()[0], CACHE).get(wasm.read_bytes, sha256_file(wasm), wait=None)
    config = make_alchemy_config(settings)
    actor = Actor(None, "bench")
    async with config.get_session() as s:
        await bootstrap.ensure_base(s, settings)
        tenant = await directory.find_tenant(s, "bench") or await directory.create_tenant(
            s, actor, "bench", "Bench"
        )
        admin = await directory.find_user(s, ADMIN[0])
        await directory.add_member(s, actor, tenant.id, admin, await roles.get_role(s, tenant.id, "Admin"))
        await lifecycle.upload(s, actor, read_folder(folder), settings, install_now=True)
        await lifecycle.enable(s, actor, tenant.id, "probe")
        await s.commit()
    async with config.get_session() as s:
        probe = next(p for p in await runtime.enabled_for(s, tenant.id) if p.id == "probe")
        access = await compute_access(s, admin.id, tenant.id)
        principal = Principal(
            Actor(admin.id, admin.email, ""), access.permissions.allows, {"id": str(admin.id)}
        )
        sandbox = Sandbox(settings)

        async def page(mode: str, n: int) -> float:
            t = cpu()
            await sandbox.call(
                s, probe, tenant.id, principal, "render-page", "/probe", json.dumps({"mode": mode, "n": n})
            )
            return cpu() - t

        for _ in range(3):
            await page("queries", 5)
        if use_cprofile:  # the guest's worker thread through 2,000 check-permission calls (the bare boundary)
            worker = cProfile.Profile()
            execute = sandbox._execute

            def profiled(*args: Any) -> Any:
                worker.enable()
                try:
                    return execute(*args)
                finally:
                    worker.disable()

            sandbox._execute = profiled  # type: ignore[method-assign]
            await page("calls", 2000)
            sandbox._execute = execute  # type: ignore[method-assign]
            print("\nworker thread, 2,000 check-permission calls, by own time (top 20):")
            pstats.Stats(worker).sort_stats("tottime").print_stats(20)
        _timed(host, "db_query", "host function")
        # The linker took the functions from host.FUNCTIONS: put the timed one there, for a new linker.
        host.FUNCTIONS = tuple((n, host.db_query if n == "db-query" else f, c) for n, f, c in host.FUNCTIONS)
        sandbox = Sandbox(settings)
        _timed(host.CallContext, "run", "hop + record service")
        _timed(record_service.RecordService, "list", "record service list()")
        base = statistics.median([await page("calls", 0) for _ in range(20)])
        bare = statistics.median([await page("calls", calls) for _ in range(rounds)])
        totals = []
        profiler = cProfile.Profile() if use_cprofile else None
        TIMES.clear()
        for _ in range(rounds):
            if profiler:
                profiler.enable()
            totals.append(await page("queries", calls))
            if profiler:
                profiler.disable()
        n = calls * rounds
        host_times = dict(TIMES)
        ref = probe.entities["probe_note"]
        svc = RecordService(s, tenant.id, principal.actor, principal.can)
        direct = []
        for _ in range(rounds):
            t = cpu()
            for _ in range(calls):
                await svc.list(ref, ListQuery(size=1))
            direct.append(cpu() - t)
        await s.rollback()
    await config.get_engine().dispose()
    sandbox.close()

    per = {k: v / n * 1e6 for k, v in host_times.items()}
    total = (sum(totals) - base * rounds) / n * 1e6
    direct_us = sum(direct) / n * 1e6
    hop = per["hop + record service"]
    if on_loop:  # one thread: the host function's time includes the record service's
        per["host function"] -= per["record service list()"]
        hop -= per["record service list()"]
    rest = total - per["host function"] - per["record service list()"]
    rows = [
        (
            "check-permission from the guest: the bare boundary, no hop (process CPU)",
            (bare - base) / calls * 1e6,
        ),
        ("db-query from the guest, total (process CPU)", total),
        ("  record service list() (event loop thread CPU)", per["record service list()"]),
        ("  host function (worker thread CPU: args, JSON, its side of the hop)", per["host function"]),
        ("    of which CallContext.run (the worker's side of the hop)", hop),
        ("  the rest: guest code in wasm, wasmtime lift/lower, the loop's side of the hop", rest),
        ("record service list() called directly (process CPU)", direct_us),
        ("overhead over the direct call", total - direct_us),
    ]
    print(f"\n{n} db-query calls ({rounds} pages of {calls}), CPU µs per call:")
    for label, value in rows:
        print(f"  {label:<80} {value:>8.1f}")
    if profiler:
        print("\nevent loop thread, cumulative (top 25):")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/portal_host_call_profile"
    )
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument(
        "--root", type=Path, help="Measure this checkout's app (its `app` package) with this bench."
    )
    parser.add_argument(
        "--on-loop", action="store_true", help="Design (b): run the guest on the event loop (an experiment)."
    )
    args = parser.parse_args()
    if args.root:  # that checkout's app, imported from here on
        sys.path.insert(0, str(args.root.resolve()))
    ensure_database(args.database_url, rebuild=True)
    data_dir = Path(tempfile.mkdtemp(prefix="portal-host-call-"))
    try:
        env = env_for(args.database_url, data_dir)
        subprocess.run(
            [str(ROOT / ".venv/bin/portal"), "db", "upgrade"], env=env, check=True, capture_output=True
        )
        (folder,) = build_variants(1, data_dir / "src")
        asyncio.run(
            profile(args.database_url, data_dir, folder, args.calls, args.rounds, args.cprofile, args.on_loop)
        )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
