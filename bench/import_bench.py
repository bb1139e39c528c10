"""CSV import throughput: 100,000 inventory items imported by a background import job, as the web
import's "Import the valid rows, skip the rest" runs them (app.records.import_jobs).

For each database (a fresh SQLite file and a fresh PostgreSQL database), in a process of its own so its
peak RSS is its own: migrate, install and enable the inventory plugin in one tenant with 20 categories,
then import a generated CSV of N rows (`sku,name,quantity,unit_price,category_id`, the category named by
its *name*, as users write it): the file is stored in an import job and `import_jobs.run` reads it a
batch at a time (one transaction per BATCH_SIZE rows: the batch's reference lookup, every row checked by
the record service's rules, the rows, audit and events written together, the job's progress). A second
pass imports the same file again with `sku` as the key and every quantity changed: N updates.

Prints per pass rows/s (wall time, including the pauses between batches that leave SQLite's write lock
to other writers, and without them), statements per 500-row batch (counted with SQLAlchemy's
before_cursor_execute: deterministic, unlike time on a shared machine), the longest transaction (how
long one batch held SQLite's write lock) and peak RSS (before the import and at its end; the process's
high-water mark), and the Python memory (tracemalloc peak) of reading the file's rows a batch at a time
against holding them all, as the import did before it streamed.

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


def parse_memory(text: bytes, entity: object) -> dict[str, float]:
    """tracemalloc peak (MB) of the file's rows held all at once, and read a batch at a time."""
    import io
    import tracemalloc

    from app.records.csv_source import CsvFile
    from app.records.importer import BATCH_SIZE

    out = {}
    for label in ("all", "batches"):
        tracemalloc.start()
        source = CsvFile(io.BytesIO(text), entity)  # type: ignore[arg-type]
        if label == "all":
            held = [row for batch in source.batches(BATCH_SIZE) for row in batch]
            assert len(held) == source.rows_read
            del held
        else:
            for _batch in source.batches(BATCH_SIZE):
                pass
        out[f"parse_{label}_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return out


async def one(url: str, rows: int) -> dict[str, float]:
    import shutil

    import sqlalchemy as sa

    from app.audit import Actor
    from app.core.db import bind_services, make_alchemy_config, upgrade
    from app.core.import_jobs import ImportJob
    from app.core.settings import load_settings
    from app.identity import directory
    from app.installs import lifecycle
    from app.plugins import runtime
    from app.plugins.packages import read_folder
    from app.records import import_jobs
    from app.records.importer import BATCH_SIZE
    from app.records.service import RecordService
    from app.server import create_app

    data_dir = Path(tempfile.mkdtemp(prefix="portal-import-bench-"))
    settings = load_settings(
        {"DATABASE_URL": url, "PORTAL_DATA_DIR": str(data_dir), "PORTAL_SECRET_KEY": "bench-secret"}
    )
    await asyncio.to_thread(upgrade, settings)
    app = create_app(settings)
    config = make_alchemy_config(settings)
    bind_services(config, app.state.services)
    system = Actor(None, "bench@portal.test")
    folder = data_dir / "inventory"
    shutil.copytree(
        ROOT / "plugins" / "inventory", folder, ignore=shutil.ignore_patterns("plugin.wasm", "guest")
    )
    async with config.get_session() as s:
        await lifecycle.upload(s, system, read_folder(folder), settings, install_now=True)
        tenant = await directory.create_tenant(s, system, "bench", "Bench")
        await lifecycle.enable(s, system, tenant.id, "inventory")
        user = await directory.create_user(s, system, "importer@bench.test", "bench-password-1")
        await s.commit()
    actor = Actor(user.id, "importer@bench.test")
    async with config.get_session() as s:
        plugins = await runtime.enabled_for(s, tenant.id)
        cats = runtime.find_entity(plugins, "inventory_category")
        svc = RecordService(s, tenant.id, actor, lambda _p: True, hooks=app.state.services.record_hooks)
        for n in range(CATEGORIES):
            await svc.insert(cats, {"name": f"Category {n}", "code": f"C{n}"})
        await s.commit()
    items = runtime.find_entity(plugins, "inventory_item")
    who = import_jobs.Importer(tenant.id, actor, lambda _p: True, None, hooks=app.state.services.record_hooks)
    sqlite = url.startswith("sqlite")
    pause = import_jobs.SQLITE_PAUSE if sqlite else import_jobs.POSTGRES_PAUSE

    out: dict[str, float] = {"rss_before_mb": rss_mb()}
    engine = config.get_engine().sync_engine
    for label, key, bump in (("create", None, 0), ("update", "sku", 1)):
        raw = make_csv(rows, bump).encode()
        async with config.get_session() as s:
            job = await import_jobs.create(s, who, "inventory_item", "/bench", raw, key, "bench.csv")
            job.status = "running"
            await s.commit()
        del raw
        statements = [0]
        held: dict[int, float] = {}
        longest = [0.0]

        def note(*_: object, _seen: list[int] = statements) -> None:
            _seen[0] += 1

        def began(conn: sa.Connection, held: dict[int, float] = held) -> None:
            held[id(conn)] = time.perf_counter()

        def ended(conn: sa.Connection, held: dict[int, float] = held, longest: list[float] = longest) -> None:
            start = held.pop(id(conn), None)
            if start is not None:
                longest[0] = max(longest[0], time.perf_counter() - start)

        listeners = (("before_cursor_execute", note), ("begin", began), ("commit", ended))
        for name, fn in listeners:
            sa.event.listen(engine, name, fn)
        started = time.perf_counter()
        await import_jobs.run(config.get_session, job.id, who)
        took = time.perf_counter() - started
        for name, fn in listeners:
            sa.event.remove(engine, name, fn)
        async with config.get_session() as s:
            done = await s.get(ImportJob, job.id)
            assert done is not None
        batches = -(-rows // BATCH_SIZE)
        out[f"{label}_statements_per_batch"] = statements[0] / batches
        wanted = done.created if key is None else done.updated
        if done.status != "done" or wanted != rows or done.refused:
            raise SystemExit(f"{label}: {done.status} {done.problem} {wanted} {done.refused_csv[:500]}")
        out[f"{label}_rows_per_s"] = rows / took
        out[f"{label}_rows_per_s_unpaused"] = rows / (took - batches * pause)
        out[f"{label}_seconds"] = took
        out[f"{label}_longest_batch_s"] = longest[0]
        out[f"rss_after_{label}_mb"] = rss_mb()
    out["rss_peak_mb"] = rss_mb()
    out |= parse_memory(make_csv(rows, 0).encode(), items)  # last: its held rows are not the import's RSS
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
    print("rows/s: wall time (the import job's pauses between batches included) / without the pauses")
    print(
        f"{'database':<11} {'create rows/s':>15} {'update rows/s':>15} {'stmts/batch c/u':>15} "
        f"{'longest txn':>11} {'RSS before':>10} {'RSS peak':>9} {'rows held/batched':>18}"
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
        create = f"{r['create_rows_per_s']:,.0f}/{r['create_rows_per_s_unpaused']:,.0f}"
        update = f"{r['update_rows_per_s']:,.0f}/{r['update_rows_per_s_unpaused']:,.0f}"
        print(
            f"{name:<11} {create:>15} {update:>15} "
            f"{r['create_statements_per_batch']:>7,.0f}/{r['update_statements_per_batch']:<7,.0f} "
            f"{longest:>10.2f}s {r['rss_before_mb']:>8.0f}MB {r['rss_peak_mb']:>7.0f}MB "
            f"{r['parse_all_mb']:>8.0f}MB/{r['parse_batches_mb']:.1f}MB"
        )


if __name__ == "__main__":
    main()
