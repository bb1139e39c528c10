"""When a plugin's component gets compiled: after the commit of an upload, install or upgrade on the host
that received it; at the next start of every other host (app.server) or its first need (a call, a page,
an event delivery). Compiling takes seconds, so it runs in a background thread that holds no database
transaction; the wasm it compiles is read from the blob store (app.core.blobs) in a short session of its
own, retried for a while (the committing transaction may not be visible yet, or the database briefly away).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import blobs
from app.plugins.runtime import LoadedPlugin
from app.sandbox.engine import ComponentRejected, ComponentStore

log = logging.getLogger("portal.sandbox")
#: Pauses between reads of the wasm (seconds): about 6 s in all before a compile gives up.
READ_RETRIES = (0.1, 0.25, 0.5, 1.0, 2.0, 2.0)
_AFTER_COMMIT_KEY = "portal_compile_after_commit"


class Compiling:
    """The compile side of the Sandbox (mixed into it): it holds `components`, `session_factory` and
    `executor`."""

    components: ComponentStore
    session_factory: Callable[[], Any] | None

    @property
    def executor(self) -> ThreadPoolExecutor:
        raise NotImplementedError

    def wasm_loader(self, wasm_sha256: str) -> Callable[[], bytes]:
        """What gives a compile the wasm: the database's copy (stored at upload, shared by every host), read
        in a short session of its own on this event loop while the compile thread waits — so no transaction
        is open while it compiles. Call from the event loop."""
        loop = asyncio.get_running_loop()

        async def fetch() -> bytes:
            if self.session_factory is None:
                raise ComponentRejected("plugin.wasm is not reachable (no database session here)")
            problem: Exception | None = None
            for pause in (*READ_RETRIES, None):
                try:
                    async with self.session_factory() as session:
                        return await blobs.store_of(session).get(session, wasm_sha256)
                except (blobs.BlobMissing, blobs.StorageUnavailable, DBAPIError, OSError) as exc:
                    problem = exc
                if pause is not None:
                    await asyncio.sleep(pause)
            raise ComponentRejected(f"plugin.wasm could not be read: {problem}")

        return lambda: asyncio.run_coroutine_threadsafe(fetch(), loop).result(timeout=300)

    def compile_state(self, plugin: LoadedPlugin) -> str:
        return self.components.state(plugin.wasm_sha256) if plugin.wasm_sha256 else "none"

    def start_compile(self, plugin: LoadedPlugin) -> None:
        if plugin.wasm_sha256:
            self.components.start_compile(self.wasm_loader(plugin.wasm_sha256), plugin.wasm_sha256)

    def compile_after_commit(self, session: AsyncSession, wasm_sha256: str) -> None:
        """Start compiling `wasm_sha256` once `session` commits (dropped if it rolls back): the host that
        received an upload, install or upgrade compiles it before anyone needs it."""
        if not wasm_sha256:
            return
        sync = session.sync_session
        wanted: set[str] | None = sync.info.get(_AFTER_COMMIT_KEY)
        if wanted is None:
            wanted = sync.info[_AFTER_COMMIT_KEY] = set()

            def committed(_session: Any) -> None:
                for sha in sorted(sync.info.pop(_AFTER_COMMIT_KEY, ())):
                    self.components.start_compile(self.wasm_loader(sha), sha)

            def rolled_back(_session: Any) -> None:
                sync.info.pop(_AFTER_COMMIT_KEY, None)
                sa.event.remove(sync, "after_commit", committed)

            sa.event.listen(sync, "after_commit", committed, once=True)
            sa.event.listen(sync, "after_rollback", rolled_back, once=True)
        wanted.add(wasm_sha256)

    async def ready(self, plugin: LoadedPlugin, timeout: float | None) -> bool:
        """Wait (up to `timeout` seconds, None: no limit) until the plugin's component is compiled and
        loaded; False when it is still compiling. Compiling takes seconds: call this with no transaction
        open (before opening the session a guest call then uses), never from inside one."""
        if not plugin.wasm_sha256:
            return True
        if self.components.loaded(plugin.wasm_sha256) is not None:
            return True
        load = self.wasm_loader(plugin.wasm_sha256)
        try:
            found = await asyncio.get_running_loop().run_in_executor(
                self.executor, lambda: self.components.get(load, plugin.wasm_sha256, wait=timeout)
            )
        except ComponentRejected:
            return True  # the call reports it (as `rejected`), where faults are recorded
        return found is not None
