"""Data scopes at scale (issue 5): a tenant with 10,000 members in a hierarchy 8 levels deep and
200,000 inventory_item rows on PostgreSQL.

    .venv/bin/python bench/scope_bench.py [--database-url postgresql://postgres@127.0.0.1:5432/portal_scope_bench]
                                          [--requests 200] [--rebuild]

Reports
  (a) the generated list page for a mid-level manager with a `subtree` scope, through the whole app
      in-process (Litestar TestClient): server CPU ms per request = this process's CPU
      (time.process_time, so the in-process client's small share is included: an upper bound) plus
      the CPU of the database's PostgreSQL backends (/proc/<pid>/stat);
  (b) scope resolution from the per-worker cache (lookup + building the SQL condition);
  (c) uncached resolution: member/role-scope query and the recursive subordinate query;
  (d) the two subtree filter strategies ("ids": the cached id list as one array parameter; "cte":
      the recursive query embedded in every statement) for managers with small to big subtrees,
      list + capped count through RecordService.list, CPU ms per call (app + PostgreSQL).
The data is loaded once (COPY) and reused; --rebuild drops and reloads it. Never uses `test`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from records_bench import ensure_database, sync_url  # noqa: E402

USERS = 10_000
LEVEL_SIZES = [1, 4, 16, 64, 256, 1024, 2600, 6035]  # 8 levels, 10,000 members
ROWS = 200_000
ADMIN = ("bench@portal.test", "bench-password-1")
MEMBER_PASSWORD = "member-password-1"
UNCACHED_RUNS = 30
TARGETS = {"list": 25.0, "cached": 0.1, "uncached": 20.0}


def env_for(url: str, data_dir: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": url,
        "PORTAL_DATA_DIR": str(data_dir),
        "PORTAL_SECRET_KEY": "bench-secret",
        "PORTAL_ADMIN_EMAIL": ADMIN[0],
        "PORTAL_ADMIN_PASSWORD": ADMIN[1],
    }


async def base_setup(settings: Any) -> None:
    """Bootstrap, the inventory plugin, tenant `scope` with a Sales role whose default scope is subtree."""
    from app import bootstrap
    from app.access import roles, scopes
    from app.access.scopes import ScopeRule
    from app.audit import Actor
    from app.core.db import make_alchemy_config
    from app.identity import directory
    from app.installs import lifecycle
    from app.plugins.packages import read_folder

    config = make_alchemy_config(settings)
    async with config.get_session() as s:
        await bootstrap.ensure_base(s, settings)
        if await directory.find_tenant(s, "scope") is None:
            actor = Actor(None, "bench")
            await lifecycle.upload(
                s, actor, read_folder(ROOT / "plugins" / "inventory"), settings, install_now=True
            )
            tenant = await directory.create_tenant(s, actor, "scope", "Scope bench")
            await lifecycle.enable(s, actor, tenant.id, "inventory")
            sales = await roles.create_role(s, actor, tenant.id, "Sales")
            await roles.set_role_grants(
                s, actor, sales, ["db.inventory_item.*", "db.inventory_category.select"]
            )
            await scopes.set_role_scopes(
                s, actor, sales, {"*": ScopeRule("subtree")}, await scopes.scope_entities(s)
            )
        await s.commit()
    await config.get_engine().dispose()


def load_rows(url: str) -> None:
    """10,000 members (8 levels, each reporting to one of the level above) and 200,000 rows, by COPY."""
    from app.identity.passwords import hash_password

    with psycopg.connect(sync_url(url)) as conn:
        have = conn.execute("SELECT count(*) FROM plugin_inventory_item").fetchone()[0]  # type: ignore[index]
        if have >= ROWS:
            return
        tenant_id, role_id = conn.execute(
            "SELECT t.id, r.id FROM tenants t JOIN roles r ON r.tenant_id = t.id AND r.name = 'Sales' "
            "WHERE t.slug = 'scope'"
        ).fetchone()  # type: ignore[misc]
        conn.execute("DELETE FROM plugin_inventory_item")
        conn.execute(
            "DELETE FROM tenant_users WHERE tenant_id = %s AND user_id IN "
            "(SELECT id FROM users WHERE email LIKE 'm%%@scope.test')",
            (tenant_id,),
        )
        conn.execute("DELETE FROM users WHERE email LIKE 'm%%@scope.test'")
        rng = random.Random(5)
        pw_hash = hash_password(MEMBER_PASSWORD)
        levels: list[list[uuid.UUID]] = []
        manager: dict[uuid.UUID, uuid.UUID | None] = {}
        n = 0
        for depth, size in enumerate(LEVEL_SIZES):
            level = [uuid.uuid4() for _ in range(size)]
            for i, uid in enumerate(level):
                manager[uid] = levels[depth - 1][i % len(levels[depth - 1])] if depth else None
            levels.append(level)
        now = "2026-01-01T00:00:00Z"
        with conn.cursor() as cur:
            with cur.copy(
                "COPY users (id, email, display_name, password_hash, is_active, language, created_at, "
                "updated_at) FROM STDIN"
            ) as copy:
                for depth, level in enumerate(levels):
                    for i, uid in enumerate(level):
                        copy.write_row(
                            (uid, f"m{depth}-{i}@scope.test", f"M{depth}.{i}", pw_hash, True, "en", now, now)
                        )
                        n += 1
            with cur.copy(
                "COPY tenant_users (id, tenant_id, user_id, role_id, manager_id, created_at, updated_at) "
                "FROM STDIN"
            ) as copy:
                for uid, boss in manager.items():
                    copy.write_row((uuid.uuid4(), tenant_id, uid, role_id, boss, now, now))
            everyone = list(manager)
            with cur.copy(
                "COPY plugin_inventory_item (id, tenant_id, created_at, updated_at, created_by, version, "
                "sku, name, quantity, unit, threshold, status) FROM STDIN"
            ) as copy:
                for r in range(ROWS):
                    copy.write_row(
                        (
                            uuid.uuid4(),
                            tenant_id,
                            f"2026-01-01T{r // 3600 % 24:02d}:{r // 60 % 60:02d}:{r % 60:02d}Z",
                            now,
                            rng.choice(everyone),
                            1,
                            f"SKU-{r:06d}",
                            f"item {r}",
                            r % 500,
                            "pcs",
                            10,
                            "active",
                        )
                    )
        conn.execute(
            "UPDATE tenants SET hierarchy_version = hierarchy_version + 1 WHERE id = %s", (tenant_id,)
        )
        conn.commit()
        assert n == USERS


def vacuum(url: str) -> None:
    """What autovacuum does in steady state: statistics, and the visibility map (index-only scans)."""
    with psycopg.connect(sync_url(url), autocommit=True) as conn:
        for table in ("users", "tenant_users", "plugin_inventory_item"):
            conn.execute(f"VACUUM ANALYZE {table}")


def backend_pids(url: str) -> list[int]:
    name = sync_url(url).rsplit("/", 1)[1]
    with psycopg.connect(sync_url(url)) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (name,)
            ).fetchall()
        ]


def proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PgCpu:
    """CPU seconds used by the bench database's backends between start() and stop()."""

    def __init__(self, url: str) -> None:
        self.url = url

    def start(self) -> None:
        self.before = {p: proc_cpu(p) for p in backend_pids(self.url)}

    def stop(self) -> float:
        after = {p: proc_cpu(p) for p in backend_pids(self.url)}
        return sum(cpu - self.before.get(p, 0.0) for p, cpu in after.items())


def managers(url: str) -> dict[str, tuple[str, uuid.UUID, int]]:
    """A manager per level 1..3 and one at level 6: label -> (email, id, subtree size)."""
    out = {}
    with psycopg.connect(sync_url(url)) as conn:
        tenant_id = conn.execute("SELECT id FROM tenants WHERE slug = 'scope'").fetchone()[0]  # type: ignore[index]
        for depth in (1, 2, 3, 6):
            email = f"m{depth}-0@scope.test"
            uid = conn.execute("SELECT id FROM users WHERE email = %s", (email,)).fetchone()[0]  # type: ignore[index]
            size = conn.execute(
                "WITH RECURSIVE s(u) AS (SELECT %s::uuid UNION SELECT tu.user_id FROM tenant_users tu JOIN s "
                "ON tu.manager_id = s.u WHERE tu.tenant_id = %s) SELECT count(*) FROM s",
                (uid, tenant_id),
            ).fetchone()[0]  # type: ignore[index]
            out[f"level {depth}"] = (email, uid, int(size))
    return out


def bench_list_page(settings: Any, url: str, email: str, requests: int) -> dict[str, float]:
    """The list page through the whole app, in-process; CPU per request."""
    from litestar.testing import TestClient

    from app.server import create_app

    app = create_app(settings)
    with TestClient(app=app, base_url="http://bench.local") as client:
        client.get("/login")
        r = client.post(
            "/login",
            data={
                "email": email,
                "password": MEMBER_PASSWORD,
                "next": "/",
                "_csrf_token": client.cookies["portal_csrf"],
            },
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text[:300]
        page = "/t/scope/p/inventory/inventory/items"
        first = client.get(page)
        assert first.status_code == 200, first.text[:300]
        total = re.search(r"([\d,]+\+?) total", first.text)
        for _ in range(20):  # warm: compiled-statement caches, plugin parse, scope cache
            client.get(page)
        pg = PgCpu(url)
        pg.start()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(requests):
            assert client.get(page).status_code == 200
        app_ms = (time.process_time() - cpu0) * 1000 / requests
        wall_ms = (time.perf_counter() - wall0) * 1000 / requests
        pg_ms = pg.stop() * 1000 / requests
    return {
        "app": app_ms,
        "pg": pg_ms,
        "cpu": app_ms + pg_ms,
        "wall": wall_ms,
        "total": total.group(1) if total else "?",
    }  # type: ignore[dict-item]


async def bench_resolution(
    settings: Any, url: str, people: dict[str, tuple[str, uuid.UUID, int]], requests: int
) -> dict[str, Any]:
    from app.access import scopes
    from app.access.scopes import DataScope, ScopeCache
    from app.audit import Actor
    from app.core.db import make_alchemy_config
    from app.identity import directory
    from app.plugins import runtime
    from app.records.service import ListQuery, RecordService

    config = make_alchemy_config(settings)
    out: dict[str, Any] = {"cached": {}, "uncached": {}, "strategies": {}}
    try:
        async with config.get_session() as s:
            tenant = await directory.get_tenant(s, "scope")
            version = await scopes.current_scope_version(s, tenant.id)
            item = await runtime.entity_in_tenant(s, tenant.id, "inventory", "inventory_item")
            for label, (_email, uid, _size) in people.items():
                cache = ScopeCache()
                # (c) uncached: the member + role-scope query and the recursive subordinate query.
                samples = []
                pg = PgCpu(url)
                pg.start()
                cpu0 = time.process_time()
                for _ in range(UNCACHED_RUNS):
                    cache.clear()
                    start = time.perf_counter()
                    data = await cache.data(s, tenant.id, uid, version)
                    await cache.subtree(s, tenant.id, uid, data)
                    samples.append((time.perf_counter() - start) * 1000)
                app_ms = (time.process_time() - cpu0) * 1000 / UNCACHED_RUNS
                out["uncached"][label] = (
                    app_ms + pg.stop() * 1000 / UNCACHED_RUNS,
                    statistics.median(samples),
                    min(samples),
                )
                # (b) cached: lookup + the SQL condition, as every record-service call does it.
                scope = DataScope(cache, tenant.id, uid, version)
                await scope.condition(s, item)
                n = 2000
                start = time.perf_counter()
                for _ in range(n):
                    await scope.condition(s, item)
                out["cached"][label] = (time.perf_counter() - start) * 1000 / n
                start = time.perf_counter()
                for _ in range(n):
                    cache.peek(tenant.id, uid, version)
                out.setdefault("peek", {})[label] = (time.perf_counter() - start) * 1000 / n
                # (d) list + capped count with each subtree strategy.
                for strategy in scopes.SUBTREE_STRATEGIES:
                    svc = RecordService(
                        s,
                        tenant.id,
                        Actor(uid, "bench"),
                        lambda _p: True,
                        scope=DataScope(cache, tenant.id, uid, version, strategy=strategy),
                    )
                    for _ in range(5):
                        result = await svc.list(item, ListQuery())
                    pg = PgCpu(url)
                    pg.start()
                    calls = max(10, requests // 4)
                    cpu0 = time.process_time()
                    for _ in range(calls):
                        result = await svc.list(item, ListQuery())
                    app_ms = (time.process_time() - cpu0) * 1000 / calls
                    pg_ms = pg.stop() * 1000 / calls
                    out["strategies"][(label, strategy)] = (app_ms, pg_ms, result.total, result.capped)
    finally:
        await config.get_engine().dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/portal_scope_bench")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    from app.core.db import upgrade
    from app.core.settings import load_settings

    url = args.database_url
    ensure_database(url, args.rebuild)
    data_dir = Path(tempfile.mkdtemp(prefix="portal-scope-bench-"))
    settings = load_settings(env_for(url, data_dir))
    upgrade(settings)
    t0 = time.perf_counter()
    asyncio.run(base_setup(settings))
    load_rows(url)
    vacuum(url)
    print(
        f"data ready in {time.perf_counter() - t0:.1f} s: {USERS:,} members in {len(LEVEL_SIZES)} levels, "
        f"{ROWS:,} inventory_item rows",
        file=sys.stderr,
    )
    people = managers(url)
    mid_email, _mid_id, mid_size = people["level 3"]

    page = bench_list_page(settings, url, mid_email, args.requests)
    res = asyncio.run(bench_resolution(settings, url, people, args.requests))
    verdicts = []

    def verdict(value: float, target: float) -> str:
        ok = value <= target
        verdicts.append(ok)
        return "PASS" if ok else "FAIL"

    print(
        f"\n(a) list page, mid-level manager {mid_email} (subtree of {mid_size} members, {page['total']} rows), "
        f"{args.requests} requests"
    )
    print(
        f"    app CPU {page['app']:.2f} ms + PostgreSQL CPU {page['pg']:.2f} ms = {page['cpu']:.2f} ms/request "
        f"(wall {page['wall']:.2f} ms)   target <= {TARGETS['list']:.0f} ms  {verdict(page['cpu'], TARGETS['list'])}"
    )
    print("\n(b) cached resolution: cache lookup + SQL condition per record-service call (lookup alone)")
    for label, ms in res["cached"].items():
        print(
            f"    {label:<8} {ms * 1000:7.1f} µs  ({res['peek'][label] * 1000:.2f} µs)   target <= 100 µs  "
            f"{verdict(ms, TARGETS['cached'])}"
        )
    print(
        f"\n(c) uncached resolution: member + role scopes query, recursive subordinate query ({UNCACHED_RUNS} runs);"
        " CPU = app + PostgreSQL per resolution, wall median / min (wall includes waiting for a CPU)"
    )
    for label, (cpu_ms, wall_ms, wall_min) in res["uncached"].items():
        size = people[label][2]
        print(
            f"    {label:<8} subtree {size:>5} members  CPU {cpu_ms:6.2f} ms  wall {wall_ms:6.2f} / {wall_min:5.2f} ms   "
            f"target <= {TARGETS['uncached']:.0f} ms  {verdict(cpu_ms, TARGETS['uncached'])}"
        )
    print("\n(d) subtree filter strategies, RecordService.list (page 1 + capped count), CPU ms per call")
    print(f"    {'manager':<8} {'members':>7} {'strategy':<8} {'app':>6} {'pg':>6} {'total':>6}  rows")
    for (label, strategy), (app_ms, pg_ms, total, capped) in res["strategies"].items():
        print(
            f"    {label:<8} {people[label][2]:>7} {strategy:<8} {app_ms:6.2f} {pg_ms:6.2f} {app_ms + pg_ms:6.2f}  "
            f"{total}{'+' if capped else ''}"
        )
    print(f"\n{'all targets met' if all(verdicts) else 'some targets missed'}")
    sys.exit(0 if all(verdicts) else 1)


if __name__ == "__main__":
    main()
