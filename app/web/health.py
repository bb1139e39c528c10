"""`GET /health` for load balancers and probes: as little work as the route can do. No CSRF cookie (the
middleware lets the path through), no context or ORM session (opt `sessionless`), and the database asked
with `SELECT 1` at most once per second per worker — probes from several balancers, or a tight loop,
share the answer of the last second. 503 while the database does not answer.

With an object store (PORTAL_STORAGE_URL=s3://...) the answer also says whether the bucket answers
(HeadBucket, at most once per STORAGE_EVERY_SECONDS): ``"storage": "ok"`` or ``"unavailable"`` with a
detail naming the bucket. Still 200: every host shares the bucket, so taking hosts out of a balancer
would not help, and pages without files keep working."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from litestar import Request, Response, get
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.blobs import BlobStore, DatabaseBlobStore, StorageUnavailable

PATH = "/health"
STATE_KEY = "health_probe"
EVERY_SECONDS = 1.0
TIMEOUT_SECONDS = 5.0
STORAGE_EVERY_SECONDS = 10.0


class HealthProbe:
    """Whether the database answered within the last second (per worker)."""

    def __init__(
        self, engine: AsyncEngine, every: float = EVERY_SECONDS, store: BlobStore | None = None
    ) -> None:
        self.engine = engine
        self.every = every
        self.checks = 0  # how many times the database was asked
        self._at = -1e9
        self._ok = False
        self._lock = asyncio.Lock()
        # An object store is asked too (the database store is the database, asked above).
        self.store = None if store is None or isinstance(store, DatabaseBlobStore) else store
        self.storage_every = STORAGE_EVERY_SECONDS
        self.storage_problem: str | None = None  # None: the store answered at its last check
        self._storage_at = -1e9

    async def storage(self) -> dict[str, str]:
        """What the answer says of an object store ({} without one)."""
        if self.store is None:
            return {}
        if time.monotonic() - self._storage_at >= self.storage_every:
            self._storage_at = time.monotonic()
            try:
                async with asyncio.timeout(TIMEOUT_SECONDS):
                    await self.store.check()
                self.storage_problem = None
            except StorageUnavailable as exc:
                self.storage_problem = exc.detail
            except TimeoutError:
                self.storage_problem = (
                    f"The file store {self.store.name} did not answer within {TIMEOUT_SECONDS:g} s"
                )
        if self.storage_problem is None:
            return {"storage": "ok"}
        return {"storage": "unavailable", "storage_detail": self.storage_problem}

    async def ok(self) -> bool:
        if time.monotonic() - self._at < self.every:
            return self._ok
        async with self._lock:  # one check at a time; those who waited take its answer
            if time.monotonic() - self._at < self.every:
                return self._ok
            self.checks += 1
            try:
                async with asyncio.timeout(TIMEOUT_SECONDS), self.engine.connect() as conn:
                    await conn.exec_driver_sql("SELECT 1")
                self._ok = True
            except Exception:
                self._ok = False
            self._at = time.monotonic()
            return self._ok


def probe_of(request: Request[Any, Any, Any]) -> HealthProbe:
    probe: HealthProbe | None = request.app.state.get(STATE_KEY)
    if probe is None:
        probe = HealthProbe(
            request.app.state.alchemy.get_engine(), store=request.app.state.services.blob_store
        )
        request.app.state[STATE_KEY] = probe
    return probe


@get(PATH, opt={"public": True, "sessionless": True}, include_in_schema=False)
async def health(request: Request[Any, Any, Any]) -> Response[dict[str, str]]:
    """Liveness, database and object store reachability: no sign-in, so no session lookup."""
    probe = probe_of(request)
    if await probe.ok():
        return Response({"status": "ok", **await probe.storage()})
    return Response({"status": "unavailable", "detail": "the database does not answer"}, status_code=503)


ROUTES = [health]
