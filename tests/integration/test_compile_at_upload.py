"""The host that receives an upload, install or upgrade compiles the component right after the commit, in
the background, with no transaction held — not when someone first needs it (both backends). A rolled back
upgrade compiles nothing. The compile reads the wasm from the database and retries that read: a compile
started before the package's transaction is visible (a page viewed during the upload) still succeeds."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest

from app.audit import Actor
from app.core import blobs
from app.core.db import SQLITE_WRITE_LOCK
from app.installs import lifecycle
from app.plugins.packages import read_folder
from tests.integration.test_other_guests import wat_example  # noqa: F401  (the session fixture)

ACTOR = Actor(None, "test")


@pytest.fixture
def settings_env(settings_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """An empty compile cache of this test's own: nothing is compiled before the test asks."""
    cache = tmp_path / "fresh-wasm-cache"
    cache.mkdir()
    return {**settings_env, "PORTAL_WASM_CACHE_DIR": str(cache)}


def _variant(source: Path, target: Path, version: str) -> Path:
    """The same plugin under a new version, its component a few bytes different (a custom section)."""
    shutil.copytree(source, target)
    toml = target / "plugin.toml"
    toml.write_text(toml.read_text().replace('version = "0.1.0"', f'version = "{version}"', 1))
    wasm = target / "plugin.wasm"
    name = f"variant-{version}".encode()
    wasm.write_bytes(wasm.read_bytes() + b"\x00" + bytes([len(name) + 1, len(name)]) + name)
    return target


def test_the_receiving_host_compiles_after_the_commit(
    client: Any, app: Any, tmp_path: Path, wat_example: Path
) -> None:
    sandbox = app.state.sandbox
    factory = app.state.events.session_factory
    first = read_folder(wat_example)
    upgraded = read_folder(_variant(wat_example, tmp_path / "v2", "0.2.0"))
    sha1, sha2 = (hashlib.sha256(p.wasm or b"").hexdigest() for p in (first, upgraded))

    async def locked(session: Any) -> None:
        if app.state.settings.is_sqlite:
            await session.connection(execution_options={SQLITE_WRITE_LOCK: True})

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with factory() as s:
            await locked(s)
            await lifecycle.upload(s, ACTOR, first, app.state.settings, install_now=True, sandbox=sandbox)
            seen["before commit"] = sandbox.components.state(sha1)
            await s.commit()
            seen["after commit"] = sandbox.components.state(sha1)
        job = sandbox.components.job(sha1)
        seen["job"] = job is not None and await asyncio.to_thread(job.done.wait, 120)
        seen["error"] = job.error if job else "no job"
        seen["ready"] = sandbox.components.state(sha1)
        seen["cache file"] = sandbox.components.cache_path(sha1).exists()
        async with factory() as s:  # an upgrade rolled back: nothing to compile
            await locked(s)
            await lifecycle.upgrade(s, ACTOR, upgraded, app.state.settings, sandbox=sandbox)
            await s.rollback()
        await asyncio.sleep(0.2)
        seen["rolled back"] = sandbox.components.job(sha2)
        async with factory() as s:
            await locked(s)
            await lifecycle.upgrade(s, ACTOR, upgraded, app.state.settings, sandbox=sandbox)
            await s.commit()
        job = sandbox.components.job(sha2)
        seen["upgrade job"] = job is not None and await asyncio.to_thread(job.done.wait, 120)
        seen["upgrade"] = sandbox.components.state(sha2)
        return seen

    seen = client.blocking_portal.call(scenario)
    assert seen["before commit"] == "pending"  # nothing starts inside the transaction
    assert seen["after commit"] in {"compiling", "ready"}
    assert seen["job"] and seen["error"] is None, seen
    assert seen["ready"] == "ready" and seen["cache file"]
    assert seen["rolled back"] is None
    assert seen["upgrade job"] and seen["upgrade"] == "ready", seen


def test_a_compile_started_before_the_package_is_committed_retries_its_read(
    client: Any, app: Any, wat_example: Path
) -> None:
    sandbox = app.state.sandbox
    factory = app.state.events.session_factory
    wasm = (wat_example / "plugin.wasm").read_bytes() + b"\x00\x06\x05retry"
    sha = hashlib.sha256(wasm).hexdigest()

    async def scenario() -> tuple[str | None, str]:
        async with factory() as s:
            await blobs.store_of(s).put(s, wasm)
            job = sandbox.components.start_compile(sandbox.wasm_loader(sha), sha)
            await asyncio.sleep(0.6)  # the compile's first reads find nothing
            assert not job.done.is_set()
            await s.commit()
        await asyncio.to_thread(job.done.wait, 120)
        return job.error, sandbox.components.state(sha)

    error, state = client.blocking_portal.call(scenario)
    assert error is None
    assert state == "ready"
