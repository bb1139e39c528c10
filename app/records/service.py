"""The one record service. Generated pages, the JSON API and (later) the WASM host API all call it.

It injects the tenant, hides soft-deleted rows, applies the user's data scope (app.access.scopes) to
every read and write (a row outside it does not exist for them), checks `db.<entity>.<op>` permissions, applies
whitelisted filters/search/sort/paging with a capped count (the rules live in app.records.query), sets the
standard fields, checks the optimistic-lock `version`, writes an audit row with a before/after diff for every change and
publishes `{plugin}.{entity}.created|updated|deleted|restored` after the transaction commits.
"""

from __future__ import annotations

import builtins
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from litestar.exceptions import PermissionDeniedException
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import dml as pg_dml
from sqlalchemy.dialects.sqlite import dml as sqlite_dml
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.access.scopes import DataScope
from app.audit import Actor
from app.core.errors import Conflict, NotFound, ValidationFailed
from app.events import PENDING_KEY, Event, emit
from app.plugins.runtime import EntityRef
from app.records import query as query_rules
from app.records.query import ListQuery, comparable, declared, filter_conditions, order_by, search_condition
from app.records.values import FieldError, default_for, parse, to_json
from app.services import services_of

__all__ = ["ListQuery", "ListResult", "RecordService", "StaleVersion"]  # ListQuery lives in app.records.query


class _PgInsertUnlessTaken(postgresql.Insert):
    """The dialects' INSERT and ON CONFLICT constructs opt out of SQLAlchemy's compiled cache, so each
    insert was compiled anew. These classes are only ever built as `INSERT ... ON CONFLICT DO NOTHING
    RETURNING id` (RecordService._insert_unless_taken, no conflict target): the key (class, table,
    returning, the constant clause's class) identifies that statement, so caching it is safe."""

    inherit_cache = True


class _SqliteInsertUnlessTaken(sqlite.Insert):
    inherit_cache = True


class _PgDoNothing(pg_dml.OnConflictDoNothing):
    _traverse_internals: list[Any] = []  # no conflict target: nothing varies
    inherit_cache = True


class _SqliteDoNothing(sqlite_dml.OnConflictDoNothing):
    _traverse_internals: list[Any] = []
    inherit_cache = True


class StaleVersion(Conflict):
    """Someone changed the record since it was read; `current` holds their values."""

    def __init__(self, current: dict[str, Any], given: int) -> None:
        super().__init__(
            f"The record was changed by someone else (now version {current.get('version')}, "
            f"you edited version {given}); nothing was saved"
        )
        self.current = current


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

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.query.size))


def _row(mapping: Mapping[Any, Any]) -> dict[str, Any]:
    return dict(mapping)


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


class RecordService:
    def __init__(
        self,
        session: AsyncSession,
        tenant_id: uuid.UUID,
        actor: Actor,
        can: Callable[[str], bool],
        *,
        scope: DataScope | None = None,
        hooks: RecordHooks = NO_HOOKS,
    ) -> None:
        self.db = session
        self.tenant_id = tenant_id
        self.actor = actor
        self.can = can
        self.scope = scope  # None: every row of the tenant (background calls acting as a plugin)
        self.hooks = hooks  # the app's: AppServices.record_hooks

    # -- permission ------------------------------------------------------------------------------

    def require(self, entity: EntityRef, op: str) -> None:
        perm = entity.permission(op)
        if not self.can(perm):
            raise PermissionDeniedException(f"You need the permission {perm} in this tenant")

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

    async def list(self, entity: EntityRef, query: ListQuery) -> ListResult:
        self.require(entity, "select")
        query.clamp()
        stmt = await self._filtered(entity, query)
        order = order_by(entity, query.sort)
        rows = (
            (await self.db.execute(stmt.order_by(*order).offset(query.row_offset).limit(query.size)))
            .mappings()
            .all()
        )
        total, capped = await self.count(stmt, query.count_cap)
        return ListResult([_row(r) for r in rows], total, capped, query)

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
        limited = stmt.with_only_columns(sa.literal(1)).order_by(None).limit(cap + 1).subquery()
        n = await self.db.scalar(sa.select(sa.func.count()).select_from(limited)) or 0
        return (cap, True) if n > cap else (int(n), False)

    async def iterate(self, entity: EntityRef, query: ListQuery, batch: int = 500) -> Any:
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
            raise NotFound(f"No {entity.spec.label} with id {record_id!r}") from exc
        t = entity.table
        stmt = sa.select(t).where(*await self._visible(entity), t.c.id == rid)
        if deleted is not None:
            stmt = stmt.where(t.c.deleted_at.is_not(None) if deleted else t.c.deleted_at.is_(None))
        row = (await self.db.execute(stmt)).mappings().first()
        if row is None:
            raise NotFound(f"No {entity.spec.label} with id {rid}")
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
        label_col = t.c.get(entity.spec.display_field, t.c.id)
        stmt = (
            (await self._filtered(entity, ListQuery(q=q)))
            .with_only_columns(t.c.id, label_col)
            .order_by(label_col)
            .limit(limit)
        )
        return [(rid, str(label)) for rid, label in (await self.db.execute(stmt)).all()]

    # -- writing ---------------------------------------------------------------------------------

    async def _check_values(
        self,
        entity: EntityRef,
        data: Mapping[str, Any],
        *,
        creating: bool,
        record_id: uuid.UUID | None = None,
        unique: bool = True,
    ) -> dict[str, Any]:
        errors: dict[str, str] = {}
        values: dict[str, Any] = {}
        unknown = [k for k in data if not entity.spec.has_field(k)]
        for key in unknown:
            errors[key] = (
                "Unknown field" if key not in entity.table.c else "This field is set by the platform"
            )
        for spec in entity.spec.fields:
            if spec.name not in data:
                if creating:
                    default = default_for(spec)
                    if default is not None:
                        values[spec.name] = default
                    elif spec.required:
                        errors[spec.name] = "This field is required."
                continue
            try:
                value = parse(spec, data[spec.name])
            except FieldError as exc:
                errors[spec.name] = str(exc)
                continue
            if value is None and spec.required:
                errors[spec.name] = "This field is required."
                continue
            values[spec.name] = value
        if not errors:
            if unique:
                errors.update(await self._check_unique(entity, values, record_id))
            errors.update(await self._check_references(entity, values))
            if (
                errors and not unique
            ):  # refused anyway: name a taken unique value too, as the check up front would
                errors = {**await self._check_unique(entity, values, record_id), **errors}
        if errors:
            raise ValidationFailed(errors)
        return values

    async def _check_unique(
        self, entity: EntityRef, values: Mapping[str, Any], record_id: uuid.UUID | None
    ) -> dict[str, str]:
        errors = {}
        t = entity.table
        for spec in entity.spec.fields:
            if spec.unique and values.get(spec.name) is not None:
                stmt = sa.select(t.c.id).where(
                    t.c.tenant_id == self.tenant_id,
                    t.c.deleted_at.is_(None),
                    t.c[spec.name] == values[spec.name],
                )
                if record_id is not None:
                    stmt = stmt.where(t.c.id != record_id)
                if await self.db.scalar(stmt.limit(1)):
                    errors[spec.name] = (
                        f"Another {entity.spec.label} already has {spec.label} = {values[spec.name]}."
                    )
        return errors

    async def _check_references(self, entity: EntityRef, values: Mapping[str, Any]) -> dict[str, str]:
        from app.plugins import runtime

        errors: dict[str, str] = {}
        refs = [s for s in entity.spec.fields if s.type == "reference" and values.get(s.name) is not None]
        if not refs:
            return errors
        plugins = await runtime.enabled_for(self.db, self.tenant_id)
        for spec in refs:
            target = runtime.find_entity(plugins, spec.entity or "")
            if target is None:
                errors[spec.name] = f"{spec.entity} is not available in this tenant."
                continue
            t = target.table
            # A row outside the user's data scope cannot be referenced (nor its existence learnt).
            found = await self.db.scalar(
                sa.select(t.c.id).where(
                    *await self._visible(target), t.c.deleted_at.is_(None), t.c.id == values[spec.name]
                )
            )
            if found is None:
                errors[spec.name] = f"No {target.spec.label} with that id in this tenant."
        return errors

    async def _publish(self, entity: EntityRef, action: str, row: Mapping[str, Any]) -> None:
        """Log the change's event in this transaction (the outbox); it is delivered after the commit."""
        payload = {
            "id": str(row["id"]),
            "entity": entity.name,
            "plugin": entity.plugin_id,
            "tenant_id": str(self.tenant_id),
            "record": {k: to_json(v) for k, v in row.items() if k != "tenant_id"},
            "actor": self.actor.email,
            "actor_id": str(self.actor.user_id) if self.actor.user_id else None,
        }
        await emit(
            self.db,
            Event(
                f"{entity.plugin_id}.{entity.name}.{action}",
                str(self.tenant_id),
                payload,
                source=entity.plugin_id,
                actor=self.actor.email,
            ),
        )

    async def _audit(
        self,
        entity: EntityRef,
        action: str,
        rid: Any,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
        summary: str,
    ) -> None:
        def plain(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
            if row is None:
                return None
            return {
                k: to_json(v) for k, v in row.items() if k not in {"tenant_id", "updated_at", "updated_by"}
            }

        await audit.write(
            self.db,
            self.actor,
            f"record.{action}",
            f"{entity.plugin_id}.{entity.name}",
            rid,
            tenant_id=self.tenant_id,
            summary=summary,
            before=plain(before),
            after=plain(after),
        )

    async def _check_in_scope(self, entity: EntityRef, row: Mapping[str, Any]) -> None:
        """A write must not put a row outside the writer's own data scope (they could not see it)."""
        if self.scope is not None and (problem := await self.scope.write_problem(self.db, entity, row)):
            raise ValidationFailed(problem)

    async def _write(self, stmt: Any, entity: EntityRef, params: Mapping[str, Any] | None = None) -> Any:
        # No savepoint here: a failed write fails the caller's unit of work (request, guest call or
        # one imported row), which owns the transaction or its own savepoint.
        try:
            return await self.db.execute(stmt, params)
        except IntegrityError as exc:
            unique = [f.label for f in entity.spec.fields if f.unique]
            raise Conflict(
                f"A conflicting {entity.spec.label} exists (unique: {', '.join(unique) or 'id'})"
            ) from exc

    def _insert_unless_taken(self, entity: EntityRef) -> Any:
        """INSERT ... RETURNING id that returns no row, instead of failing, when a unique index refuses it.
        Built once per table and run with the row as parameters: `.values(**row)` would build and
        cache-key a new statement per insert."""
        t = entity.table
        dialect = self.db.get_bind().dialect.name
        key = f"portal_insert_{dialect}"
        stmt = t.info.get(key)
        if stmt is None:
            if dialect in ("postgresql", "sqlite"):
                pg = dialect == "postgresql"
                stmt = (_PgInsertUnlessTaken if pg else _SqliteInsertUnlessTaken)(t).returning(t.c.id)
                stmt._post_values_clause = (
                    _PgDoNothing() if pg else _SqliteDoNothing()
                )  # ON CONFLICT DO NOTHING
            else:
                stmt = sa.insert(t).returning(t.c.id)
            t.info[key] = stmt
        return stmt

    async def insert(self, entity: EntityRef, data: Mapping[str, Any]) -> dict[str, Any]:
        self.require(entity, "insert")
        # Unique values are left to the unique indexes (INSERT ... ON CONFLICT DO NOTHING): a SELECT per
        # unique field runs only when the row is refused, to say which value is taken.
        values = await self._check_values(entity, data, creating=True, unique=False)
        now = dt.datetime.now(dt.UTC)
        row = {
            **values,
            "id": uuid.uuid4(),
            "tenant_id": self.tenant_id,
            "created_at": now,
            "updated_at": now,
            "created_by": self.actor.user_id,
            "updated_by": self.actor.user_id,
            "deleted_at": None,
            "version": 1,
        }
        for check in self.hooks.validate:
            await check(self, entity, row, None)
        try:
            await self._check_in_scope(entity, row)
        except ValidationFailed:
            if clash := await self._check_unique(entity, values, None):
                raise ValidationFailed(clash) from None
            raise
        result = await self._write(self._insert_unless_taken(entity), entity, row)
        if result.first() is None:
            if clash := await self._check_unique(entity, values, None):
                raise ValidationFailed(clash)
            raise Conflict(
                f"A conflicting {entity.spec.label} exists (unique: "
                f"{', '.join(f.label for f in entity.spec.fields if f.unique) or 'id'})"
            )
        label = row.get(entity.spec.display_field, row["id"])
        await self._audit(entity, "create", row["id"], None, row, f"Created {entity.spec.label} {label}")
        await self._publish(entity, "created", row)
        for hook in self.hooks.insert:
            await hook(self, entity, row)
        return row

    async def update(
        self, entity: EntityRef, record_id: uuid.UUID | str, data: Mapping[str, Any], version: int | None
    ) -> dict[str, Any]:
        self.require(entity, "update")
        before = await self._load(entity, record_id)
        if version is None:
            raise ValidationFailed({"version": "The record's version is required to update it."})
        if int(version) != before["version"]:
            raise StaleVersion(before, int(version))
        values = await self._check_values(entity, data, creating=False, record_id=before["id"])
        t = entity.table
        now = dt.datetime.now(dt.UTC)
        changes = {
            **values,
            "updated_at": now,
            "updated_by": self.actor.user_id,
            "version": before["version"] + 1,
        }
        for check in self.hooks.validate:
            await check(self, entity, {**before, **changes}, before)
        await self._check_in_scope(entity, {**before, **changes})
        result = await self._write(
            sa.update(t)
            .where(
                t.c.id == before["id"],
                t.c.tenant_id == self.tenant_id,
                t.c.version == before["version"],
                t.c.deleted_at.is_(None),
            )
            .values(**changes),
            entity,
        )
        if result.rowcount != 1:  # changed between our read and our write
            raise StaleVersion(await self._load(entity, before["id"], deleted=None), int(version))
        after = {**before, **changes}
        await self._audit(
            entity,
            "update",
            before["id"],
            before,
            after,
            f"Edited {entity.spec.label} {after.get(entity.spec.display_field, before['id'])}",
        )
        await self._publish(entity, "updated", after)
        return after

    async def _set_deleted(
        self,
        entity: EntityRef,
        before: dict[str, Any],
        deleted_at: dt.datetime | None,
        action: str,
        verb: str,
    ) -> dict[str, Any]:
        t = entity.table
        now = dt.datetime.now(dt.UTC)
        changes = {
            "deleted_at": deleted_at,
            "updated_at": now,
            "updated_by": self.actor.user_id,
            "version": before["version"] + 1,
        }
        await self._write(
            sa.update(t).where(t.c.id == before["id"], t.c.tenant_id == self.tenant_id).values(**changes),
            entity,
        )
        after = {**before, **changes}
        await self._audit(
            entity,
            action,
            before["id"],
            {"deleted_at": to_json(before["deleted_at"])},
            {"deleted_at": to_json(deleted_at)},
            f"{verb} {entity.spec.label} {before.get(entity.spec.display_field, before['id'])}",
        )
        await self._publish(entity, {"delete": "deleted", "restore": "restored"}[action], after)
        return after

    async def delete(
        self, entity: EntityRef, record_id: uuid.UUID | str, *, at: dt.datetime | None = None
    ) -> dict[str, Any]:
        """Soft delete: the row stays, hidden, and can be restored (`at`: a batch's shared instant)."""
        self.require(entity, "delete")
        before = await self._load(entity, record_id)
        return await self._set_deleted(entity, before, at or dt.datetime.now(dt.UTC), "delete", "Deleted")

    async def restore(self, entity: EntityRef, record_id: uuid.UUID | str) -> dict[str, Any]:
        self.require(entity, "delete")
        before = await self._load(entity, record_id, deleted=True)
        live = {s.name: before[s.name] for s in entity.spec.fields if s.unique}
        clash = await self._check_unique(entity, live, before["id"])
        if clash:
            raise Conflict("Cannot restore: " + " ".join(clash.values()))
        return await self._set_deleted(entity, before, None, "restore", "Restored")

    async def bulk_delete(self, entity: EntityRef, ids: Iterable[str]) -> int:
        count = 0
        for rid in ids:
            await self.delete(entity, rid)
            count += 1
        return count

    async def import_rows(
        self, entity: EntityRef, rows: builtins.list[dict[str, Any]]
    ) -> tuple[int, dict[int, dict[str, str]]]:
        """Insert all rows or none: returns (inserted, errors by 1-based row number)."""
        self.require(entity, "insert")
        errors: dict[int, dict[str, str]] = {}
        inserted = 0
        async with self.db.begin_nested() as savepoint:
            for number, data in enumerate(rows, start=1):
                try:
                    async with self.db.begin_nested():  # a refused row must not poison the next ones
                        await self.insert(entity, data)
                    inserted += 1
                except ValidationFailed as exc:
                    errors[number] = exc.errors
                except Conflict as exc:
                    errors[number] = {"": exc.detail}
            if errors:
                await savepoint.rollback()
                inserted = 0
        if errors:  # rolled back with the savepoint: never delivered in-process either
            self.db.sync_session.info.pop(PENDING_KEY, None)
        return inserted, errors
