"""Events: raised inside a transaction, recorded in the event log (the outbox) by that transaction,
and handled only after it commits.

Two kinds of subscribers:
- plugins, through their manifest's `[events] subscribed` while enabled in the event's tenant:
  durable delivery to the guest's `handle-event` by `app.sandbox.delivery.Dispatcher` (once across
  workers; see there);
- base-module code of this process, through `EventBus.subscribe`: called in the worker whose
  transaction committed the event, best effort (nothing is retried, a crash loses the call).

Event types are dot-separated names (`tenant.created`, `inventory.item.updated`). A subscription
pattern is an exact type or has `*` segments: `*` stands for exactly one whole segment, never part
of one and never a dot, so `inventory.*.created` matches `inventory.item.created` but not
`inventory.created` or `inventory.item.sub.created`, and `user.*` matches `user.added` but not
`user.role.changed`. The guest SDK's `@plugin.on_event` matches the same way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import itertools
import logging
import re
import uuid
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.core.models import EventRecord
from app.plugins import runtime
from app.plugins.runtime import LoadedPlugin

log = logging.getLogger("portal.events")
Handler = Callable[["Event"], Awaitable[None] | None]
PENDING_KEY = "portal_pending_events"
DEPTH_KEY = "portal_event_depth"  # set on the sessions that deliver an event: the depth of what they raise
MAX_DEPTH = 8  # events raised by handlers of handlers ... deeper than this are logged, not delivered
_SEGMENT = re.compile(r"^[a-z0-9_-]+$")
TENANT_CREATED = "tenant.created"


@dataclass(frozen=True)
class Event:
    type: str
    tenant_id: str | None
    payload: dict[str, Any] = field(default_factory=dict)
    source: str = "base"
    actor: str = ""
    id: str | None = None  # the event log row, once recorded
    depth: int = 0
    deliverable: bool = False  # recorded as pending: a plugin subscriber will get it after the commit


# -- patterns --------------------------------------------------------------------------------------


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` is not a valid subscription pattern, or None."""
    parts = pattern.split(".")
    if len(parts) < 2:
        return (
            f"'{pattern}' needs at least two dot-separated parts (e.g. 'tenant.created' or 'crm.customer.*')"
        )
    for part in parts:
        if part != "*" and not _SEGMENT.match(part):
            if "*" in part:
                return (
                    f"'{pattern}': a wildcard must be a whole segment ('*' stands for one part between dots)"
                )
            return f"'{pattern}': '{part}' is not a valid part (lowercase letters, digits, '_' and '-')"
    return None


def matches(pattern: str, event_type: str) -> bool:
    """Exact, or `*` standing for one whole dot-separated segment (same number of segments)."""
    if pattern == event_type:
        return True
    want, got = pattern.split("."), event_type.split(".")
    return len(want) == len(got) and all(w == "*" or w == g for w, g in zip(want, got, strict=True))


def subscriptions(plugin: LoadedPlugin, event_type: str, source: str, payload: dict[str, Any]) -> list[str]:
    """The guest functions of `plugin` an event is delivered to. `tenant.created` (raised by the base only)
    names the plugins enabled by default with the tenant: they get on-tenant-created."""
    handlers = []
    if event_type == TENANT_CREATED and source == "base" and plugin.id in (payload.get("plugins") or ()):
        handlers.append("on-tenant-created")
    if any(matches(p, event_type) for p in plugin.manifest.events.subscribed):
        handlers.append("handle-event")
    return handlers


# -- the in-process bus ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscription:
    id: int
    pattern: str
    handler: Handler


class EventBus:
    """Base-module subscribers of this process. Plugins do not subscribe here (see the module docstring)."""

    def __init__(self) -> None:
        self._subs: dict[int, Subscription] = {}
        self._ids = itertools.count(1)
        self.delivered: list[Event] = []  # recent events, newest last (bounded)

    def subscribe(self, pattern: str, handler: Handler) -> int:
        """Call `handler(event)` for each committed event whose type matches `pattern`; returns a handle."""
        problem = pattern_problem(pattern)
        if problem:
            raise ValueError(problem)
        sub = Subscription(next(self._ids), pattern, handler)
        self._subs[sub.id] = sub
        return sub.id

    def unsubscribe(self, handle: int) -> bool:
        """End a subscription; False when it was not (or no longer) subscribed."""
        return self._subs.pop(handle, None) is not None

    def subscribers(self, event_type: str) -> list[Subscription]:
        return [s for s in self._subs.values() if matches(s.pattern, event_type)]

    def note(self, event: Event) -> None:
        """Keep `event` among the recent ones (what publish does first)."""
        self.delivered = [*self.delivered[-199:], event]

    async def publish(self, event: Event) -> None:
        self.note(event)
        for sub in self.subscribers(event.type):
            try:
                result = sub.handler(event)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # a subscriber's failure never reaches the publisher
                log.exception("Event handler for %s failed on %s", sub.pattern, event.type)


# -- raising an event ------------------------------------------------------------------------------


class Committed(Protocol):
    def committed(self, events: list[Event]) -> None: ...


# The dispatcher serving an engine in this process: told at once when a transaction with events commits.
_local: weakref.WeakKeyDictionary[Any, Committed] = weakref.WeakKeyDictionary()


def serve(sync_engine: Any, dispatcher: Committed | None) -> None:
    """Register (or with None, remove) the local dispatcher for the sessions of `sync_engine`."""
    if dispatcher is None:
        _local.pop(sync_engine, None)
    else:
        _local[sync_engine] = dispatcher


@dataclass(frozen=True)
class Prepared:
    """An event ready to be written: its event-log row's values (`params`) and the event as it will be
    delivered (`event`). A caller that writes the row in a statement of its own (the record service's
    PostgreSQL writes, app.records.writes) calls `recorded_in` once that statement has run."""

    params: dict[str, Any]
    event: Event


async def prepare(session: AsyncSession, event: Event) -> Prepared:
    """The event-log row of `event` (its id, depth and delivery status), not yet written."""
    depth = max(event.depth, int(session.sync_session.info.get(DEPTH_KEY, 0)))
    event_id = uuid.uuid4()
    # Most events have no plugin subscriber: they are logged as such, and no dispatcher writes for them.
    status = "pending" if await _has_subscribers(session, event) else "none"
    if status == "pending" and depth > MAX_DEPTH:
        status = "dropped"
        log.warning(
            "Event %s from %s is %d handlers deep (limit %d): logged, not delivered",
            event.type,
            event.source,
            depth,
            MAX_DEPTH,
        )
    params = {  # parameters, not .values(): one statement compiled once
        "id": event_id,
        "type": event.type,
        "source": event.source,
        "tenant_id": uuid.UUID(event.tenant_id) if event.tenant_id else None,
        "actor": event.actor[:254],
        "payload": event.payload,
        "depth": depth,
        "status": status,
        "attempts": 0,
        "claimed_by": "",
        "created_at": dt.datetime.now(dt.UTC),
    }
    recorded = dataclasses.replace(event, id=str(event_id), depth=depth, deliverable=status == "pending")
    return Prepared(params, recorded)


def recorded_in(session: AsyncSession, prepared: Prepared | Event) -> Event:
    """Note that the event's row was written in `session`'s transaction: delivered after it commits
    (dropped if it rolls back)."""
    recorded = prepared.event if isinstance(prepared, Prepared) else prepared
    pending: list[Event] = session.sync_session.info.setdefault(PENDING_KEY, [])
    pending.append(recorded)  # handed over (or dropped) by the listeners registered below for every Session
    return recorded


async def emit(
    session: AsyncSession, event: Event, *, along: tuple[sa.Table, dict[str, Any]] | None = None
) -> Event:
    """Record `event` in the event log within `session`'s transaction. It is delivered once that
    transaction commits; if it rolls back (or the savepoint around it does), the event never existed.

    `along`: another row (table, every column's value) written with it — on PostgreSQL in the same
    statement (a data-modifying CTE)."""
    prepared = await prepare(session, event)
    params = prepared.params
    if along is None:
        await session.execute(_INSERT, params)
    elif session.get_bind().dialect.name == "postgresql":
        table, row = along
        await session.execute(
            _insert_along(table, row, params), {**params, **{f"w_{k}": v for k, v in row.items()}}
        )
    else:  # SQLite has no data-modifying CTEs: two statements (no network between them)
        await session.execute(sa.insert(along[0]), along[1])
        await session.execute(_INSERT, params)
    return recorded_in(session, prepared)


_INSERT = sa.insert(cast(sa.Table, EventRecord.__table__))  # declarative types __table__ as FromClause


def _insert_along(table: sa.Table, row: dict[str, Any], params: dict[str, Any]) -> Any:
    """WITH w AS (INSERT INTO table ...) INSERT INTO event_log ...: built once per table and column set
    (kept in the table's info), run with parameters (the other row's prefixed `w_`)."""
    key = ("portal_event_along", tuple(row), tuple(params))
    stmt = table.info.get(key)
    if stmt is None:
        other = sa.insert(table).values({k: sa.bindparam(f"w_{k}", type_=table.c[k].type) for k in row})
        events = cast(sa.Table, EventRecord.__table__)
        stmt = (
            sa.insert(events)
            .values({k: sa.bindparam(k, type_=events.c[k].type) for k in params})
            .add_cte(other.cte("w"))
        )
        table.info[key] = stmt
    return stmt


async def _has_subscribers(session: AsyncSession, event: Event) -> bool:
    """Whether a plugin enabled in the event's tenant (with code) takes it now; the dispatcher checks
    again when delivering (a plugin disabled meanwhile gets nothing)."""
    if not event.tenant_id:
        return False

    plugins = await runtime.enabled_for(session, uuid.UUID(event.tenant_id))
    return any(p.wasm_sha256 and subscriptions(p, event.type, event.source, event.payload) for p in plugins)


def _flush_pending(session: Session) -> None:
    events: list[Event] = session.info.pop(PENDING_KEY, [])
    if not events:
        return
    bind = session.get_bind()
    dispatcher = _local.get(getattr(bind, "engine", bind))
    if dispatcher is not None:
        dispatcher.committed(events)
    # Without a dispatcher here (CLI, scripts) the events wait in the log for a server's sweep.


def _drop_pending(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)


# Once for all sessions (cheap when nothing is pending) rather than per session on its first event:
# listening on a Session instance costs more than the whole event row's INSERT.
sa_event.listen(Session, "after_commit", _flush_pending)
sa_event.listen(Session, "after_rollback", _drop_pending)
