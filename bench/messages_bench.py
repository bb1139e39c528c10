"""The header bell's cost: `app.messages.unread_count` (one COUNT per signed-in page) and the first inbox
page, on a messages table of realistic size.

    .venv/bin/python bench/messages_bench.py                       # PostgreSQL, database portal_bench_messages
    .venv/bin/python bench/messages_bench.py --messages 1000000 --rebuild

Loads `--tenants` tenants, `--users` users and `--messages` messages spread over them, plus one heavy
user with `--heavy` messages (a quarter unread), then VACUUM ANALYZE. Prints the plan PostgreSQL picks
for the count and a table of timings (median, p99) with the target: the bell's count ≤ 1 ms median.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from access_bench import bench_settings, ensure_database, log, sync_url

from app import messages
from app.core.db import make_alchemy_config, upgrade

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/portal_bench_messages"
TARGET_COUNT_MS = 1.0
HEAVY_EMAIL = "heavy@bench.test"


def load(
    engine: sa.Engine, args: argparse.Namespace
) -> tuple[uuid.UUID, uuid.UUID, list[tuple[uuid.UUID, uuid.UUID]]]:
    """Bulk-load the rows (or reuse them when the counts match); returns the heavy pair and some others."""
    md = sa.MetaData()
    md.reflect(engine, only=["tenants", "users", "messages"])
    tenants, users, msgs = md.tables["tenants"], md.tables["users"], md.tables["messages"]
    with engine.begin() as conn:
        have = conn.scalar(sa.select(sa.func.count()).select_from(msgs))
        heavy = conn.execute(sa.select(users.c.id).where(users.c.email == HEAVY_EMAIL)).scalar()
        want = args.messages + args.heavy
        if have == want and heavy is not None and not args.rebuild:
            log(f"reusing {have} messages")
        else:
            log(f"loading {want} messages ...")
            conn.execute(msgs.delete())
            conn.execute(users.delete().where(users.c.email.like("%@bench.test")))
            conn.execute(tenants.delete().where(tenants.c.slug.like("bench-%")))
            now = dt.datetime.now(dt.UTC)
            tenant_ids = [uuid.uuid4() for _ in range(args.tenants)]
            conn.execute(
                tenants.insert(),
                [
                    {
                        "id": t,
                        "slug": f"bench-{i}",
                        "name": f"Bench {i}",
                        "is_active": True,
                        "policy_version": 1,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i, t in enumerate(tenant_ids)
                ],
            )
            user_ids = [uuid.uuid4() for _ in range(args.users)]
            conn.execute(
                users.insert(),
                [
                    {
                        "id": u,
                        "email": (HEAVY_EMAIL if i == 0 else f"u{i}@bench.test"),
                        "display_name": f"U{i}",
                        "password_hash": "x",
                        "is_active": True,
                        "language": "en",
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i, u in enumerate(user_ids)
                ],
            )
            rng = random.Random(7)
            home = {u: tenant_ids[i % len(tenant_ids)] for i, u in enumerate(user_ids)}

            def rows(n: int, pick: Any, unread_share: float) -> list[dict[str, Any]]:
                out = []
                for i in range(n):
                    u = pick()
                    out.append(
                        {
                            "id": uuid.uuid4(),
                            "tenant_id": home[u],
                            "user_id": u,
                            "title": f"Task {i}",
                            "body": "Please approve",
                            "link": "/t/x/messages",
                            "source": "workflow",
                            "created_at": now - dt.timedelta(minutes=i),
                            "read_at": None if rng.random() < unread_share else now,
                        }
                    )
                return out

            batch = 20_000
            for start in range(0, args.messages, batch):
                conn.execute(
                    msgs.insert(),
                    rows(
                        min(batch, args.messages - start),
                        lambda: user_ids[rng.randrange(1, len(user_ids))],
                        0.1,
                    ),
                )
            conn.execute(msgs.insert(), rows(args.heavy, lambda: user_ids[0], 0.25))
            heavy = user_ids[0]
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE messages"))
    with engine.connect() as conn:
        pairs = conn.execute(
            sa.select(msgs.c.tenant_id, msgs.c.user_id).where(msgs.c.user_id != heavy).distinct().limit(200)
        ).all()
        heavy_tenant = conn.scalar(sa.select(msgs.c.tenant_id).where(msgs.c.user_id == heavy).limit(1))
        plan = (
            conn.execute(
                sa.text(
                    "EXPLAIN SELECT count(*) FROM messages WHERE tenant_id = :t AND user_id = :u "
                    "AND read_at IS NULL"
                ),
                {"t": heavy_tenant, "u": heavy},
            )
            .scalars()
            .all()
        )
    print("plan of the bell's count:\n  " + "\n  ".join(plan))
    return heavy_tenant, heavy, [(t, u) for t, u in pairs]


async def measure(
    settings: Any, heavy: tuple[uuid.UUID, uuid.UUID], others: list[tuple[uuid.UUID, uuid.UUID]], samples: int
) -> list[tuple[str, list[float], float | None]]:
    config = make_alchemy_config(settings)
    out: list[tuple[str, list[float], float | None]] = []
    try:
        async with config.get_session() as s:
            for name, call, target in (
                ("unread_count, heavy user", lambda i: messages.unread_count(s, *heavy), TARGET_COUNT_MS),
                (
                    "unread_count, typical users",
                    lambda i: messages.unread_count(s, *others[i % len(others)]),
                    TARGET_COUNT_MS,
                ),
                ("list_for page 1 (25), heavy user", lambda i: messages.list_for(s, *heavy, limit=25), None),
            ):
                for i in range(20):
                    await call(i)  # warm the connection and the plan cache
                times = []
                for i in range(samples):
                    t0 = time.perf_counter()
                    await call(i)
                    times.append((time.perf_counter() - t0) * 1000)
                out.append((name, times, target))
    finally:
        await config.get_engine().dispose()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--database-url", default=DEFAULT_URL)
    ap.add_argument("--tenants", type=int, default=100)
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--messages", type=int, default=300_000)
    ap.add_argument("--heavy", type=int, default=20_000, help="messages of the one heavy user")
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args()
    settings = bench_settings(args.database_url, tempfile.mkdtemp(prefix="messages-bench-"))
    if sync_url(settings).database == "test":
        raise SystemExit("messages_bench: refusing the test suite's database")
    ensure_database(settings)
    upgrade(settings)
    engine = sa.create_engine(sync_url(settings))
    try:
        heavy_tenant, heavy_user, others = load(engine, args)
    finally:
        engine.dispose()
    results = asyncio.run(measure(settings, (heavy_tenant, heavy_user), others, args.samples))
    print(f"\n{'what':34} {'samples':>7} {'median':>9} {'p99':>9} {'target':>9}  result")
    ok = True
    for name, times, target in results:
        med = statistics.median(times)
        p99 = sorted(times)[int(len(times) * 0.99) - 1]
        verdict = "info" if target is None else ("PASS" if med <= target else "FAIL")
        ok &= verdict != "FAIL"
        print(
            f"{name:34} {len(times):>7} {med:>7.3f}ms {p99:>7.3f}ms "
            f"{(f'{target:.1f}ms' if target else '-'):>9}  {verdict}"
        )
    print("\nall targets met" if ok else "\nSOME TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
