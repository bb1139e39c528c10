"""The host API a guest imports (`portal:plugin/host`), implemented on the one record service.

A guest call runs in a worker thread; each host function hops back to the event loop, where the
request's (or the background job's) database session lives, and runs the record service there. So
tenant, permissions, soft delete, standard fields, version checks, audit and events are exactly
those of the generated pages and the JSON API. Host functions never raise into wasmtime (that kills
the instance): refusals are `err` results. Limit breaches are the exception: they must stop the
guest, so they raise, which traps the call.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import queue
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from litestar.exceptions import HTTPException
from wasmtime import _ffi as wasmtime_ffi
from wasmtime.component import Linker, Variant

from app import messages
from app.access.scopes import DataScope
from app.audit import Actor
from app.core.db import transaction_from_here
from app.core.errors import PortalError, ValidationFailed
from app.core.limits import Limits
from app.core.nesting import TextRejected, loads_json
from app.events import Event, EventBus, emit
from app.manifest import Manifest
from app.plugins import config_values, configs
from app.plugins.runtime import EntityRef, LoadedPlugin
from app.records import children
from app.records.files import RecordFiles
from app.records.service import Aggregate, ListQuery, RecordService, app_hooks
from app.records.values import to_json
from app.sandbox import boundary
from app.sandbox.engine import HOST_IMPORT

log = logging.getLogger("portal.plugin")
ARG_JSON_MAX_BYTES = 4_000_000  # one host-call argument (depth-bounded too: app.nesting)
FILE_READ_MAX_BYTES = 8 * 1024 * 1024  # file-read with content: base64 in one JSON string
LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}
_local = threading.local()


class LimitBreach(Exception):
    """Raised inside a host function to stop the guest; `kind` names the limit."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class Principal:
    """Who a guest call acts as: the user who triggered it, or the plugin itself for background calls."""

    actor: Actor
    can: Callable[[str], bool]
    user: dict[str, Any]
    scope: DataScope | None = None  # the user's data scope; None (all rows) when acting as the plugin


@dataclass
class CallContext:
    plugin: LoadedPlugin
    reachable: dict[str, EntityRef]  # the plugin's entities and those of its enabled dependencies
    tenant_id: uuid.UUID
    principal: Principal
    session: Any  # AsyncSession, used only on `loop`
    loop: asyncio.AbstractEventLoop
    bus: EventBus | None
    limits: Limits
    host_calls: int = 0
    log_bytes: int = 0
    notifications: int = 0  # messages created by notify in this guest call
    logs: list[tuple[str, str]] = field(default_factory=list)  # log-write calls, then stdout/stderr lines
    stderr_tail: list[str] = field(default_factory=list)  # the call's last stderr lines (a trap reports them)
    breach: LimitBreach | None = None
    memory_mb: float = 0.0  # the instance's linear memory size after the call (set by the runner)
    fuel_used: int = 0  # set by the runner, also when the call fails (a trap may have burnt the budget)
    secret_key: str = ""  # the platform secret: decrypts the plugin's own configuration secrets
    # The active configuration, read once per guest call (so a change applies from the next call, in
    # every worker, without a cache to invalidate): (row or None,) once loaded.
    config_row: tuple[Any, ...] | None = None
    deadline: Deadline | None = None  # the guest's epoch deadline (set by the runner)
    service: RecordService | None = None  # built by records() on the first host call that needs it
    savepoint: Any = None  # the call's savepoint (runner; or the first write's, see before_write)

    @property
    def manifest(self) -> Manifest:
        return self.plugin.manifest

    def records(self) -> RecordService:
        """The call's record service (one per guest call: same session, tenant, actor, scope and hooks)."""
        if self.service is None:
            self.service = RecordService(
                self.session,
                self.tenant_id,
                self.principal.actor,
                self.principal.can,
                scope=self.principal.scope,
                hooks=app_hooks(self.session),
            )
        return self.service

    async def before_write(self) -> None:
        """Before anything the guest writes: a request still reading without a transaction begins one,
        and the call's savepoint, so that a failed call rolls back only its own writes."""
        if self.savepoint is None:
            await transaction_from_here(self.session)
            self.savepoint = await self.session.begin_nested()

    def run(self, make: Callable[[], Awaitable[Any]], *, reads: bool = False) -> Any:
        """Run a coroutine on the loop that owns the session and wait for it (we are in a worker thread).
        The finished task comes back through a SimpleQueue: a third less CPU per hop than
        run_coroutine_threadsafe's chained futures (bench/host_call_profile.py). `reads`: `make` only
        reads (otherwise the call's savepoint is made sure of first)."""
        done: queue.SimpleQueue[asyncio.Task[Any]] = queue.SimpleQueue()

        def start() -> None:
            self.loop.create_task(_call(make if reads else self._writing(make))).add_done_callback(done.put)

        self.loop.call_soon_threadsafe(start)
        return done.get().result()

    def _writing(self, make: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
        async def write() -> Any:
            await self.before_write()
            return await make()

        return write


async def _call(make: Callable[[], Awaitable[Any]]) -> Any:
    return await make()


class Deadline:
    """A guest's epoch deadline that does not run while the guest waits in a host call.

    The deadline stops guests spinning in their own code; time in a host function (the hop to the event
    loop, a database wait, on a loaded machine easily hundreds of ms) is the host's, and no epoch can
    interrupt a host function anyway, so it only decided whether the guest was killed right after a slow
    call returned. Host calls are bounded by their number (limits.host_calls) and the database's own
    timeouts. `ticker` is the engine's EpochTicker (its `now` counts ticks)."""

    __slots__ = ("ends", "ticker")

    def __init__(self, ticker: Any, ticks: int) -> None:
        self.ticker = ticker
        self.ends = ticker.now + ticks

    def left(self) -> int:
        return self.ends - self.ticker.now

    def resume(self, store: Any, left: int) -> None:
        """After a host call: the guest gets back the ticks it had left when it made the call."""
        left = max(1, left)
        self.ends = self.ticker.now + left
        wasmtime_ffi.wasmtime_context_set_epoch_deadline(store._context(), left)


def current() -> CallContext | None:
    return getattr(_local, "ctx", None)


def bind(ctx: CallContext | None) -> None:
    _local.ctx = ctx


def _ok(value: Any) -> Variant:
    return Variant("ok", value)


def _err(message: str) -> Variant:
    return Variant("err", message)


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationFailed):
        return "; ".join(f"{k}: {v}" for k, v in exc.errors.items()) or exc.detail
    if isinstance(exc, PortalError):
        return exc.detail
    detail = getattr(exc, "detail", None)
    return str(detail or exc) or type(exc).__name__


def _json_arg(text: str, what: str) -> Any:
    try:
        return loads_json(text, max_bytes=ARG_JSON_MAX_BYTES) if text.strip() else {}
    except TextRejected as exc:
        raise ValueError(f"{what} {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} is not valid JSON ({exc.msg} at position {exc.pos})") from exc


def _object_arg(text: str, what: str) -> dict[str, Any]:
    value = _json_arg(text, what)
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object")
    return value


def _row_json(row: dict[str, Any]) -> dict[str, Any]:
    """A row as JSON; child sets nested by `expand` or a nested write (lists of rows) likewise."""
    return {
        k: [_row_json(c) for c in v] if isinstance(v, list) else to_json(v)
        for k, v in row.items()
        if k != "tenant_id"
    }


def _expand_arg(page: dict[str, Any]) -> list[str]:
    names = page.get("expand") or []
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError('page.expand must be a list of child set names, like ["lines"]')
    return names


def _write(
    ctx: CallContext, ref: EntityRef, record_id: str | None, values: dict[str, Any], version: int | None
) -> Any:
    """Insert or update; a row carrying child sets (`{"lines": [...]}`) is written with them, all or
    nothing (app.records.children), also when the guest goes on after a refusal."""
    data, sets = children.split(ref, values)

    async def write() -> dict[str, Any]:
        svc = ctx.records()
        if sets:
            return await children.save(svc, ref, record_id, data, version, sets)
        if record_id is None:
            return await svc.insert(ref, data)
        return await svc.update(ref, record_id, data, version)

    return ctx.run(write)


def _entity(ctx: CallContext, name: str) -> EntityRef:
    ref = ctx.reachable.get(name)
    if ref is None:
        raise PermissionError(
            f"entity {name!r} is not one of {ctx.plugin.id}'s entities or those of its declared dependencies"
        )
    return ref


_OPERATORS = {"eq": "", "gte": "__from", "lte": "__to", "gt": "__gt", "lt": "__lt", "ne": "__ne"}
_OPERATOR_OF = {suffix: op for op, suffix in _OPERATORS.items() if suffix}


def in_guest_terms(exc: ValidationFailed, filters: dict[str, Any]) -> ValidationFailed:
    """A record-service refusal of a query, its keys in the guest's vocabulary: a filter as the guest
    wrote it (`filter {"qty": {"lt": "x"}}`), `page.sort`, never the internal `qty__lt` suffixes."""
    errors: dict[str, str] = {}
    for key, message in exc.errors.items():
        if key == "sort":
            errors["page.sort"] = message
            continue
        name, sep, suffix = key.partition("__")
        op = _OPERATOR_OF.get(sep + suffix, "eq") if sep else "eq"
        cond = filters.get(name)
        value = cond.get(op) if isinstance(cond, dict) else cond
        shown = json.dumps({op: value}) if isinstance(cond, dict) else json.dumps(value)
        errors[f"filter {{{json.dumps(name)}: {shown}}}"] = message
    return ValidationFailed(errors)


def _list_query(ref: EntityRef, filters: dict[str, Any], page: dict[str, Any]) -> ListQuery:
    out: dict[str, str] = {}
    for name, cond in filters.items():
        tests = cond if isinstance(cond, dict) else {"eq": cond}
        for op, value in tests.items():
            suffix = _OPERATORS.get(op)
            if suffix is None:
                raise ValueError(f"filter {name}: unknown operator {op!r} (use {', '.join(_OPERATORS)})")
            if isinstance(value, dict | list):
                raise ValueError(f"filter {name}.{op}: expected a single value")
            out[name + suffix] = (
                ""
                if value is None
                else ("true" if value is True else "false" if value is False else str(value))
            )
    limit = page.get("limit", 50)
    offset = page.get("offset", 0)
    if not isinstance(limit, int) or not isinstance(offset, int) or limit < 1 or offset < 0:
        raise ValueError("page.limit must be a positive integer and page.offset a non-negative one")
    return ListQuery(
        q=str(page.get("q") or "")[:200],
        filters=out,
        sort=str(page.get("sort") or "-created_at"),
        size=limit,
        offset=offset,
    )


# -- the functions ---------------------------------------------------------------------------------


def db_insert(ctx: CallContext, entity: str, data: str) -> Variant:
    ref = _entity(ctx, entity)
    values = _object_arg(data, "data")
    return _ok(json.dumps(_row_json(_write(ctx, ref, None, values, None))))


def db_query(ctx: CallContext, entity: str, filter_json: str, page_json: str) -> Variant:
    ref = _entity(ctx, entity)
    page = _object_arg(page_json, "page")
    expand = _expand_arg(page)
    filters = _object_arg(filter_json, "filter")
    query = _list_query(ref, filters, {k: v for k, v in page.items() if k != "expand"})

    async def read() -> Any:
        svc = ctx.records()
        try:
            found = await svc.list(ref, query)
        except ValidationFailed as exc:
            raise in_guest_terms(exc, filters) from None
        if expand:
            await children.expand(svc, ref, found.rows, expand)
        return found

    result = ctx.run(read, reads=True)
    return _ok(
        json.dumps(
            {"rows": [_row_json(r) for r in result.rows], "total": result.total, "capped": result.capped}
        )
    )


def db_update(ctx: CallContext, entity: str, record_id: str, data: str, version: int) -> Variant:
    ref = _entity(ctx, entity)
    values = _object_arg(data, "data")
    return _ok(json.dumps(_row_json(_write(ctx, ref, record_id, values, version))))


def db_delete(ctx: CallContext, entity: str, record_id: str) -> Variant:
    ref = _entity(ctx, entity)
    ctx.run(lambda: ctx.records().delete(ref, record_id))
    return _ok(None)


def db_aggregate(ctx: CallContext, entity: str, query_json: str) -> Variant:
    ref = _entity(ctx, entity)
    query = _object_arg(query_json, "query")
    unknown = set(query) - {"group_by", "metrics", "filter", "limit"}
    if unknown:
        raise ValueError(
            f"query: unknown key {sorted(unknown)[0]!r} (expected group_by, metrics, filter, limit)"
        )
    group_by = query.get("group_by") or []
    metrics = query.get("metrics") or [{"fn": "count"}]
    if not isinstance(group_by, list) or not all(isinstance(g, str) for g in group_by):
        raise ValueError("query.group_by must be a list of field names")
    if not isinstance(metrics, list) or not all(isinstance(m, dict) for m in metrics):
        raise ValueError('query.metrics must be a list of objects like {"fn": "sum", "field": "quantity"}')
    spec = Aggregate(
        group_by=group_by,
        metrics=[(str(m.get("fn")), m.get("field")) for m in metrics],
        filters=_list_query(ref, query.get("filter") or {}, {}).filters,
        limit=int(query.get("limit") or 1000),
    )
    rows = ctx.run(lambda: ctx.records().aggregate(ref, spec), reads=True)
    return _ok(json.dumps([{k: to_json(v) for k, v in r.items()} for r in rows]))


def event_publish(ctx: CallContext, event_type: str, payload: str) -> Variant:
    declared = ctx.manifest.events.published
    if event_type not in declared:
        raise PermissionError(
            f"event {event_type!r} is not declared in [events] published of {ctx.plugin.id}"
        )
    body = _object_arg(payload, "payload")
    event = Event(event_type, str(ctx.tenant_id), body, source=ctx.plugin.id, actor=ctx.principal.actor.email)
    ctx.run(lambda: emit(ctx.session, event))  # in the call's transaction: gone if the call fails
    return _ok(None)


def config_get(ctx: CallContext, key: str) -> Variant:
    """The value of `key` in the tenant's active configuration (or its declared default) as JSON text."""
    if ctx.config_row is None:
        plugin_id, tenant_id, session = ctx.plugin.id, ctx.tenant_id, ctx.session
        ctx.config_row = (ctx.run(lambda: configs.active(session, tenant_id, plugin_id), reads=True),)
    box = config_values.secret_box(ctx.secret_key)
    try:
        return _ok(configs.lookup(ctx.manifest, ctx.config_row[0], box, ctx.tenant_id, key))
    except config_values.SecretUnreadable as exc:
        raise ValueError(str(exc)) from exc


def notify(ctx: CallContext, user_ids: list[str], title: str, body: str, link: str | None) -> Variant:
    """Notify members of the tenant as this plugin (source = plugin id, sender = the acting user, if any)."""
    wanted = len(set(user_ids))
    if ctx.notifications + wanted > ctx.limits.notifications:
        raise LimitBreach(
            "notifications",
            f"the plugin tried to create more than {ctx.limits.notifications} notifications in one call",
        )
    rows = ctx.run(
        lambda: messages.notify(
            ctx.session,
            ctx.tenant_id,
            user_ids,
            title,
            body,
            link,
            source=ctx.plugin.id,
            actor=ctx.principal.actor,
        )
    )
    ctx.notifications += len(rows)
    return _ok(len(rows))


def file_read(ctx: CallContext, entity: str, record_id: str, file_id: str, content: bool) -> Variant:
    """A file of a record (app.records.files: through the record's read), its bytes as base64 on request."""
    ref = _entity(ctx, entity)

    async def read() -> dict[str, Any]:
        meta, data = await RecordFiles(ctx.records()).open(ref, record_id, file_id)
        out: dict[str, Any] = {
            "id": str(meta.id),
            "field": meta.field,
            "name": meta.filename,
            "size": meta.size,
            "content_type": meta.content_type,
        }
        if content:
            if meta.size > FILE_READ_MAX_BYTES:
                raise ValueError(
                    f"the file is {meta.size} bytes; plugins read files up to {FILE_READ_MAX_BYTES}"
                )
            out["content"] = base64.b64encode(data).decode("ascii")
        return out

    return _ok(json.dumps(ctx.run(read, reads=True)))


def log_write(ctx: CallContext, level: str, message: str) -> None:
    size = len(message.encode("utf-8", "replace"))
    ctx.log_bytes += size
    if ctx.log_bytes > ctx.limits.log_bytes:
        raise LimitBreach(
            "log_bytes", f"the plugin wrote more than {ctx.limits.log_bytes} bytes of log in one call"
        )
    lvl = level.lower() if level.lower() in LOG_LEVELS else "info"
    ctx.logs.append((lvl, message))
    log.log(LOG_LEVELS[lvl], "[%s tenant=%s] %s", ctx.plugin.id, ctx.tenant_id, message)


def current_user(ctx: CallContext) -> Variant:
    return _ok(json.dumps(ctx.principal.user))


def check_permission(ctx: CallContext, permission: str) -> Variant:
    return _ok(bool(ctx.principal.can(permission)))


# (name, function, capability that gates it; None = always linked)
FUNCTIONS: tuple[tuple[str, Callable[..., Any], str | None], ...] = (
    ("db-insert", db_insert, "database"),
    ("db-query", db_query, "database"),
    ("db-update", db_update, "database"),
    ("db-delete", db_delete, "database"),
    ("db-aggregate", db_aggregate, "database"),
    ("event-publish", event_publish, "events"),
    ("config-get", config_get, "config"),
    ("notify", notify, "messages"),
    ("file-read", file_read, "files"),
    ("log-write", log_write, None),
    ("current-user", current_user, None),
    ("check-permission", check_permission, None),
)


def _wrap(name: str, fn: Callable[..., Any], returns_result: bool) -> Callable[..., Any]:
    def host_function(store: Any, *args: Any) -> Any:
        ctx = current()
        if ctx is None:  # only possible if a guest calls out while no call is bound (init of a broken pool)
            return _err("no active call") if returns_result else None
        deadline = ctx.deadline
        if deadline is None:
            return _call_host(ctx, name, fn, returns_result, args)
        left = deadline.left()
        try:
            return _call_host(ctx, name, fn, returns_result, args)
        finally:
            deadline.resume(store, left)

    return host_function


def _call_host(
    ctx: CallContext, name: str, fn: Callable[..., Any], returns_result: bool, args: tuple[Any, ...]
) -> Any:
    """One body for every host function: count, enforce the limit, run, turn refusals into error values."""
    ctx.host_calls += 1
    if ctx.host_calls > ctx.limits.host_calls:
        ctx.breach = ctx.breach or LimitBreach(
            "host_calls", f"the plugin made more than {ctx.limits.host_calls} host calls in one call"
        )
        raise ctx.breach
    try:
        return fn(ctx, *args)
    except LimitBreach as exc:
        ctx.breach = ctx.breach or exc
        raise
    except Exception as exc:  # a refusal is an error value for the guest, never an exception into wasm
        expected = isinstance(exc, PortalError | PermissionError | ValueError | LookupError | HTTPException)
        if not expected:
            log.exception("Host function %s failed for %s", name, ctx.plugin.id)
        return _err(f"{name}: {_describe(exc)}") if returns_result else None


def _refuse(name: str, capability: str, plugin_id: str) -> Callable[..., Any]:
    message = (
        f"{name}: plugin {plugin_id} does not have the {capability!r} capability "
        f"(add `{capability} = true` under [permissions] in plugin.toml)"
    )

    def refused(_store: Any, *_args: Any) -> Any:
        ctx = current()
        if ctx is not None:
            ctx.host_calls += 1
        return _err(message)

    return refused


def link(linker: Linker, manifest: Manifest) -> None:
    """Define the host interface; functions whose capability the manifest lacks answer an error."""
    caps = manifest.capabilities
    with linker.root() as root, root.add_instance(HOST_IMPORT) as host:
        for name, fn, capability in FUNCTIONS:
            returns_result = name != "log-write"
            if capability is None or getattr(caps, capability):
                boundary.add_func(host, name, _wrap(name, fn, returns_result))
            else:
                boundary.add_func(host, name, _refuse(name, capability, manifest.id))
