"""In-process event bus. Events raised inside a transaction are delivered after it commits."""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

log = logging.getLogger("portal.events")
Handler = Callable[["Event"], Awaitable[None] | None]
PENDING_KEY = "portal_pending_events"
_tasks: set[asyncio.Task[None]] = set()


@dataclass(frozen=True)
class Event:
    type: str
    tenant_id: str | None
    payload: dict[str, Any] = field(default_factory=dict)
    source: str = "base"


@dataclass(frozen=True)
class Subscription:
    id: int
    pattern: str  # exact type or fnmatch pattern such as 'inventory.*.created'
    handler: Handler


class EventBus:
    def __init__(self) -> None:
        self._subs: dict[int, Subscription] = {}
        self._ids = itertools.count(1)
        self.delivered: list[Event] = []  # recent events, newest last (bounded)

    def subscribe(self, pattern: str, handler: Handler) -> int:
        sub = Subscription(next(self._ids), pattern, handler)
        self._subs[sub.id] = sub
        return sub.id

    def unsubscribe(self, sub_id: int) -> None:
        self._subs.pop(sub_id, None)

    async def publish(self, event: Event) -> None:
        self.delivered = [*self.delivered[-199:], event]
        for sub in list(self._subs.values()):
            if sub.pattern == event.type or fnmatch.fnmatchcase(event.type, sub.pattern):
                try:
                    result = sub.handler(event)
                    if asyncio.iscoroutine(result):
                        await result
                except Exception:  # a subscriber's failure never reaches the publisher
                    log.exception("Event handler for %s failed on %s", sub.pattern, event.type)

    def after_commit(self, session: AsyncSession, event: Event) -> None:
        """Queue `event` to be published once `session` commits (dropped on rollback)."""
        sync = session.sync_session
        pending: list[Event] = sync.info.setdefault(PENDING_KEY, [])
        pending.append(event)
        if not sa_event.contains(sync, "after_commit", _flush_pending):
            sa_event.listen(sync, "after_commit", _flush_pending)
            sa_event.listen(sync, "after_rollback", _drop_pending)
        sync.info["portal_bus"] = self


def _flush_pending(session: Session) -> None:
    events: list[Event] = session.info.pop(PENDING_KEY, [])
    bus: EventBus | None = session.info.get("portal_bus")
    if not events or bus is None:
        return
    loop = asyncio.get_running_loop()
    for ev in events:
        task = loop.create_task(bus.publish(ev))
        _tasks.add(task)  # keep a reference until done, or the task may be collected mid-flight
        task.add_done_callback(_tasks.discard)


def _drop_pending(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)
