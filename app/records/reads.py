"""The read side of the record service: every read carries the tenant, hides soft-deleted rows, applies
the user's data scope (app.access.scopes: a row outside it does not exist for them) and checks the
`db.<entity>.select` permission; whitelisted filters/search/sort/paging with a capped count follow the
rules in app.records.query. RecordService (app.records.service) adds the writes on top.
"""

from __future__ import annotations

import builtins
import functools
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from litestar.exceptions import PermissionDeniedException
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.util import ClauseAdapter

from app.access.scopes import DataScope
from app.audit import Actor
from app.core.errors import NotFound, ValidationFailed
from app.core.i18n import N_
from app.plugins.runtime import EntityRef
from app.records import query as query_rules
from app.records.query import ListQuery, comparable, declared, filter_conditions, order_by, search_condition

AGGREGATE_FUNCTIONS = {"count", "sum", "avg", "min", "max"}
MAX_AGGREGATE_GROUPS = 1_000


@dataclass
class Aggregate:
    """A structured aggregation (never SQL): group by whitelisted fields, functions over fields."""

    group_by: list[str] = field(default_factory=list)
    metrics: list[tuple[str, str | None]] = field(default_factory=lambda: [("count", None)])
    filters: dict[str, str] = field(default_factory=dict)
    limit: int = MAX_AGGREGATE_GROUPS


@dataclass
class ListResult:
    rows: list[dict[str, Any]]
    total: int
    capped: bool  # total is a lower bound
    query: ListQuery
    # Display names of referenced rows read with the rows (`list(labels=...)`), per reference field.
    labels: dict[str, dict[Any, str]] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.query.size))


def _capped_count(stmt: sa.Select[Any], cap: int) -> sa.Select[Any]:
    """How many rows `stmt` has, looking at no more than cap + 1 of them (as `portal_total`)."""
    return _count_up_to(stmt, cap + 1)


def _count_up_to(stmt: sa.Select[Any], limit: Any) -> sa.Select[Any]:
    limited = stmt.with_only_columns(sa.literal(1)).order_by(None).limit(limit).subquery()
    return sa.select(sa.func.count().label("portal_total")).select_from(limited)


# The parameters of a list statement (`RecordReads.list`).
_TENANT, _OFFSET, _LIMIT, _CAP = "portal_tenant", "portal_offset", "portal_limit", "portal_cap"
_SEARCH, _TERM = "portal_q", "portal_f"


def _with_count(
    stmt: sa.Select[Any], page: sa.Select[Any], order: builtins.list[Any], labels: dict[str, sa.Label[Any]]
) -> tuple[sa.Select[Any], dict[str, sa.Label[Any]]]:
    """One round trip: the capped count (`portal_cap` rows at most) as a one-row subquery, the page LEFT
    JOINed to it, so a page past the end still brings the count (one row of NULLs); ordered again
    outside the join. The reference labels are selected outside too, on the page's rows: inside, a
    label subquery would also run for every row OFFSET skips (page 100 = 2,475 of them)."""
    counted = _count_up_to(stmt, sa.bindparam(_CAP)).subquery("portal_count")
    rows_sub = page.subquery("portal_page")
    adapt = ClauseAdapter(rows_sub).traverse
    outer = {name: adapt(label) for name, label in labels.items()}
    both = (
        sa.select(counted.c.portal_total, rows_sub, *outer.values())
        .select_from(counted.outerjoin(rows_sub, sa.true()))
        .order_by(*[adapt(o) for o in order])
    )
    return both, outer


# A list statement's shape: (field, op) per filter term (app.records.query.Term); its values are
# bound as portal_f0, portal_f1, ... and the search needle as portal_q.
Shape = tuple[tuple[str, str], ...]


@functools.lru_cache(maxsize=1024)
def _list_statement(
    t: sa.Table,
    sort: str,
    deleted: bool,
    labels: tuple[tuple[str, sa.Table, str], ...],
    terms: Shape,
    search: tuple[str, ...],
) -> tuple[sa.Select[Any], dict[str, sa.Label[Any]]]:
    """`RecordReads.list` without a data scope, as one statement object per shape (run with
    portal_tenant/offset/limit/cap and the terms' values): the SQL of the general path, with its label
    rules, and no statement construction or cache key computed per request."""
    tenant = sa.bindparam(_TENANT, type_=t.c.tenant_id.type)
    live = t.c.deleted_at.is_not(None) if deleted else t.c.deleted_at.is_(None)
    stmt = sa.select(t).where(t.c.tenant_id == tenant, live)
    if search:
        stmt = stmt.where(query_rules.search_clause(t, search, sa.bindparam(_SEARCH)))
    stmt = stmt.where(
        *(
            query_rules.term_condition(t.c[name], op, sa.bindparam(f"{_TERM}{i}"))
            for i, (name, op) in enumerate(terms)
        )
    )
    col = t.c[sort.lstrip("-")]
    order = [col.desc(), t.c.id.desc()] if sort.startswith("-") else [col.asc(), t.c.id.asc()]
    page = stmt.order_by(*order).offset(sa.bindparam(_OFFSET)).limit(sa.bindparam(_LIMIT))
    folded: dict[str, sa.Label[Any]] = {}
    for name, tt, display_field in labels:
        label_col = tt.c.get(display_field, tt.c.id)
        if tt is t or not isinstance(label_col.type, sa.String):
            continue
        sub = (
            sa.select(sa.func.coalesce(label_col, "None"))
            .where(tt.c.tenant_id == tenant, tt.c.id == t.c[name])
            .scalar_subquery()
        )
        folded[name] = sub.label(f"portal_label_{name}")
    return _with_count(stmt, page, order, folded)


def _row(mapping: Mapping[Any, Any]) -> dict[str, Any]:
    return dict(mapping)


class RecordReads:
    """Reads of records for one tenant, user and data scope (see the module docstring)."""

    def __init__(
        self,
        session: AsyncSession,
        tenant_id: uuid.UUID,
        actor: Actor,
        can: Callable[[str], bool],
        *,
        scope: DataScope | None = None,
    ) -> None:
        self.db = session
        self.tenant_id = tenant_id
        self.actor = actor
        self.can = can
        self.scope = scope  # None: every row of the tenant (background calls acting as a plugin)

    # -- permission ------------------------------------------------------------------------------

    def require(self, entity: EntityRef, op: str) -> None:
        perm = entity.permission(op)
        if not self.can(perm):
            raise PermissionDeniedException(
                detail=N_("You need the permission %(perm)s in this tenant", perm=perm)
            )

    # -- reading ---------------------------------------------------------------------------------

    async def _visible(self, entity: EntityRef) -> list[sa.ColumnElement[bool]]:
        """The tenant and the data scope: the conditions every statement on `entity` carries."""
        conds: list[sa.ColumnElement[bool]] = [entity.table.c.tenant_id == self.tenant_id]
        if self.scope is not None:
            cond = await self.scope.condition(self.db, entity)
            if cond is not None:
                conds.append(cond)
        return conds

    async def _base(self, entity: EntityRef, *, deleted: bool = False) -> sa.Select[Any]:
        t = entity.table
        live = t.c.deleted_at.is_not(None) if deleted else t.c.deleted_at.is_(None)
        return sa.select(t).where(*await self._visible(entity), live)

    async def _filtered(self, entity: EntityRef, query: ListQuery) -> sa.Select[Any]:
        stmt = await self._base(entity, deleted=query.deleted)
        search = search_condition(entity, query.q)
        if search is not None:
            stmt = stmt.where(search)
        return stmt.where(*filter_conditions(entity, query.filters, query.contains))

    async def list(
        self, entity: EntityRef, query: ListQuery, *, labels: Mapping[str, EntityRef] | None = None
    ) -> ListResult:
        """A page of rows and their (capped) count. `labels`: reference fields (name -> target entity)
        whose display names come with the rows, as `labels(target, ids)` would give them, from a
        subquery per field in the rows' statement instead of a query per field afterwards."""
        self.require(entity, "select")
        query.clamp()
        order = order_by(entity, query.sort)  # refuses what cannot be sorted
        targets = labels or {}
        cap = query.count_cap
        values: dict[str, Any] = {_OFFSET: query.row_offset, _LIMIT: query.size, _CAP: cap + 1}
        folded: dict[str, sa.Label[Any]]
        if await self._unscoped(entity, targets):
            # Without a data scope the statement is built once per shape and run with parameters.
            allowed = tuple(
                (name, target.table, target.spec.display_field)
                for name, target in targets.items()
                if self.can(target.permission("select"))
            )
            terms = query_rules.parse_filters(entity, query.filters, query.contains)
            search = query_rules.search_columns(entity) if query.q else ()
            shape = tuple((x.name, x.op) for x in terms)
            both, folded = _list_statement(entity.table, query.sort, query.deleted, allowed, shape, search)
            values[_TENANT] = self.tenant_id
            values |= {f"{_TERM}{i}": x.value for i, x in enumerate(terms) if x.op in query_rules.COMPARISONS}
            if search:
                values[_SEARCH] = query_rules.contains_pattern(query.q)
        else:
            stmt = await self._filtered(entity, query)
            page = stmt.order_by(*order).offset(sa.bindparam(_OFFSET)).limit(sa.bindparam(_LIMIT))
            both, folded = _with_count(stmt, page, order, await self._label_columns(entity, targets))
        rows: builtins.list[dict[str, Any]] = []
        n = 0
        for mapping in (await self.db.execute(both, values)).mappings().all():
            row = _row(mapping)
            n = row.pop("portal_total") or 0
            if row["id"] is not None:
                rows.append(row)
        found: dict[str, dict[Any, str]] = {}
        for name, column in folded.items():
            found[name] = {}
            for r in rows:
                label = r.pop(column.key)
                if label is not None:
                    found[name][r[name]] = label
        total, capped = (cap, True) if n > cap else (int(n), False)
        return ListResult(rows, total, capped, query, found)

    async def _unscoped(self, entity: EntityRef, targets: Mapping[str, EntityRef]) -> bool:
        """Whether the data scope adds no condition to `entity` or to any of the label targets."""
        if self.scope is None:
            return True
        for ref in (entity, *targets.values()):
            if await self.scope.condition(self.db, ref) is not None:
                return False
        return True

    async def _label_columns(
        self, entity: EntityRef, targets: Mapping[str, EntityRef]
    ) -> dict[str, sa.Label[Any]]:
        """(SELECT coalesce(label, 'None') FROM target WHERE visible AND id = ref) per reference field:
        NULL when no visible row, 'None' for an empty label, as str() gives it in `labels`. Only string
        labels of another table (a self-reference or a number keeps the query of `labels`)."""
        out: dict[str, sa.Label[Any]] = {}
        t = entity.table
        for name, target in targets.items():
            tt = target.table
            label_col = tt.c.get(target.spec.display_field, tt.c.id)
            if (
                tt is t
                or not isinstance(label_col.type, sa.String)
                or not self.can(target.permission("select"))
            ):
                continue
            sub = (
                sa.select(sa.func.coalesce(label_col, "None"))
                .where(*await self._visible(target), tt.c.id == t.c[name])
                .scalar_subquery()
            )
            out[name] = sub.label(f"portal_label_{name}")
        return out

    async def recent(self, entity: EntityRef, limit: int = 5) -> builtins.list[dict[str, Any]]:
        """The rows this user may see here (tenant, permission, data scope), last changed first."""
        self.require(entity, "select")
        stmt = await self._filtered(entity, ListQuery())
        t = entity.table
        rows = await self.db.execute(stmt.order_by(t.c.updated_at.desc(), t.c.id.desc()).limit(max(1, limit)))
        return [_row(r) for r in rows.mappings().all()]

    async def aggregate(self, entity: EntityRef, spec: Aggregate) -> builtins.list[dict[str, Any]]:
        """Grouped counts/sums/averages/min/max over the rows this user may select."""
        self.require(entity, "select")
        t = entity.table
        errors: dict[str, str] = {}
        groups = []
        for i, group in enumerate(spec.group_by):
            f = declared(entity, group)
            if not comparable(f):
                errors[f"group_by[{i}]"] = f"cannot group by {group!r}"
            else:
                groups.append(t.c[group].label(group))
        columns = []
        whole: set[str] = set()  # integer results (PostgreSQL sums integers as numeric)
        for i, (fn, name) in enumerate(spec.metrics):
            if fn not in AGGREGATE_FUNCTIONS:
                errors[f"metrics[{i}].fn"] = (
                    f"unknown function {fn!r} (use {', '.join(sorted(AGGREGATE_FUNCTIONS))})"
                )
                continue
            if fn == "count" and not name:
                columns.append(sa.func.count().label("count"))
                continue
            f = declared(entity, name or "")
            numeric = f is not None and f.type in {"integer", "decimal"}
            ordered = f is not None and f.type in {"integer", "decimal", "date", "datetime", "string"}
            if (
                f is None
                or (fn in {"sum", "avg"} and not numeric)
                or (fn in {"min", "max", "count"} and not ordered)
            ):
                errors[f"metrics[{i}].field"] = f"{fn} is not allowed over {name!r}"
                continue
            columns.append(getattr(sa.func, fn)(t.c[f.name]).label(f"{fn}_{f.name}"))
            if f.type == "integer" and fn != "avg":
                whole.add(f"{fn}_{f.name}")
        if errors:
            raise ValidationFailed(errors)
        base = (
            (await self._filtered(entity, ListQuery(filters=spec.filters)))
            .with_only_columns(*groups, *columns)
            .select_from(t)
        )
        if groups:
            base = base.group_by(*[t.c[g.name] for g in groups]).order_by(*[t.c[g.name] for g in groups])
        limit = max(1, min(spec.limit, MAX_AGGREGATE_GROUPS))
        rows = (await self.db.execute(base.limit(limit))).mappings().all()
        return [{k: int(v) if k in whole and v is not None else v for k, v in r.items()} for r in rows]

    async def count(self, stmt: sa.Select[Any], cap: int | None = None) -> tuple[int, bool]:
        cap = cap or query_rules.COUNT_CAP
        n = await self.db.scalar(_capped_count(stmt, cap)) or 0
        return (cap, True) if n > cap else (int(n), False)

    async def iterate(
        self, entity: EntityRef, query: ListQuery, batch: int = 500
    ) -> AsyncIterator[dict[str, Any]]:
        """All rows of a filtered list, in batches (CSV export streams from this)."""
        self.require(entity, "select")
        stmt = (await self._filtered(entity, query)).order_by(*order_by(entity, query.sort))
        offset = 0
        while True:
            rows = (await self.db.execute(stmt.offset(offset).limit(batch))).mappings().all()
            if not rows:
                return
            for r in rows:
                yield _row(r)
            offset += batch

    async def get(
        self, entity: EntityRef, record_id: uuid.UUID | str, *, deleted: bool | None = False
    ) -> dict[str, Any]:
        self.require(entity, "select")
        return await self._load(entity, record_id, deleted=deleted)

    async def _load(
        self, entity: EntityRef, record_id: uuid.UUID | str, *, deleted: bool | None = False
    ) -> dict[str, Any]:
        try:
            rid = record_id if isinstance(record_id, uuid.UUID) else uuid.UUID(str(record_id))
        except ValueError as exc:
            raise NotFound(
                N_("No %(label)s with id %(record_id)s", label=entity.spec.label, record_id=repr(record_id))
            ) from exc
        t = entity.table
        stmt = sa.select(t).where(*await self._visible(entity), t.c.id == rid)
        if deleted is not None:
            stmt = stmt.where(t.c.deleted_at.is_not(None) if deleted else t.c.deleted_at.is_(None))
        row = (await self.db.execute(stmt)).mappings().first()
        if row is None:
            raise NotFound(N_("No %(label)s with id %(rid)s", label=entity.spec.label, rid=rid))
        return _row(row)

    async def labels(self, entity: EntityRef, ids: Iterable[Any]) -> dict[Any, str]:
        """Display names of referenced rows (for list cells and pickers); only rows of this tenant."""
        wanted = {i for i in ids if i is not None}
        if not wanted or not self.can(entity.permission("select")):
            return {}
        t = entity.table
        label_col = t.c.get(entity.spec.display_field, t.c.id)
        rows = await self.db.execute(
            sa.select(t.c.id, label_col).where(*await self._visible(entity), t.c.id.in_(wanted))
        )
        return {rid: str(label) for rid, label in rows.all()}

    async def search_labels(
        self, entity: EntityRef, q: str, limit: int = 20
    ) -> builtins.list[tuple[uuid.UUID, str]]:
        self.require(entity, "select")
        t = entity.table
        if not q and await self._unscoped(entity, {}):
            # A filter's option list (no search, no scope): one statement object per table and label.
            stmt = _all_labels(t, entity.spec.display_field)
            values = {_TENANT: self.tenant_id, _LIMIT: limit}
            return [(rid, str(label)) for rid, label in (await self.db.execute(stmt, values)).all()]
        label_col = t.c.get(entity.spec.display_field, t.c.id)
        stmt = (
            (await self._filtered(entity, ListQuery(q=q)))
            .with_only_columns(t.c.id, label_col)
            .order_by(label_col)
            .limit(limit)
        )
        return [(rid, str(label)) for rid, label in (await self.db.execute(stmt)).all()]


@functools.lru_cache(maxsize=1024)
def _all_labels(t: sa.Table, display_field: str) -> sa.Select[Any]:
    """`search_labels` with no search and no data scope, run with portal_tenant and portal_limit."""
    label_col = t.c.get(display_field, t.c.id)
    return (
        sa.select(t.c.id, label_col)
        .where(t.c.tenant_id == sa.bindparam(_TENANT, type_=t.c.tenant_id.type), t.c.deleted_at.is_(None))
        .order_by(label_col)
        .limit(sa.bindparam(_LIMIT))
    )
