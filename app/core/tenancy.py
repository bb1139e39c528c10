"""Queries limited to one tenant's rows of the base tables.

Every base table whose rows belong to a tenant carries `tenant_id` (app.core.models.TenantScoped; the
audit log, event log and guest faults have a nullable one of their own, for platform-wide rows). These
helpers write the "only this tenant's rows" condition once, so a query that forgets it stands out.
"""

from __future__ import annotations

import uuid
from typing import Any, TypeVar, overload

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NotFound
from app.core.i18n import N_

M = TypeVar("M")
S = TypeVar("S", bound=Select[Any])


def tenant_is(model: type[Any], tenant_id: uuid.UUID) -> ColumnElement[bool]:
    """The condition "this row is the tenant's" for a base table with a `tenant_id` column."""
    column = getattr(model, "tenant_id", None)
    if column is None:
        raise TypeError(f"{model.__name__} has no tenant_id: it is not a tenant's table")
    condition: ColumnElement[bool] = column == tenant_id
    return condition


@overload
def in_tenant(target: type[M], tenant_id: uuid.UUID) -> Select[tuple[M]]: ...


@overload
def in_tenant(target: S, tenant_id: uuid.UUID) -> S: ...


def in_tenant(target: Any, tenant_id: uuid.UUID) -> Any:
    """`select(Model)` of one tenant's rows, or a statement limited to the tenant's rows of every entity
    it selects that has a `tenant_id` (joined-only entities are not touched: filter those with
    `tenant_is`)."""
    if isinstance(target, Select):
        entities = [d["entity"] for d in target.column_descriptions if d.get("entity") is not None]
        scoped = list(dict.fromkeys(e for e in entities if hasattr(e, "tenant_id")))
        if not scoped:
            raise TypeError("The statement selects no table with a tenant_id")
        return target.where(*(tenant_is(e, tenant_id) for e in scoped))
    return select(target).where(tenant_is(target, tenant_id))


async def get_in_tenant(
    session: AsyncSession, model: type[M], row_id: uuid.UUID, tenant_id: uuid.UUID, what: str = ""
) -> M:
    """The row with this id if it is the tenant's; NotFound otherwise (the same answer for a row of
    another tenant as for none, so ids of other tenants reveal nothing)."""
    row = await session.scalar(in_tenant(model, tenant_id).where(model.id == row_id))  # type: ignore[attr-defined]
    if row is None:
        raise NotFound(N_("No %(what)s %(row_id)s", what=what or model.__name__, row_id=row_id))
    return row
