"""CSV import throughput: 100,000 inventory items through the record service, in committed batches.

For each database (a fresh SQLite file and a fresh PostgreSQL database), in a process of its own so its
peak RSS is its own: migrate, install and enable the inventory plugin in one tenant with 20 categories,
then import a generated CSV of N rows (`sku,name,quantity,unit_price,category_id`, the category named by
its *name*, as users write it) exactly as the web import's "import the valid rows, skip the rest" mode
does (app.web.records.csv_import: parse, then per batch of BATCH_SIZE rows one savepoint, the batch's
reference lookup, every row through RecordService.insert/update with audit and events, and a commit).
A second pass imports the same file again with `sku` as the key and every quantity changed: N updates.

Prints rows/s per pass, statements per 500-row batch (counted with SQLAlchemy's before_cursor_execute:
deterministic, unlike time on a shared machine), the longest batch (how long one transaction — SQLite's
write lock — was held) and peak RSS (before the import and at its end).

    .venv/bin/python bench/import_bench.py [--rows 100000] [--only sqlite|postgresql]
        [--postgres-url postgresql://postgres@127.0.0.1:5432/portal_import_bench]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CATEGORIES = 20


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_csv(rows: int, bump: int) -> str:
    lines = ["sku,name,quantity,unit_price,category_id"]
    lines += [
        f"B-{n:06d},Item {n},{n % 1000 + bump},{n % 97}.25,Category {n % CATEGORIES}" for n in range(rows)
    ]
    return "\n".join(lines) + "\n"


async def one(url: str, rows: int) -> dict[str, float]:
    import uuid

    import sqlalchemy as sa

    from app.audit import Actor
    from app.core.db import SQLITE_WRITE_LOCK, bind_services, make_alchemy_config, upgrade
    from app.core.models import Tenant
    from app.core.settings import SYSTEM_TENANT_ID, load_settings
    from app.identity import directory
    from app.installs import lifecycle
    from app.plugins import runtime
    from app.plugins.packages import read_folder
    from app.records.importer import BATCH_SIZE, ImportRun
    from app.records.service import RecordService
    from app.server import create_app
    from app.web.records.csv_import import read_csv

    data_dir = Path(tempfile.mkdtemp(prefix="portal-import-bench-"))
    settings = load_settings(
        {"DATABASE_URL": url, "PORTAL_DATA_DIR": str(data_dir), "PORTAL_SECRET_KEY": "bench-secret"}
    )
    await asyncio.to_thread(upgrade, settings)
    app = create_app(settings)
    config = make_alchemy_config(settings)
    bind_services(config, app.state.services)
    actor = Actor(None, "bench@portal.test")
    folder = data_dir / "inventory"
    import shutil

    shutil.copytree(
        ROOT / "plugins" / "inventory", folder, ignore=shutil.ignore_patterns("plugin.wasm", "guest")
    )
    async with config.get_session() as s:
        await lifecycle.upload(s, actor, read_folder(folder), settings, install_now=True)
        tenant = await directory.create_tenant(s, actor, "bench", "Bench")
        await lifecycle.enable(s, actor, tenant.id, "inventory")
        await s.commit()
    async with config.get_session() as s:
        plugins = await runtime.enabled_for(s, tenant.id)
        cats = runtime.find_entity(plugins, "inventory_category")
        svc = RecordService(s, tenant.id, actor, lambda _p: True, hooks=app.state.services.record_hooks)
        for n in range(CATEGORIES):
            await svc.insert(cats, {"name": f"Category {n}", "code": f"C{n}"})
        await s.commit()

    out: dict[str, float] = {"rss_before_mb": rss_mb()}
    for label, key, bump in (("create", None, 0), ("update", "sku", 1)):
        text = make_csv(rows, bump)
        _, parsed, _, _ = read_csv(text, runtime.find_entity(plugins, "inventory_item"))
        del text
        longest = 0.0
        statements = [0]

        def note(*_: object, _seen: list[int] = statements) -> None:
            _seen[0] += 1

        sa.event.listen(config.get_engine().sync_engine, "before_cursor_execute", note)
        started = time.perf_counter()
        async with config.get_session() as s:
            if url.startswith("sqlite"):
                await s.connection(execution_options={SQLITE_WRITE_LOCK: True})
            # As a request does (app.web.context): note the policy versions, so the per-worker caches of
            # enabled plugins, hooks and workflow guards answer without a query per row.
            own = await s.scalar(sa.select(Tenant.policy_version).where(Tenant.id == tenant.id))
            system = await s.scalar(
                sa.select(Tenant.policy_version).where(Tenant.id == uuid.UUID(SYSTEM_TENANT_ID))
            )
            runtime.note_versions(s, tenant.id, (own or 0, system or 0))
            plugins = await runtime.enabled_for(s, tenant.id)
            items = runtime.find_entity(plugins, "inventory_item")
            svc = RecordService(s, tenant.id, actor, lambda _p: True, hooks=app.state.services.record_hooks)
            run = ImportRun(svc, items, key)
            for start in range(0, len(parsed), BATCH_SIZE):
                t0 = time.perf_counter()
                async with s.begin_nested():
                    await run.batch(parsed[start : start + BATCH_SIZE])
                await s.commit()
                if url.startswith("sqlite"):
                    await s.connection(execution_options={SQLITE_WRITE_LOCK: True})
                longest = max(longest, time.perf_counter() - t0)
        took = time.perf_counter() - started
        sa.event.remove(config.get_engine().sync_engine, "before_cursor_execute", note)
        out[f"{label}_statements_per_batch"] = statements[0] / -(-rows // BATCH_SIZE)
        done = run.counts.created if key is None else run.counts.updated
        if done != rows or run.counts.refused:
            raise SystemExit(f"{label}: {run.counts} (errors {list(run.errors.items())[:3]})")
        out[f"{label}_rows_per_s"] = rows / took
        out[f"{label}_seconds"] = took
        out[f"{label}_longest_batch_s"] = longest
        del parsed
    out["rss_peak_mb"] = rss_mb()
    await config.get_engine().dispose()
    return out


def fresh_postgres(url: str) -> str:
    import psycopg

    base, name = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url).rsplit("/", 1)
    if name == "test":
        raise SystemExit("bench: refusing to use the test suite's database 'test'")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/portal_import_bench")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process: one database URL
    args = parser.parse_args()
    if args.one:
        print(json.dumps(asyncio.run(one(args.one, args.rows))))
        return
    targets = []
    if args.only in (None, "sqlite"):
        targets.append(("SQLite", f"sqlite:///{tempfile.mkdtemp(prefix='portal-import-bench-')}/bench.db"))
    if args.only in (None, "postgresql"):
        targets.append(("PostgreSQL", fresh_postgres(args.postgres_url)))
    print(f"{args.rows:,} rows, batches of 500, categories by name; create pass then update-by-key pass")
    print(
        f"{'database':<11} {'create rows/s':>13} {'update rows/s':>13} {'stmts/batch c/u':>15} "
        f"{'longest batch':>13} {'RSS before':>10} {'RSS peak':>9}"
    )
    for name, url in targets:
        child = subprocess.run(
            [sys.executable, __file__, "--one", url, "--rows", str(args.rows)],
            capture_output=True,
            text=True,
            check=False,
        )
        if child.returncode != 0:
            print(child.stdout[-2000:], child.stderr[-4000:], file=sys.stderr)
            raise SystemExit(f"{name}: failed")
        r = json.loads(child.stdout.strip().splitlines()[-1])
        longest = max(r["create_longest_batch_s"], r["update_longest_batch_s"])
        print(
            f"{name:<11} {r['create_rows_per_s']:>13,.0f} {r['update_rows_per_s']:>13,.0f} "
            f"{r['create_statements_per_batch']:>7,.0f}/{r['update_statements_per_batch']:<7,.0f} "
            f"{longest:>12.2f}s {r['rss_before_mb']:>8.0f}MB {r['rss_peak_mb']:>7.0f}MB"
        )


if __name__ == "__main__":
    main()
