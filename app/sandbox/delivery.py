"""Delivering logged events to plugins, once across workers.

Every worker runs one Dispatcher. A transaction that raised events wakes its own worker's dispatcher
when it commits; a periodic sweep (every `event_sweep_seconds`) picks up whatever other processes
(the CLI, a worker that crashed) left pending. A dispatcher claims pending events with an UPDATE
`... WHERE status = 'pending'` of candidates it locked first (`FOR UPDATE SKIP LOCKED` on PostgreSQL,
the write lock on SQLite), so each event is handled by exactly one worker. A claim older than `event_claim_timeout_seconds` (its
worker died mid-way) returns to pending.

Subscribers are derived from the database when the event is handled: the plugins enabled in the
event's tenant whose `[events] subscribed` patterns match its type (`handle-event`), plus, for
`tenant.created`, the plugins enabled by default with the new tenant (`on-tenant-created`). Each call runs through
the sandbox as the plugin, with its limits, in a transaction of its own that also records the
delivery row; the row is unique per (event, plugin, handler), so a delivery happens once or, if the
transaction fails, not at all — never twice, even when a stale claim is taken over. Failures are
recorded as failed deliveries and as plugin faults (crash policy); they never reach the request
that raised the event, which has long been answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import SQLITE_WRITE_LOCK
from app.core.models import EventDelivery, EventRecord
from app.events import DEPTH_KEY, Event, EventBus, serve, subscriptions
from app.plugins import runtime
from app.plugins.runtime import LoadedPlugin
from app.sandbox.outcomes import GuestFailure
from app.sandbox.runner import Sandbox, plugin_principal

if TYPE_CHECKING:
    from app.core.settings import Settings

log = logging.getLogger("portal.events")
BATCH = 20


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        session_factory: Callable[[], Any],
        sandbox: Sandbox,
        bus: EventBus,
        *,
        sync_engine: Any = None,
        worker: str | None = None,
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.sandbox = sandbox
        self.bus = bus
        self.sync_engine = sync_engine
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one claim-and-deliver round at a time in this worker
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.delivered = 0  # deliveries made by this dispatcher (for tests and health figures)

    # -- life --------------------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.sync_engine is not None:
            serve(self.sync_engine, self)
        self._task = self._loop.create_task(self._run(), name=f"event-dispatcher {self.worker}")

    async def stop(self) -> None:
        if self.sync_engine is not None:
            serve(self.sync_engine, None)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        # Claims interrupted by the shutdown go back to pending at once (deliveries made are kept).
        t = cast(sa.Table, EventRecord.__table__)
        try:
            async with self.session_factory() as session:
                await session.execute(
                    sa.update(t)
                    .where(t.c.status == "running", t.c.claimed_by == self.worker)
                    .values(status="pending")
                )
                await session.commit()
        except Exception:  # the database may be gone already; the claim timeout covers it then
            log.warning("Could not release this worker's event claims on shutdown", exc_info=True)

    def committed(self, events: list[Event]) -> None:
        """A transaction of this worker committed `events`: tell in-process subscribers, deliver soon."""
        loop = self._loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not loop:  # committed from another thread: hand over to the dispatcher's loop
            loop.call_soon_threadsafe(self.committed, events)
            return
        if any(self.bus.subscribers(event.type) for event in events):
            for event in events:
                task = loop.create_task(self.bus.publish(event))
                self._tasks.add(task)  # keep a reference until done, or the task may be collected mid-flight
                task.add_done_callback(self._tasks.discard)
        else:
            for event in events:  # nobody in-process listens: no task per event (the common case)
                self.bus.note(event)
        if any(event.deliverable for event in events):  # most events have no subscriber: nothing to claim
            self._wake.set()

    async def _run(self) -> None:
        stale_check_every = max(1.0, self.settings.event_claim_timeout_seconds / 10)
        next_stale_check = 0.0
        while True:
            with contextlib.suppress(TimeoutError):  # woken by a local commit, or time for a sweep
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.event_sweep_seconds)
            self._wake.clear()
            try:
                if time.monotonic() >= next_stale_check:
                    await self.release_stale()
                    next_stale_check = time.monotonic() + stale_check_every
                while await self.run_once():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be away for a moment; the next round retries
                log.exception("Event dispatch round failed")
                await asyncio.sleep(self.settings.event_sweep_seconds)

    async def drain(self, timeout: float = 60.0) -> None:
        """Deliver everything pending (in the whole database), including what deliveries raise, and wait
        for this worker's background guest calls (tests use it to make delivery deterministic)."""
        deadline = time.monotonic() + timeout
        await self.release_stale()
        while time.monotonic() < deadline:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
            await self.sandbox.drain()
            if not await self.run_once():
                async with self.session_factory() as session:
                    left = await session.scalar(
                        sa.select(sa.func.count())
                        .select_from(EventRecord)
                        .where(EventRecord.status.in_(("pending", "running")))
                    )
                if not left and not self._tasks:
                    return
                await asyncio.sleep(0.05)  # another dispatcher holds a claim: wait for it
        raise TimeoutError(f"events still pending after {timeout} s")

    # -- claiming ----------------------------------------------------------------------------------

    async def release_stale(self) -> int:
        """Return claims older than the claim timeout (their worker died) to pending."""
        limit = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=self.settings.event_claim_timeout_seconds)
        t = cast(sa.Table, EventRecord.__table__)
        async with self.session_factory() as session:
            result = await session.execute(
                sa.update(t).where(t.c.status == "running", t.c.claimed_at < limit).values(status="pending")
            )
            await session.commit()
        if result.rowcount:
            log.warning(
                "Released %d event claim(s) older than %d s",
                result.rowcount,
                self.settings.event_claim_timeout_seconds,
            )
        return int(result.rowcount or 0)

    async def claim(self, session: AsyncSession, limit: int = BATCH) -> list[uuid.UUID]:
        """Take up to `limit` pending events for this worker, oldest first. The candidates are locked
        (PostgreSQL: FOR UPDATE SKIP LOCKED, so concurrent claimers take different rows; SQLite: the
        transaction holds the write lock), and the UPDATE re-checks `status = 'pending'`."""
        t = cast(sa.Table, EventRecord.__table__)
        if session.bind.dialect.name == "sqlite":
            await session.connection(execution_options={SQLITE_WRITE_LOCK: True})
        candidates = sa.select(t.c.id).where(t.c.status == "pending").order_by(t.c.created_at).limit(limit)
        if session.bind.dialect.name == "postgresql":
            candidates = candidates.with_for_update(skip_locked=True)
        ids = list((await session.scalars(candidates)).all())
        if not ids:
            await session.commit()
            return []
        stmt = (
            sa.update(t)
            .where(t.c.id.in_(ids), t.c.status == "pending")
            .values(
                status="running",
                claimed_by=self.worker,
                claimed_at=dt.datetime.now(dt.UTC),
                attempts=t.c.attempts + 1,
            )
            .returning(t.c.id)
        )
        claimed = set((await session.scalars(stmt)).all())
        await session.commit()
        if claimed:
            log.debug("%s claimed %d event(s)", self.worker, len(claimed))
        return [i for i in ids if i in claimed]

    async def run_once(self) -> int:
        """Claim one batch of pending events and deliver them; returns how many were claimed."""
        async with self._lock:
            async with self.session_factory() as session:
                # A plain read first: most sweeps find nothing and should not take any lock.
                if (
                    await session.scalar(
                        sa.select(EventRecord.id).where(EventRecord.status == "pending").limit(1)
                    )
                    is None
                ):
                    return 0
                await session.rollback()
                ids = await self.claim(session)
            for event_id in ids:
                try:
                    await self.deliver(event_id)
                except Exception:
                    log.exception("Delivering event %s failed in the host", event_id)
                    await self._finish(event_id, "failed")
            return len(ids)

    # -- delivering --------------------------------------------------------------------------------

    async def deliver(self, event_id: uuid.UUID) -> None:
        async with self.session_factory() as session:
            record = await session.get(EventRecord, event_id)
            if record is None:
                return
            done = set(
                (
                    await session.execute(
                        sa.select(EventDelivery.plugin_id, EventDelivery.handler, EventDelivery.status).where(
                            EventDelivery.event_id == event_id
                        )
                    )
                ).all()
            )
            targets: list[tuple[LoadedPlugin, str]] = []
            if record.tenant_id is not None:
                for plugin in await runtime.enabled_for(session, record.tenant_id):
                    if plugin.wasm_sha256:
                        targets += [
                            (plugin, h)
                            for h in subscriptions(plugin, record.type, record.source, record.payload)
                        ]
            event = (record.type, record.tenant_id, record.payload, record.depth)
        failed = any(status != "ok" for _, _, status in done)
        already = {(p, h) for p, h, _ in done}
        made = len(done)
        for plugin, handler in targets:
            if (plugin.id, handler) in already:
                continue  # delivered before this claim was taken over
            result = await self._call(event_id, plugin, handler, *event)
            made += result is not None
            failed = failed or result is False
        # No delivery at all: every subscriber was disabled between raising and handling.
        await self._finish(event_id, "failed" if failed else "delivered" if made else "none")

    async def _call(
        self,
        event_id: uuid.UUID,
        plugin: LoadedPlugin,
        handler: str,
        event_type: str,
        tenant_id: uuid.UUID,
        payload: dict[str, Any],
        depth: int,
    ) -> bool | None:
        """Deliver to one subscriber: True (ok), False (failed) or None (no longer subscribed)."""
        args = (str(tenant_id),) if handler == "on-tenant-created" else (event_type, json.dumps(payload))
        started = time.perf_counter()
        status, message = "ok", ""
        # A freshly installed plugin's first delivery may find its component still compiling (seconds):
        # wait here, holding no transaction and no write lock, so users' writes go on meanwhile.
        await self.sandbox.ready(plugin, 120.0)
        async with self.session_factory() as session:
            if session.bind.dialect.name == "sqlite":
                await session.connection(execution_options={SQLITE_WRITE_LOCK: True})
            session.sync_session.info[DEPTH_KEY] = depth + 1  # what the handler raises is one level deeper
            current = next(
                (p for p in await runtime.enabled_for(session, tenant_id) if p.id == plugin.id), None
            )
            if current is None:  # disabled since the event was raised
                return None
            reachable = await self.sandbox._reachable(session, current, tenant_id)
            try:
                await self.sandbox.call(
                    session,
                    current,
                    tenant_id,
                    plugin_principal(current, tenant_id, reachable),
                    handler,
                    *args,
                )
            except GuestFailure as exc:  # recorded as a fault (and committed) by the sandbox
                status = "failed"
                message = exc.message + (
                    " — the plugin was switched off in this tenant" if exc.disabled else ""
                )
            duration = round((time.perf_counter() - started) * 1000, 3)
            session.add(
                EventDelivery(
                    event_id=event_id,
                    plugin_id=plugin.id,
                    handler=handler,
                    status=status,
                    message=message[:4000],
                    duration_ms=duration,
                    worker=self.worker,
                )
            )
            try:
                await session.commit()  # the guest's writes and the delivery row, together
            except IntegrityError:
                await session.rollback()
                log.warning(
                    "Event %s was already delivered to %s %s by another worker", event_id, plugin.id, handler
                )
                return None
        self.delivered += 1
        if status != "ok":
            log.warning("Event %s %s → %s %s failed: %s", event_type, event_id, plugin.id, handler, message)
        return status == "ok"

    async def _finish(self, event_id: uuid.UUID, status: str) -> None:
        t = cast(sa.Table, EventRecord.__table__)
        async with self.session_factory() as session:
            await session.execute(
                sa.update(t)
                .where(t.c.id == event_id, t.c.claimed_by == self.worker)
                .values(status=status, finished_at=dt.datetime.now(dt.UTC))
            )
            await session.commit()
