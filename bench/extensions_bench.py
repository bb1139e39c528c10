"""What the record-validator hook costs a write when the tenant has no validator configured.

Inserts rows through RecordService on a fresh SQLite database (in a temp dir) with the extension hook
installed and without it, the request's policy versions noted as every request does, and prints the
median insert time of each and the hook's own time per call. Usage:

    .venv/bin/python bench/extensions_bench.py [--rows 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import tempfile
import time
from pathlib import Path

from app.core.settings import load_settings

MANIFEST = """
[plugin]
id = "benchkit"
name = "Bench"
version = "1.0.0"
min_platform_version = "1.0.0"
[dependencies]
modules = ["auth"]
[permissions]
database = true
[[schema.entities]]
name = "bench_row"
fields = [{ name = "title", type = "string", required = true }, { name = "amount", type = "integer" }]
"""


async def main(rows: int, tmp: str) -> None:
    from app import bootstrap
    from app.audit import Actor
    from app.core.db import make_alchemy_config
    from app.core.models import Tenant
    from app.extensions import hooks
    from app.identity import directory
    from app.installs import lifecycle
    from app.plugins import runtime
    from app.plugins.packages import Package
    from app.records.service import NO_HOOKS, RecordHooks, RecordService

    settings = load_settings(_env(tmp))
    config = make_alchemy_config(settings)
    actor = Actor(None, "bench")
    async with config.get_session() as s:
        await bootstrap.ensure_base(s, settings)
        package = Package(
            manifest_text=MANIFEST,
            files={"plugin.toml": MANIFEST.encode()},
            sha256=hashlib.sha256(MANIFEST.encode()).hexdigest(),
        )
        await lifecycle.upload(s, actor, package, settings, install_now=True)
        tenant = await directory.create_tenant(s, actor, "bench", "Bench")
        await lifecycle.enable(s, actor, tenant.id, "benchkit")
        await s.commit()
    timings: dict[str, list[float]] = {"without hook": [], "with hook": []}
    hook_times: list[float] = []
    validators = hooks.RecordValidators()
    for label in ("without hook", "with hook", "without hook", "with hook"):
        record_hooks = RecordHooks(validate=(validators,)) if label == "with hook" else NO_HOOKS
        async with config.get_session() as s:
            t = await s.get(Tenant, tenant.id)
            system = await s.get(Tenant, bootstrap.SYSTEM_UUID)
            assert t is not None and system is not None
            runtime.note_versions(s, t.id, (t.policy_version, system.policy_version))
            ref = await runtime.entity_in_tenant(s, t.id, "benchkit", "bench_row")
            svc = RecordService(s, t.id, actor, lambda _p: True, hooks=record_hooks)
            for i in range(rows // 2):
                started = time.perf_counter()
                await svc.insert(ref, {"title": f"row {i}", "amount": i})
                timings[label].append((time.perf_counter() - started) * 1e6)
                if label == "with hook":
                    started = time.perf_counter()
                    await validators(svc, ref, {"title": "x"}, None)
                    hook_times.append((time.perf_counter() - started) * 1e6)
            await s.commit()
    await config.get_engine().dispose()
    for label, values in timings.items():
        print(f"insert {label:13}: median {statistics.median(values):8.1f} µs  (n={len(values)})")
    print(
        f"hook alone (no validator, cache hit): median {statistics.median(hook_times):.2f} µs, "
        f"p99 {sorted(hook_times)[int(len(hook_times) * 0.99)]:.2f} µs"
    )


def _env(tmp: str) -> dict[str, str]:
    return {
        "PORTAL_DATA_DIR": tmp,
        "DATABASE_URL": f"sqlite:///{Path(tmp) / 'bench.db'}",
        "PORTAL_SECRET_KEY": "bench-secret-key-0123456789",
    }


if __name__ == "__main__":
    from app.core.db import upgrade

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2000)
    with tempfile.TemporaryDirectory() as work:
        upgrade(load_settings(_env(work)))  # alembic runs its own event loop
        asyncio.run(main(parser.parse_args().rows, work))
