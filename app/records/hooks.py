"""What a RecordService runs besides its own checks: hooks after an insert and validators before every
insert and update, passed in by the composition root (AppServices.record_hooks)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.plugins.runtime import EntityRef
from app.services import services_of

if TYPE_CHECKING:
    from app.records.service import RecordService

# Called with (service, entity, row) after every insert, inside its transaction (the workflow module's
# StartApprovalOnCreate is one: every path — pages, API, WASM host — starts approvals alike).
InsertHook = Callable[["RecordService", EntityRef, dict[str, Any]], Awaitable[Any]]
# Called with (service, entity, row as it will be written, row before for an update / None) before every
# insert and update; raising ValidationFailed refuses the write (app.extensions.hooks.RecordValidators).
ValidateHook = Callable[["RecordService", EntityRef, dict[str, Any], "dict[str, Any] | None"], Awaitable[Any]]


@dataclass(frozen=True)
class RecordHooks:
    """What a RecordService runs besides its own checks; the app's are listed in app.server.create_app
    (AppServices.record_hooks). A service built without them runs none."""

    insert: tuple[InsertHook, ...] = ()
    validate: tuple[ValidateHook, ...] = ()


NO_HOOKS = RecordHooks()


def app_hooks(session: AsyncSession) -> RecordHooks:
    """The record hooks of the app that opened `session` (for code that holds only a session: the WASM
    host API, workflow end actions); none for a session opened outside an app."""
    services = services_of(session)
    return services.record_hooks if services is not None else NO_HOOKS
