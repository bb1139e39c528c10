"""The crash policy: a failed guest call is recorded as a plugin fault, and a plugin whose start-up
fails, or that traps more than MAX_TRAPS_PER_WINDOW times within TRAP_WINDOW, is disabled for the
tenant (its warm instances dropped)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.audit import Actor
from app.core.db import SQLITE_WRITE_LOCK
from app.core.models import PluginFault, PluginTenant
from app.plugins import runtime
from app.plugins.runtime import LoadedPlugin
from app.sandbox.outcomes import GuestFailure

log = logging.getLogger("portal.sandbox")
TRAP_WINDOW = dt.timedelta(minutes=1)
MAX_TRAPS_PER_WINDOW = 5  # more than this within the window auto-disables the plugin for the tenant


async def record_failure(
    session: AsyncSession,
    plugin: LoadedPlugin,
    tenant_id: uuid.UUID,
    call: str,
    failure: GuestFailure,
    *,
    drop_instances: Callable[[str, uuid.UUID], None],
) -> None:
    """Persist the fault and apply the crash policy. Commits: the request itself will fail, and the
    fault (and an auto-disable) must outlive it."""
    log.warning(
        "Plugin %s %s failed in tenant %s: %s (%s)",
        plugin.id,
        call,
        tenant_id,
        failure.message,
        failure.detail[:2000],
    )
    if failure.kind in {"compiling", "no_wasm"}:
        return
    session.add(
        PluginFault(
            tenant_id=tenant_id,
            plugin_id=plugin.id,
            call=call,
            kind=failure.kind,
            counts_as_trap=failure.counts_as_trap,
            message=failure.message,
            detail=failure.detail[:4000],
        )
    )
    await session.flush()
    reason = ""
    if failure.kind == "init":
        reason = f"Start-up failed: {failure.message}"
    elif failure.counts_as_trap:
        since = dt.datetime.now(dt.UTC) - TRAP_WINDOW
        traps = await session.scalar(
            sa.select(sa.func.count())
            .select_from(PluginFault)
            .where(
                PluginFault.plugin_id == plugin.id,
                PluginFault.tenant_id == tenant_id,
                PluginFault.counts_as_trap.is_(True),
                PluginFault.created_at >= since,
            )
        )
        if (traps or 0) > MAX_TRAPS_PER_WINDOW:
            reason = f"Auto-disabled after {traps} failures within a minute (last: {failure.message})"
    if reason:
        state = await session.scalar(
            sa.select(PluginTenant).where(
                PluginTenant.tenant_id == tenant_id, PluginTenant.plugin_id == plugin.id
            )
        )
        if state is not None and state.status == "enabled":
            state.status, state.error_message = "error", reason[:2000]
            await runtime.plugins_changed(session, tenant_id)
            await audit.record(
                session,
                Actor.system(),
                "plugin.error",
                "plugin",
                plugin.id,
                tenant_id=tenant_id,
                summary=reason[:500],
            )
            failure.disabled = True
        drop_instances(plugin.id, tenant_id)
    await session.commit()


def record_failure_later(
    session: AsyncSession,
    plugin: LoadedPlugin,
    tenant_id: uuid.UUID,
    call: str,
    failure: GuestFailure,
    *,
    session_factory: Callable[[], Any] | None,
    background: set[asyncio.Task[None]],
    drop_instances: Callable[[str, uuid.UUID], None],
) -> None:
    """Record the fault in a session of its own after the caller's transaction ends (committed or not):
    the caller's unit of work stays whole, and on SQLite no second writer waits for it."""
    if session_factory is None:
        log.warning("Plugin %s %s failed in tenant %s: %s", plugin.id, call, tenant_id, failure.message)
        return
    loop = asyncio.get_running_loop()

    async def record() -> None:
        try:
            async with session_factory() as own:
                if own.bind.dialect.name == "sqlite":  # wait for other writers rather than fail after them
                    await own.connection(execution_options={SQLITE_WRITE_LOCK: True})
                await record_failure(own, plugin, tenant_id, call, failure, drop_instances=drop_instances)
        except Exception:
            log.exception("Recording the fault of %s.%s failed", plugin.id, call)

    fired: list[bool] = []

    def ended(_session: Any, transaction: Any) -> None:
        if transaction.parent is not None or fired:  # a savepoint ended, or already scheduled
            return
        fired.append(True)
        task = loop.create_task(record())
        background.add(task)
        task.add_done_callback(background.discard)

    sa.event.listen(session.sync_session, "after_transaction_end", ended)
