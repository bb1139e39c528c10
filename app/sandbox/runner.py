"""Calling guests: warm instance pools per (plugin, tenant), limits, one transaction per call, call
figures (app.sandbox.outcomes) and the crash policy (app.sandbox.faults)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from wasmtime import Store, WasmtimeError
from wasmtime.component import Component, Func, Instance, Linker, Variant

from app.audit import Actor
from app.core.db import SQLITE_WRITE_LOCK, reads_only, transaction_from_here
from app.core.i18n import N_
from app.core.limits import Limits, effective
from app.core.models import Tenant
from app.events import PENDING_KEY, EventBus
from app.plugins import runtime
from app.plugins.runtime import EntityRef, LoadedPlugin
from app.sandbox import host, memory
from app.sandbox.compiling import Compiling
from app.sandbox.engine import (
    EXTENSION_FUNCTIONS,
    EXTENSIONS_EXPORT,
    GUEST_EXPORT,
    GUEST_FUNCTIONS,
    ComponentRejected,
    ComponentStore,
    shared_engine,
)
from app.sandbox.faults import record_failure, record_failure_later
from app.sandbox.host import LOG_LEVELS, CallContext, LimitBreach, Principal
from app.sandbox.memory import LinearMemory
from app.sandbox.outcomes import (
    CallStats,
    GuestFailure,
    InitFailed,
    error_of,
    payload_size,
    trap_kind,
    with_stderr,
)
from app.sandbox.outcomes import figures as call_figures
from app.sandbox.wasi import GuestOutput, stamp_clock, stamps_clock, wasi_config

if TYPE_CHECKING:  # settings import the limits of this package
    from app.core.settings import Settings

log = logging.getLogger("portal.sandbox")
MIB = 1024 * 1024
STATS_KEPT = 500
IN_FLIGHT_KEY = "portal_guest_calls_in_flight"


@dataclass
class _Instance:
    store: Store
    funcs: dict[str, Func]
    memories: list[LinearMemory] = field(default_factory=list)
    dead: bool = False
    output: GuestOutput = field(default_factory=GuestOutput)  # its stdout/stderr (WASI)

    @property
    def memory_mb(self) -> float:
        return round(sum(m.size for m in self.memories) / MIB, 2)


@dataclass
class _Pool:
    semaphore: asyncio.Semaphore
    idle: list[_Instance] = field(default_factory=list)


class Sandbox(Compiling):
    def __init__(self, settings: Settings, session_factory: Callable[[], Any] | None = None) -> None:
        self.settings = settings
        self.session_factory = session_factory  # own sessions for background calls (after a commit)
        self._background: set[asyncio.Task[None]] = set()
        self.memory_stats = settings.wasm_memory_stats
        self.engine, self.ticker = shared_engine(self.memory_stats, settings.wasm_compiler)
        self.components = ComponentStore(
            self.engine,
            settings.compile_cache,
            memory_stats=self.memory_stats,
            compiler=settings.wasm_compiler,
        )
        self._executor: ThreadPoolExecutor | None = None
        self._linkers: dict[tuple[str, str], Linker] = {}
        self._pools: dict[tuple[str, str, str], _Pool] = {}
        self.stats: dict[str, deque[CallStats]] = {}
        self.last: CallStats | None = None  # the latest call's figures (for `portal plugin run`)
        #: The instant pages and actions are told (`portal plugin run --now`); None: the real clock.
        self.fixed_now: dt.datetime | None = None

    @property
    def executor(self) -> ThreadPoolExecutor:
        if self._executor is None:  # created on first use: most test apps never run a guest
            self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="wasm")
        return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._pools.clear()

    def limits_for(self, plugin: LoadedPlugin) -> Limits:
        return effective(plugin.manifest.limits, self.settings.wasm_default, self.settings.wasm_maximum)

    def _linker(self, plugin: LoadedPlugin) -> Linker:
        key = (plugin.id, plugin.row_sha)
        linker = self._linkers.get(key)
        if linker is None:
            linker = Linker(self.engine)
            linker.add_wasip2()  # configured per store by wasi_config: clocks, random, stdout/stderr only
            host.link(linker, plugin.manifest)
            self._linkers[key] = linker
        return linker

    def _pool(self, plugin: LoadedPlugin, tenant_id: uuid.UUID) -> _Pool:
        key = (plugin.id, plugin.wasm_sha256, str(tenant_id))
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool(asyncio.Semaphore(max(1, self.settings.wasm_pool_size)))
        return pool

    def drop_instances(self, plugin_id: str, tenant_id: uuid.UUID | None = None) -> None:
        for key in [
            k for k in self._pools if k[0] == plugin_id and (tenant_id is None or k[2] == str(tenant_id))
        ]:
            self._pools[key].idle.clear()

    def warm_count(self, plugin_id: str) -> int:
        return sum(len(p.idle) for k, p in self._pools.items() if k[0] == plugin_id)

    # -- running (worker thread) -----------------------------------------------------------------

    def _instantiate(
        self, component: Component, plugin: LoadedPlugin, ctx: CallContext, output: GuestOutput
    ) -> _Instance:
        store = Store(self.engine)
        store.set_wasi(wasi_config(output))
        store.set_limits(memory_size=ctx.limits.memory_mb * MIB)
        store.set_fuel(ctx.limits.fuel)
        store.set_epoch_deadline(self.ticker.ticks(ctx.limits.deadline_ms))
        with memory.Collect(self.memory_stats) as memories:
            instance: Instance = self._linker(plugin).instantiate(store, component)
        guest = instance.get_export_index(store, GUEST_EXPORT)
        funcs = {}
        for name in GUEST_FUNCTIONS:
            index = instance.get_export_index(store, name, guest)
            func = instance.get_func(store, index) if index is not None else None
            if func is None:
                raise ComponentRejected(
                    N_(
                        "the component does not export %(guest_export)s#%(name)s",
                        guest_export=GUEST_EXPORT,
                        name=name,
                    )
                )
            funcs[name] = func
        extensions = instance.get_export_index(store, EXTENSIONS_EXPORT)
        if extensions is not None:  # optional: components built before extension points lack it
            for name in EXTENSION_FUNCTIONS:
                index = instance.get_export_index(store, name, extensions)
                func = instance.get_func(store, index) if index is not None else None
                if func is not None:
                    funcs[name] = func
        inst = _Instance(store, funcs, memories, output=output)
        problem = error_of(self._invoke(inst, "init", ()))
        if problem is not None:
            raise InitFailed(problem)
        return inst

    def _invoke(self, inst: _Instance, name: str, args: tuple[Any, ...]) -> Any:
        func = inst.funcs.get(name)
        if func is None:
            raise ComponentRejected(
                N_(
                    "the component does not export %(extensions_export)s#%(name)s (rebuild it with `portal plugin build`)",
                    extensions_export=EXTENSIONS_EXPORT,
                    name=name,
                )
            )
        result = func(inst.store, *args)
        func.post_return(inst.store)
        return result

    def _execute(
        self,
        component: Component,
        plugin: LoadedPlugin,
        inst: _Instance | None,
        ctx: CallContext,
        name: str,
        args: tuple[Any, ...],
    ) -> tuple[_Instance | None, Any, int, bool]:
        host.bind(ctx)
        fresh = inst is None
        output = inst.output if inst is not None else GuestOutput()
        output.start(ctx.limits.log_bytes)
        try:
            if inst is None:
                inst = self._instantiate(component, plugin, ctx, output)
            inst.store.set_fuel(ctx.limits.fuel)
            ticks = self.ticker.ticks(ctx.limits.deadline_ms)
            inst.store.set_epoch_deadline(ticks)
            ctx.deadline = host.Deadline(self.ticker, ticks)
            try:
                result = self._invoke(inst, name, args)
            except Exception:
                inst.dead = True  # after any trap the instance cannot be entered again
                ctx.memory_mb = inst.memory_mb
                with contextlib.suppress(Exception):  # the metering of a failed call counts what it burnt
                    ctx.fuel_used = ctx.limits.fuel - inst.store.get_fuel()
                raise
            ctx.memory_mb = inst.memory_mb
            fuel = ctx.limits.fuel - inst.store.get_fuel()
            return inst, result, fuel, fresh
        finally:
            host.bind(None)
            entries, ctx.stderr_tail = output.finish()
            for level, line in entries:
                ctx.logs.append((level, line))
                log.log(LOG_LEVELS[level], "[%s tenant=%s] %s", plugin.id, ctx.tenant_id, line)

    # -- the public call -------------------------------------------------------------------------

    async def call(
        self,
        session: AsyncSession,
        plugin: LoadedPlugin,
        tenant_id: uuid.UUID,
        principal: Principal,
        name: str,
        *args: Any,
        bus: EventBus | None = None,
        record_faults: bool = True,
        defer_faults: bool = False,
        error_is_answer: bool = False,
    ) -> Any:
        """Call guest function `name`; everything it writes runs in one transaction (a savepoint of the
        caller's), rolled back on any failure. Returns the ok payload or raises GuestFailure. A session in
        a read-only start (a GET page) reads without a transaction until the guest's first write.

        `defer_faults`: record a failure (and apply the crash policy) in a session of its own once the
        caller's transaction ended, instead of committing the caller's session now — for calls in the
        middle of someone else's unit of work (extension points: a record write, a workflow step).
        `error_is_answer`: the guest's own `err` result is a normal answer (an auth verifier's refusal), not
        a fault; traps and limit breaches still are.

        Never compiles and never waits for a compile: `session` holds a transaction (on SQLite perhaps the
        write lock), and a Python guest compiles for seconds, during which every other write would fail.
        A component not yet compiled fails the call as `compiling` (its compile goes on in the background);
        callers that may wait (event delivery, background calls) await `ready()` before opening a session."""
        if not plugin.wasm_sha256:
            raise GuestFailure(
                plugin.id,
                "no_wasm",
                N_("%(name)s ships no page code (no plugin.wasm)", name=plugin.manifest.plugin.name),
            )
        loop = asyncio.get_running_loop()
        component = self.components.loaded(plugin.wasm_sha256) or await loop.run_in_executor(
            self.executor, self.components.cached, plugin.wasm_sha256
        )
        if component is None:
            job = self.components.job(plugin.wasm_sha256)
            if job is None or not job.error:  # a failed compile is not retried on every call
                job = self.components.start_compile(self.wasm_loader(plugin.wasm_sha256), plugin.wasm_sha256)
            if job.error:
                raise GuestFailure(
                    plugin.id, "rejected", N_("the plugin's code cannot run here: %(error)s", error=job.error)
                )
            raise GuestFailure(
                plugin.id,
                "compiling",
                N_("the plugin's code is still being compiled (%(seconds)s s so far)", seconds=job.seconds)
                if job
                else N_("the plugin's code is still being compiled"),
            )
        reachable = await self._reachable(session, plugin, tenant_id)
        limits = self.limits_for(plugin)
        if stamps_clock(name):
            # The request already loaded its tenant: usually no query (the session's identity map).
            tenant = await session.get(Tenant, tenant_id)
            args = stamp_clock(name, args, tenant.time_zone if tenant is not None else None, self.fixed_now)
        ctx = CallContext(
            plugin,
            reachable,
            tenant_id,
            principal,
            session,
            loop,
            bus,
            limits,
            secret_key=self.settings.secret_key,
        )
        pool = self._pool(plugin, tenant_id)
        pending: list[Any] = session.sync_session.info.setdefault(PENDING_KEY, [])
        events_before = len(pending)
        # A call made while the same plugin's call waits on a host function (a validator of a record the
        # plugin writes) must not wait for a pool slot that call holds.
        in_flight: set[tuple[str, uuid.UUID]] = session.info.setdefault(IN_FLIGHT_KEY, set())
        key = (plugin.id, tenant_id)
        reentrant = key in in_flight
        in_flight.add(key)
        try:
            return await self._call_in_pool(
                session,
                plugin,
                tenant_id,
                component,
                ctx,
                pool,
                pending,
                events_before,
                name,
                args,
                reentrant,
                record_faults,
                defer_faults,
                error_is_answer,
            )
        finally:
            if not reentrant:
                in_flight.discard(key)

    async def _call_in_pool(
        self,
        session: AsyncSession,
        plugin: LoadedPlugin,
        tenant_id: uuid.UUID,
        component: Component,
        ctx: CallContext,
        pool: _Pool,
        pending: list[Any],
        events_before: int,
        name: str,
        args: tuple[Any, ...],
        reentrant: bool,
        record_faults: bool,
        defer_faults: bool,
        error_is_answer: bool,
    ) -> Any:
        loop = asyncio.get_running_loop()
        limits = ctx.limits
        async with contextlib.nullcontext() if reentrant else pool.semaphore:
            inst = pool.idle.pop() if pool.idle else None
            # A request that began without a transaction (a GET page: app.core.db.READS_ONLY) keeps
            # reading without one; the guest's first write begins it and the call's savepoint
            # (CallContext.before_write). Otherwise the savepoint is taken now: a failed read inside a
            # transaction must not abort the caller's.
            if not reads_only(session):
                ctx.savepoint = await session.begin_nested()
            started = time.perf_counter()
            failure: GuestFailure | None = None
            result: Any = None
            fresh = inst is None
            fuel = 0
            try:
                inst, result, fuel, fresh = await loop.run_in_executor(
                    self.executor, self._execute, component, plugin, inst, ctx, name, args
                )
            except InitFailed as exc:
                failure = GuestFailure(
                    plugin.id,
                    "init",
                    N_("the plugin failed to start: %(error)s", error=str(exc)),
                    str(exc),
                    counts_as_trap=True,
                )
            except (WasmtimeError, LimitBreach) as exc:
                kind, message = trap_kind(exc, ctx)
                failure = GuestFailure(plugin.id, kind, message, str(exc), counts_as_trap=True)
            except ComponentRejected as exc:
                failure = GuestFailure(
                    plugin.id, "rejected", N_("the plugin's code cannot run here: %(error)s", error=str(exc))
                )
            except Exception as exc:
                if ctx.breach is not None:
                    failure = GuestFailure(
                        plugin.id, ctx.breach.kind, str(ctx.breach), repr(exc), counts_as_trap=True
                    )
                else:
                    log.exception("Guest call %s.%s failed in the host", plugin.id, name)
                    failure = GuestFailure(
                        plugin.id,
                        "host",
                        N_("the portal failed while running the plugin"),
                        repr(exc),
                        counts_as_trap=False,
                    )
            if failure is not None and failure.counts_as_trap and ctx.stderr_tail:
                with_stderr(failure, ctx.stderr_tail)
            duration = (time.perf_counter() - started) * 1000
            payload: str | None = None
            if failure is None:
                reported = error_of(result)
                if reported is not None:
                    kind = "memory_mb" if "MemoryError" in reported else "error"
                    text = (
                        f"the plugin ran out of memory (limit {limits.memory_mb} MiB)"
                        if kind == "memory_mb"
                        else f"the plugin reported an error: {reported[:500]}"
                    )
                    failure = GuestFailure(plugin.id, kind, text, reported, counts_as_trap=kind != "error")
                else:
                    # result<string, string> lifts to a Variant; result<bool|list, string> to the bare value.
                    payload = result.payload if isinstance(result, Variant) else result
                    if payload is not None and payload_size(payload) > limits.output_bytes:
                        failure = GuestFailure(
                            plugin.id,
                            "output_bytes",
                            N_("the plugin returned more than %(bytes)s bytes", bytes=limits.output_bytes),
                            "",
                            counts_as_trap=True,
                        )
            if (
                inst is not None
                and not inst.dead
                and (failure is None or failure.kind in {"error", "output_bytes"})
            ):
                pool.idle.append(inst)
            stats = CallStats(
                plugin.id,
                str(tenant_id),
                name,
                failure is None,
                round(duration, 3),
                fuel if failure is None else max(fuel, ctx.fuel_used),
                ctx.host_calls,
                payload_size(payload),
                ctx.memory_mb,
                failure.kind if failure else "ok",
                fresh,
                logs=ctx.logs,
            )
            self.stats.setdefault(plugin.id, deque(maxlen=STATS_KEPT)).append(stats)
            self.last = stats
            if failure is None:
                if ctx.savepoint is not None:
                    await ctx.savepoint.commit()
                return payload
            if ctx.savepoint is not None:
                await ctx.savepoint.rollback()
            del pending[events_before:]  # events of the failed call are never published
            failure.stats = stats
        if error_is_answer and failure.kind == "error":
            pass
        elif defer_faults:
            record_failure_later(
                session,
                plugin,
                tenant_id,
                name,
                failure,
                session_factory=self.session_factory,
                background=self._background,
                drop_instances=self.drop_instances,
            )
        elif record_faults:
            await transaction_from_here(session)  # the fault is written in a transaction
            await record_failure(
                session, plugin, tenant_id, name, failure, drop_instances=self.drop_instances
            )
        raise failure

    async def _reachable(
        self, session: AsyncSession, plugin: LoadedPlugin, tenant_id: uuid.UUID
    ) -> dict[str, EntityRef]:
        out = dict(plugin.entities)
        deps = {d.id for d in plugin.manifest.dependencies.plugins}
        if deps:
            for other in await runtime.enabled_for(session, tenant_id):
                if other.id in deps:
                    out.update(other.entities)
        return out

    # -- background calls ------------------------------------------------------------------------

    def after_commit(
        self, session: AsyncSession, plugin_id: str, tenant_id: uuid.UUID, name: str, *args: Any
    ) -> None:
        """Call a guest function as the plugin, in its own transaction, once `session` has committed
        (so the call sees what the triggering transaction wrote); dropped if it rolls back."""
        if self.session_factory is None:
            return
        sync = session.sync_session

        def schedule(_session: Any) -> None:
            task = asyncio.get_running_loop().create_task(self.background(plugin_id, tenant_id, name, *args))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

        sa.event.listen(sync, "after_commit", schedule, once=True)

    async def background(self, plugin_id: str, tenant_id: uuid.UUID, name: str, *args: Any) -> None:
        """A guest call outside any request, acting as the plugin; failures are logged and counted."""
        assert self.session_factory is not None
        try:
            async with self.session_factory() as session:  # a read, ended before waiting for a compile
                plugin = next(
                    (p for p in await runtime.enabled_for(session, tenant_id) if p.id == plugin_id), None
                )
            if plugin is None or not plugin.wasm_sha256:
                return
            await self.ready(plugin, 120.0)
            async with self.session_factory() as session:
                if (
                    session.bind.dialect.name == "sqlite"
                ):  # wait for other writers rather than fail after them
                    await session.connection(execution_options={SQLITE_WRITE_LOCK: True})
                plugin = next(
                    (p for p in await runtime.enabled_for(session, tenant_id) if p.id == plugin_id), None
                )
                if plugin is None or not plugin.wasm_sha256:
                    return
                reachable = await self._reachable(session, plugin, tenant_id)
                try:
                    await self.call(
                        session,
                        plugin,
                        tenant_id,
                        plugin_principal(plugin, tenant_id, reachable),
                        name,
                        *args,
                    )
                except GuestFailure:
                    return  # recorded (and committed) by call()
                await session.commit()
        except Exception:
            log.exception("Background call %s.%s for tenant %s failed", plugin_id, name, tenant_id)

    def figures(self, plugin_id: str) -> dict[str, Any]:
        """p50/p95 of this worker's recent calls of a plugin."""
        return call_figures(self.stats.get(plugin_id, ()), memory_stats=self.memory_stats)

    async def drain(self) -> None:
        """Wait for the background calls in flight (tests and shutdown)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)


def plugin_principal(
    plugin: LoadedPlugin, tenant_id: uuid.UUID, reachable: dict[str, EntityRef] | None = None
) -> Principal:
    """Background calls act as the plugin, with the permissions its manifest brings (and its dependencies' db.*)."""
    granted = set(plugin.manifest.permission_codes)
    for ref in (reachable or {}).values():
        granted.update(ref.permission(op) for op in ("select", "insert", "update", "delete"))
    return Principal(
        Actor(None, f"plugin:{plugin.id}", ""),
        granted.__contains__,
        {
            "id": None,
            "plugin": plugin.id,
            "tenant_id": str(tenant_id),
            "email": None,
            "display_name": plugin.manifest.plugin.name,
        },
    )
