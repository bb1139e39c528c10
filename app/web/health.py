"""`GET /health` for load balancers and probes: as little work as the route can do. No CSRF cookie (the
middleware lets the path through), no context or ORM session (opt `sessionless`), and the database asked
with `SELECT 1` at most once per second per worker — probes from several balancers, or a tight loop,
share the answer of the last second. 503 while the database does not answer."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from litestar import Request, Response, get
from sqlalchemy.ext.asyncio import AsyncEngine

PATH = "/health"
STATE_KEY = "health_probe"
EVERY_SECONDS = 1.0
TIMEOUT_SECONDS = 5.0


class HealthProbe:
    """Whether the database answered within the last second (per worker)."""

    def __init__(self, engine: AsyncEngine, every: float = EVERY_SECONDS) -> None:
        self.engine = engine
        self.every = every
        self.checks = 0  # how many times the database was asked
        self._at = -1e9
        self._ok = False
        self._lock = asyncio.Lock()

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
        probe = HealthProbe(request.app.state.alchemy.get_engine())
        request.app.state[STATE_KEY] = probe
    return probe


@get(PATH, opt={"public": True, "sessionless": True}, include_in_schema=False)
async def health(request: Request[Any, Any, Any]) -> Response[dict[str, str]]:
    """Liveness and database reachability: no sign-in, so no session lookup."""
    if await probe_of(request).ok():
        return Response({"status": "ok"})
    return Response({"status": "unavailable", "detail": "the database does not answer"}, status_code=503)


ROUTES = [health]
