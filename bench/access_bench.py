"""Access-control benchmark: compiled permission sets vs. the database and plain Casbin.

    .venv/bin/python bench/access_bench.py [--database-url URL] [--tenants 1000 --roles 10
        --perms 50 --users 20000] [--rebuild] [--skip-plain]

Builds (once; reused on later runs) a portal database with TENANTS tenants, ROLES roles per tenant,
PERMS grants per role (Casbin `p` lines, exactly as app.access.policy writes them) and USERS users
spread over the tenants (one role per user per tenant, some users in two tenants, a few platform
staff in the system tenant). Then measures:

  (a) PermissionSet.allows() on a warm cached user          target: median <= 50 µs
  (b) compute_access(): one cache rebuild on the database     target: median <= 5 ms
  (c) PermissionCache.access() on a hit (the per-request path)
  (i) the per-request tenant + system policy_version query (what invalidation costs)
  (d) a plain casbin.Enforcer holding every policy line, enforce() per check (the slow path)

Exit status 1 when a target fails. PostgreSQL by default, in its own database `portal_bench`
(created if missing); never point it at the test suite's database.
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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession  # noqa: E402

from app.access.cache import PermissionCache, compute_access  # noqa: E402
from app.access.permissions import BASE_PERMISSIONS, PermissionDef, PermissionSet, register_permissions  # noqa: E402
from app.access.policy import MODEL_PATH, role_subject, user_subject  # noqa: E402
from app.core.models import CasbinRule, Membership, Permission, Role, Tenant, User  # noqa: E402
from app.core.settings import SYSTEM_TENANT_ID, Settings, load_settings  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/portal_bench"
SYSTEM_UUID = uuid.UUID(SYSTEM_TENANT_ID)
TENANT_SLUG = "bench-"  # bench tenants: bench-00000 ...
USER_EMAIL = "bench-user-"  # bench users: bench-user-000000@bench.test
ADMIN_EMAIL = "admin@portal-bench.test"
USER_PASSWORD = "bench-user-password"
SYNTH_TABLES = 60  # db.t000.* ... registered by a pretend plugin
SYNTH_PAGES = 20  # ui.p00.view ...
VERBS = ("select", "insert", "update", "delete")
TARGET_ALLOWS_US = 50.0
TARGET_REBUILD_MS = 5.0


# --- set-up --------------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def bench_settings(url: str, data_dir: str) -> Settings:
    return load_settings(
        {
            "DATABASE_URL": url,
            "PORTAL_DATA_DIR": data_dir,
            "PORTAL_SECRET_KEY": "bench-not-a-secret",
            "PORTAL_ADMIN_EMAIL": ADMIN_EMAIL,
            "PORTAL_ADMIN_PASSWORD": "bench-admin-password",
        }
    )


def sync_url(settings: Settings) -> sa.URL:
    return make_url(settings.database_url).set(
        drivername="postgresql+psycopg" if not settings.is_sqlite else "sqlite"
    )


def ensure_database(settings: Settings) -> None:
    """CREATE DATABASE on PostgreSQL when missing (connecting to the server's `postgres` database)."""
    if settings.is_sqlite:
        return
    url = sync_url(settings)
    name = url.database
    if not name:
        raise SystemExit("access_bench: the database URL names no database")
    if name == "test":
        raise SystemExit(
            "access_bench: refusing to load 500k rows into `test` (the test suite's database); "
            "use e.g. postgresql://postgres@127.0.0.1:5432/portal_bench"
        )
    last_error: Exception | None = None
    for maint in ("postgres", "template1"):
        engine = sa.create_engine(url.set(database=maint), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                exists = conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
                if not exists:
                    conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
                    log(f"created database {name}")
                return
        except sa.exc.OperationalError as exc:
            last_error = exc
        finally:
            engine.dispose()
    raise SystemExit(f"access_bench: cannot reach PostgreSQL to create {name}: {last_error}")


@dataclass
class Shape:
    tenants: int
    roles: int
    perms: int
    users: int

    @property
    def p_lines(self) -> int:
        return self.tenants * self.roles * self.perms

    def memberships(self) -> list[tuple[int, int]]:
        """(user index, tenant index) pairs; tenant index -1 is the system tenant."""
        out = [(u, u % self.tenants) for u in range(self.users)]
        if self.tenants > 1:  # every 5th user also belongs to a second tenant
            out += [
                (u, (u * 7 + 3) % self.tenants)
                for u in range(0, self.users, 5)
                if (u * 7 + 3) % self.tenants != u % self.tenants
            ]
        out += [(u, -1) for u in range(0, self.users, 1000)]  # platform staff
        return out


def synthetic_permissions() -> list[PermissionDef]:
    defs = [
        PermissionDef(f"db.t{t:03d}.{v}", f"{v} t{t:03d}", "bench")
        for t in range(SYNTH_TABLES)
        for v in VERBS
    ]
    defs += [PermissionDef(f"ui.p{p:02d}.view", f"show page {p}", "bench") for p in range(SYNTH_PAGES)]
    return defs


def role_grants(rng: random.Random, role_index: int, perms: int, codes: Sequence[str]) -> list[str]:
    """PERMS distinct grant patterns: mostly exact codes, some table wildcards, now and then ui.* or *."""
    out: list[str] = []
    if role_index == 0:
        out.append("*")  # the tenant's Admin
    elif role_index % 4 == 3:
        out.append("ui.*")
    tables = rng.sample(range(SYNTH_TABLES), k=min(SYNTH_TABLES, 5))
    out += [f"db.t{t:03d}.*" for t in tables][: max(0, perms - len(out))]
    pool = [c for c in codes if not any(c.startswith(f"db.t{t:03d}.") for t in tables)]
    out += rng.sample(pool, k=min(len(pool), max(0, perms - len(out))))
    return out[:perms]


async def bench_counts(session: AsyncSession) -> tuple[int, int, int, int]:
    tenants = await session.scalar(
        sa.select(sa.func.count()).select_from(Tenant).where(Tenant.slug.like(f"{TENANT_SLUG}%"))
    )
    users = await session.scalar(
        sa.select(sa.func.count()).select_from(User).where(User.email.like(f"{USER_EMAIL}%"))
    )
    members = await session.scalar(
        sa.select(sa.func.count())
        .select_from(Membership)
        .join(User, User.id == Membership.user_id)
        .where(User.email.like(f"{USER_EMAIL}%"))
    )
    bench_ids = sa.select(sa.cast(Tenant.id, sa.String)).where(Tenant.slug.like(f"{TENANT_SLUG}%"))
    lines = await session.scalar(
        sa.select(sa.func.count())
        .select_from(CasbinRule)
        .where(CasbinRule.ptype == "p", CasbinRule.v1.in_(bench_ids))
    )
    return int(tenants or 0), int(users or 0), int(members or 0), int(lines or 0)


async def drop_bench_data(session: AsyncSession) -> None:
    bench_tenants = sa.select(Tenant.id).where(Tenant.slug.like(f"{TENANT_SLUG}%"))
    bench_roles = sa.select(Role.id).where(Role.tenant_id.in_(bench_tenants))
    # Lines of bench roles wherever they are (subjects "role:<id>"), then memberships, roles, tenants, users.
    await session.execute(
        sa.text(
            "DELETE FROM casbin_rule WHERE ptype = 'p' AND v1 IN "
            "(SELECT CAST(id AS VARCHAR) FROM tenants WHERE slug LIKE :s)"
        ),
        {"s": f"{TENANT_SLUG}%"},
    )
    bench_users = sa.select(User.id).where(User.email.like(f"{USER_EMAIL}%"))
    await session.execute(sa.delete(Membership).where(Membership.user_id.in_(bench_users)))
    await session.execute(sa.delete(Membership).where(Membership.tenant_id.in_(bench_tenants)))
    await session.execute(sa.delete(Role).where(Role.id.in_(bench_roles)))
    await session.execute(sa.delete(Tenant).where(Tenant.slug.like(f"{TENANT_SLUG}%")))
    await session.execute(sa.delete(User).where(User.email.like(f"{USER_EMAIL}%")))


def build_rows(
    shape: Shape, system_member_role: uuid.UUID, password_hash: str
) -> dict[str, list[tuple[Any, ...]]]:
    rng = random.Random(20240601)
    now = dt.datetime.now(dt.UTC)
    codes = [d.code for d in BASE_PERMISSIONS if d.scope == "tenant"] + [
        d.code for d in synthetic_permissions()
    ]
    tenants, roles, lines, users, members = [], [], [], [], []
    tenant_roles: list[list[uuid.UUID]] = []
    for t in range(shape.tenants):
        tid = uuid.uuid4()
        tenants.append((tid, f"{TENANT_SLUG}{t:05d}", f"Bench tenant {t}", True, 1, now, now))
        ids = []
        for r in range(shape.roles):
            rid = uuid.uuid4()
            ids.append(rid)
            name, builtin, desc = (
                ("Admin", "admin", "All permissions in this tenant")
                if r == 0
                else ("Member", "member", "Read-only access to business data")
                if r == 1
                else (f"Role {r}", None, f"Bench role {r}")
            )
            roles.append((rid, tid, name, desc, builtin, now, now))
            subject, domain = role_subject(rid), str(tid)
            lines += [
                (uuid.uuid4(), "p", subject, domain, p) for p in role_grants(rng, r, shape.perms, codes)
            ]
        tenant_roles.append(ids)
    tenant_ids = [row[0] for row in tenants]
    user_ids = [uuid.uuid4() for _ in range(shape.users)]
    for u, uid in enumerate(user_ids):
        users.append(
            (uid, f"{USER_EMAIL}{u:06d}@bench.test", f"Bench user {u}", password_hash, True, "en", now, now)
        )
    for u, t in shape.memberships():
        if t < 0:
            members.append((uuid.uuid4(), SYSTEM_UUID, user_ids[u], system_member_role, now, now))
        else:
            members.append((uuid.uuid4(), tenant_ids[t], user_ids[u], rng.choice(tenant_roles[t]), now, now))
    return {"tenants": tenants, "roles": roles, "casbin_rule": lines, "users": users, "tenant_users": members}


COLUMNS = {
    "tenants": ("id", "slug", "name", "is_active", "policy_version", "created_at", "updated_at"),
    "roles": ("id", "tenant_id", "name", "description", "builtin", "created_at", "updated_at"),
    "casbin_rule": ("id", "ptype", "v0", "v1", "v2"),
    "users": (
        "id",
        "email",
        "display_name",
        "password_hash",
        "is_active",
        "language",
        "created_at",
        "updated_at",
    ),
    "tenant_users": ("id", "tenant_id", "user_id", "role_id", "created_at", "updated_at"),
}


def bulk_load(settings: Settings, rows: dict[str, list[tuple[Any, ...]]]) -> None:
    order = ["tenants", "users", "roles", "tenant_users", "casbin_rule"]
    if settings.is_sqlite:
        engine = sa.create_engine(sync_url(settings))
        meta = {
            "tenants": Tenant,
            "users": User,
            "roles": Role,
            "tenant_users": Membership,
            "casbin_rule": CasbinRule,
        }
        with engine.begin() as conn:
            for table in order:
                cols = COLUMNS[table]
                data = [dict(zip(cols, r, strict=True)) for r in rows[table]]
                for i in range(0, len(data), 20_000):
                    conn.execute(sa.insert(meta[table].__table__), data[i : i + 20_000])
        engine.dispose()
        return
    import psycopg

    url = sync_url(settings).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url) as conn:
        with conn.cursor() as cur:
            for table in order:
                cols = COLUMNS[table]
                with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
                    for row in rows[table]:
                        copy.write_row(row)
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE")


async def prepare(settings: Settings, shape: Shape, rebuild: bool) -> str:
    from app import bootstrap
    from app.core.db import make_alchemy_config
    from app.identity.passwords import hash_password

    config = make_alchemy_config(settings)
    try:
        async with config.get_session() as session:
            await bootstrap.ensure_base(session, settings)
            await register_permissions(session, synthetic_permissions())
            await session.commit()
            have = await bench_counts(session)
            want = (shape.tenants, shape.users, len(shape.memberships()), shape.p_lines)
            if have == want and not rebuild:
                return "reused"
            if any(have):
                log(f"dropping bench data (have tenants/users/memberships/lines {have}, want {want})")
                await drop_bench_data(session)
                await session.commit()
            system_member = await session.scalar(
                sa.select(Role.id).where(Role.tenant_id == SYSTEM_UUID, Role.builtin == "member")
            )
            assert system_member is not None
    finally:
        await config.get_engine().dispose()
    t0 = time.perf_counter()
    rows = build_rows(shape, system_member, hash_password(USER_PASSWORD))
    log(
        f"generated {sum(len(v) for v in rows.values()):,} rows in {time.perf_counter() - t0:.1f} s; loading ..."
    )
    t1 = time.perf_counter()
    await asyncio.to_thread(bulk_load, settings, rows)
    return f"built in {time.perf_counter() - t0:.1f} s (load {time.perf_counter() - t1:.1f} s)"


# --- measuring -----------------------------------------------------------------------------------


@dataclass
class Row:
    label: str
    samples: int
    ns: list[int]
    target: str = ""
    ok: bool | None = None
    note: str = ""

    def q(self, frac: float) -> float:
        s = sorted(self.ns)
        return s[min(len(s) - 1, int(frac * len(s)))]


def fmt_ns(ns: float) -> str:
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.2f} µs"
    if ns < 1_000_000_000:
        return f"{ns / 1_000_000:.2f} ms"
    return f"{ns / 1_000_000_000:.2f} s"


def timer_overhead() -> int:
    pc = time.perf_counter_ns
    samples = []
    for _ in range(20_000):
        t0 = pc()
        samples.append(pc() - t0)
    return int(statistics.median(samples))


def probes_for(pset: PermissionSet, codes: Sequence[str], rng: random.Random) -> list[str]:
    """Permission strings a request would check: exact hits, wildcard hits, misses, platform codes, junk."""
    exact = sorted(
        {g.pattern for g in (*pset.tenant_grants, *pset.system_grants) if not g.pattern.endswith("*")}
    )
    wild = [g.pattern for g in pset.tenant_grants if g.pattern.endswith("*") and g.pattern.startswith("db.t")]
    via_wild = [w[:-1] + v for w in wild for v in VERBS]
    platform = sorted(pset.platform_codes)
    junk = [f"db.nosuch{i}.select" for i in range(40)] + [f"plugin:x{i}" for i in range(20)]
    probes = exact + via_wild + list(codes) + platform + junk
    rng.shuffle(probes)
    return probes


def measure_allows(
    pset_factory: Callable[[], PermissionSet], probes: list[str], calls: int
) -> tuple[Row, Row, Row, int]:
    pc = time.perf_counter_ns
    # First call of each string on a freshly compiled set (memo miss), as right after a rebuild.
    cold: list[int] = []
    for _ in range(max(1, 20_000 // len(probes))):
        ps = pset_factory()
        allows = ps.allows
        for p in probes:
            t0 = pc()
            allows(p)
            cold.append(pc() - t0)
    ps = pset_factory()
    allows = ps.allows
    for p in probes:
        allows(p)
    hits = sum(allows(p) for p in probes)
    warm: list[int] = []
    n = len(probes)
    for i in range(calls):
        p = probes[i % n]
        t0 = pc()
        allows(p)
        warm.append(pc() - t0)
    t0 = pc()
    for i in range(calls):
        allows(probes[i % n])
    batch = (pc() - t0) / calls
    return (
        Row("(a) PermissionSet.allows, warm user", calls, warm, f"median ≤ {TARGET_ALLOWS_US:.0f} µs"),
        Row("    allows, first call after rebuild", len(cold), cold),
        Row("    allows, tight loop (no timer)", calls, [int(batch)], note="mean per call"),
        hits,
    )


Probe = tuple[str, str, str, bool]  # Casbin request (sub, dom, obj) and the compiled set's answer


async def measure(
    settings: Settings, shape: Shape, args: argparse.Namespace, plain_probes: list[Probe]
) -> list[Row]:
    from app.core.db import make_alchemy_config
    from app.web.context import _tenant_pair

    rng = random.Random(7)
    rows: list[Row] = []
    pc = time.perf_counter_ns
    config = make_alchemy_config(settings)
    try:
        async with config.get_session() as session:
            pairs = (
                await session.execute(
                    sa.select(Membership.user_id, Membership.tenant_id)
                    .join(User, User.id == Membership.user_id)
                    .where(User.email.like(f"{USER_EMAIL}%"), Membership.tenant_id != SYSTEM_UUID)
                )
            ).all()
            staff = {
                u
                for (u,) in (
                    await session.execute(
                        sa.select(Membership.user_id).where(Membership.tenant_id == SYSTEM_UUID)
                    )
                ).all()
            }
            versions = {
                t: v for t, v in (await session.execute(sa.select(Tenant.id, Tenant.policy_version))).all()
            }
            codes = list((await session.scalars(sa.select(Permission.code))).all())
            sample = rng.sample(pairs, k=min(len(pairs), args.rebuilds))
            # Make sure some platform staff (two roles, two domains) are in the sample.
            sample += [p for p in pairs if p[0] in staff][:10]

            # (b) rebuilds
            for uid, tid in sample[:30]:  # warm the pool, the statement cache and PostgreSQL's buffers
                await compute_access(session, uid, tid)
            rebuild_ns, grants = [], []
            for uid, tid in sample:
                t0 = pc()
                acc = await compute_access(session, uid, tid)
                rebuild_ns.append(pc() - t0)
                grants.append(len(acc.permissions.tenant_grants) + len(acc.permissions.system_grants))
            await session.rollback()

            # (a) allows on a warm user: one with wildcard grants and a role in the system tenant too.
            uid, tid = next(((u, t) for u, t in sample if u in staff), sample[0])
            acc = await compute_access(session, uid, tid)
            base = acc.permissions

            def fresh() -> PermissionSet:
                return PermissionSet(base.tenant_grants, base.system_grants, base.platform_codes)

            probes = probes_for(base, codes, rng)
            overhead = timer_overhead()
            warm, cold, batch, hits = measure_allows(fresh, probes, args.allows_calls)
            warm.ok = warm.q(0.5) <= TARGET_ALLOWS_US * 1000
            warm.note = f"{len(probes)} strings, {hits} allowed; timer ≈{overhead} ns incl."
            cold.note = "memo miss"
            rows += [warm, cold, batch]

            rebuild = Row(
                "(b) compute_access (cache rebuild)",
                len(rebuild_ns),
                rebuild_ns,
                f"median ≤ {TARGET_REBUILD_MS:.0f} ms",
                note=f"{len(sample)} users, avg {statistics.mean(grants):.0f} grants",
            )
            rebuild.ok = rebuild.q(0.5) <= TARGET_REBUILD_MS * 1_000_000
            rows.append(rebuild)

            # (c) PermissionCache.access on a hit, cycling over many cached users.
            cache = PermissionCache()
            hot = sample[:200]
            key = {(u, t): (versions[t], versions[SYSTEM_UUID]) for u, t in hot}
            for u, t in hot:
                await cache.access(session, u, t, key[(u, t)])
            before = cache.rebuilds
            hit_ns = []
            for i in range(args.hit_calls):
                u, t = hot[i % len(hot)]
                v = key[(u, t)]
                t0 = pc()
                await cache.access(session, u, t, v)
                hit_ns.append(pc() - t0)
            assert cache.rebuilds == before, "hits must not rebuild"
            rows.append(
                Row("(c) PermissionCache.access, hit", len(hit_ns), hit_ns, note=f"{len(hot)} cached users")
            )
            hit_check = []
            for i in range(args.hit_calls // 2):
                u, t = hot[i % len(hot)]
                p = probes[i % len(probes)]
                t0 = pc()
                (await cache.access(session, u, t, key[(u, t)])).permissions.allows(p)
                hit_check.append(pc() - t0)
            rows.append(Row("    hit + allows()", len(hit_check), hit_check, note="guard's in-process work"))

            # (i) the per-request query that makes invalidation work across workers.
            slugs = [f"{TENANT_SLUG}{rng.randrange(shape.tenants):05d}" for _ in range(args.version_queries)]
            for s in slugs[:20]:
                await _tenant_pair(session, s)
            q_ns = []
            for s in slugs:
                t0 = pc()
                await _tenant_pair(session, s)
                q_ns.append(pc() - t0)
            session.expunge_all()
            rows.append(
                Row("(i) tenant + system version query", len(q_ns), q_ns, note="once per request, by slug")
            )

            # Requests for (d), with the compiled answer to compare: members of the last tenant, whose
            # lines sit at the end of Casbin's policy list; one permission their role grants, one it does not.
            last = await session.scalar(
                sa.select(Tenant.id)
                .where(Tenant.slug.like(f"{TENANT_SLUG}%"))
                .order_by(Tenant.slug.desc())
                .limit(1)
            )
            members = (
                await session.scalars(
                    sa.select(Membership.user_id)
                    .where(Membership.tenant_id == last)
                    .order_by(Membership.user_id)
                    .limit(2)
                )
            ).all()
            for uid in members:
                perms = (await compute_access(session, uid, last)).permissions
                granted = next(
                    (
                        g.pattern
                        for g in perms.tenant_grants
                        if not g.pattern.endswith("*") and g.pattern not in perms.platform_codes
                    ),
                    "db.t000.select",
                )
                for perm in (granted, "db.nosuch.select"):
                    plain_probes.append((user_subject(uid), str(last), perm, perms.allows(perm)))
    finally:
        await config.get_engine().dispose()
    return rows


def plain_casbin(settings: Settings, args: argparse.Namespace, probes: list[Probe]) -> list[Row]:
    """Every p line and every membership in one casbin.Enforcer, as a naive integration would do."""
    import casbin

    engine = sa.create_engine(sync_url(settings))
    t0 = time.perf_counter()
    with engine.connect() as conn:
        p_lines = [
            [a, b, c]
            for a, b, c in conn.execute(sa.text("SELECT v0, v1, v2 FROM casbin_rule WHERE ptype = 'p'"))
        ]
        g_lines = [
            [user_subject(u), role_subject(r), str(t)]
            for u, r, t in conn.execute(
                sa.select(Membership.user_id, Membership.role_id, Membership.tenant_id)
            )
        ]
    engine.dispose()
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    enforcer = casbin.Enforcer(str(MODEL_PATH))
    model = enforcer.get_model()
    # model.add_policy() checks for duplicates with a list scan (quadratic); append like an adapter load.
    assertion = model["p"]["p"]
    assertion.policy = p_lines
    assertion.policy_map = {",".join(r): i for i, r in enumerate(p_lines)}
    model["g"]["g"].policy = g_lines
    enforcer.build_role_links()
    load_s = time.perf_counter() - t0
    log(
        f"plain Casbin: read {len(p_lines):,} p + {len(g_lines):,} g lines in {read_s:.1f} s, loaded in {load_s:.1f} s"
    )
    ns: list[int] = []
    allowed = disagree = 0
    deadline = time.perf_counter() + args.plain_budget
    for sub, dom, obj, expected in probes[: args.plain_samples]:
        t0 = time.perf_counter_ns()
        got = bool(enforcer.enforce(sub, dom, obj))
        ns.append(time.perf_counter_ns() - t0)
        allowed += got
        disagree += got != expected
        if time.perf_counter() > deadline:
            break
    agree = "agrees with compiled sets" if not disagree else f"DISAGREES with compiled sets on {disagree}"
    return [
        Row(
            f"(d) plain casbin.Enforcer.enforce, {len(p_lines) // 1000}k lines",
            len(ns),
            ns,
            ok=None if not disagree else False,
            note=f"{allowed}/{len(ns)} allowed, {agree}; load {read_s + load_s:.1f} s",
        )
    ]


def print_table(rows: list[Row], header: str) -> None:
    print()
    print(header)
    print()
    cols = ("measurement", "n", "median", "p99", "mean", "target", "result", "notes")
    lines = []
    for r in rows:
        if r.samples == 0 or not r.ns:
            continue
        one = len(r.ns) == 1
        lines.append(
            (
                r.label,
                f"{r.samples:,}",
                fmt_ns(r.q(0.5)),
                "" if one else fmt_ns(r.q(0.99)),
                fmt_ns(statistics.mean(r.ns)),
                r.target or "—",
                "PASS" if r.ok else "FAIL" if r.ok is False else "info",
                r.note,
            )
        )
    widths = [max(len(c), *(len(line[i]) for line in lines)) for i, c in enumerate(cols)]
    fmt = "  ".join(f"{{:{'<' if i in (0, 5, 7) else '>'}{w}}}" for i, w in enumerate(widths))
    print(fmt.format(*cols))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print(fmt.format(*line))
    print()


def main(argv: Iterable[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--database-url", default=DEFAULT_URL, help=f"default {DEFAULT_URL} (created if missing)")
    ap.add_argument("--tenants", type=int, default=1000)
    ap.add_argument("--roles", type=int, default=10)
    ap.add_argument("--perms", type=int, default=50, help="grants (p lines) per role")
    ap.add_argument("--users", type=int, default=20000)
    ap.add_argument("--rebuild", action="store_true", help="drop the bench data and build it again")
    ap.add_argument("--skip-plain", action="store_true", help="skip the plain-Casbin comparison (d)")
    ap.add_argument("--plain-samples", type=int, default=4, help="enforce() calls for (d)")
    ap.add_argument("--plain-budget", type=float, default=60.0, help="stop (d) after this many seconds")
    ap.add_argument("--rebuilds", type=int, default=500, help="compute_access samples for (b)")
    ap.add_argument("--allows-calls", type=int, default=200_000)
    ap.add_argument("--hit-calls", type=int, default=50_000)
    ap.add_argument("--version-queries", type=int, default=300)
    args = ap.parse_args(list(argv) if argv is not None else None)
    if args.roles < 2 or args.tenants < 1 or args.users < 1 or args.perms < 1:
        ap.error("need at least 1 tenant, 2 roles, 1 permission and 1 user")

    from app.core.db import upgrade

    started = time.perf_counter()
    shape = Shape(args.tenants, args.roles, args.perms, args.users)
    with tempfile.TemporaryDirectory(prefix="portal-bench-") as data_dir:
        settings = bench_settings(args.database_url, data_dir)
        ensure_database(settings)
        upgrade(settings)
        state = asyncio.run(prepare(settings, shape, args.rebuild))
        probes: list[Probe] = []
        rows = asyncio.run(measure(settings, shape, args, probes))
        if not args.skip_plain:
            rows += plain_casbin(settings, args, probes)
    url = sync_url(settings)
    where = (
        f"SQLite {url.database}"
        if settings.is_sqlite
        else f"PostgreSQL {url.host}:{url.port or 5432}/{url.database}"
    )
    header = (
        f"Portal access bench — {where}\n"
        f"data: {shape.tenants:,} tenants × {shape.roles} roles × {shape.perms} grants = {shape.p_lines:,} "
        f"p lines; {shape.users:,} users, {len(shape.memberships()):,} memberships ({state})\n"
        f"python {sys.version.split()[0]}, total {time.perf_counter() - started:.0f} s"
    )
    print_table(rows, header)
    failed = [r.label.strip() for r in rows if r.ok is False]
    print("targets: " + ("all met" if not failed else "FAILED: " + "; ".join(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
