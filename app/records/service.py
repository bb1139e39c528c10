"""The one record service. Generated pages, the JSON API and the WASM host API all call it.

Reads (get/list/count/search/aggregate) live in app.records.reads; this module adds the writes: each
checks its `db.<entity>.<op>` permission and the user's data scope, sets the standard fields, checks the
optimistic-lock `version`, runs the app's record hooks (app.records.hooks), writes an audit row with a
before/after diff and publishes `{plugin}.{entity}.created|updated|deleted|restored` after the
transaction commits.
"""

from __future__ import annotations

import builtins
import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import dml as pg_dml
from sqlalchemy.dialects.sqlite import dml as sqlite_dml
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.access.scopes import DataScope
from app.audit import Actor
from app.core.errors import Conflict, ConflictingValues, ValidationFailed
from app.core.i18n import N_
from app.events import PENDING_KEY, Event, emit, prepare, recorded_in
from app.plugins.runtime import EntityRef
from app.records import computed, writes
from app.records.hooks import NO_HOOKS, InsertHook, RecordHooks, ValidateHook, app_hooks
from app.records.query import ListQuery
from app.records.reads import AGGREGATE_FUNCTIONS, MAX_AGGREGATE_GROUPS, Aggregate, ListResult, RecordReads
from app.records.values import FieldError, default_for, parse, to_json

# Callers import these from here, the service's front door; they live in query, reads and hooks.
__all__ = [
    "AGGREGATE_FUNCTIONS",
    "MAX_AGGREGATE_GROUPS",
    "NO_HOOKS",
    "Aggregate",
    "InsertHook",
    "ListQuery",
    "ListResult",
    "RecordHooks",
    "RecordReads",
    "RecordService",
    "StaleVersion",
    "ValidateHook",
    "app_hooks",
]


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


class RecordService(RecordReads):
    """Reads (RecordReads) and writes of records for one tenant, user and data scope."""

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
        super().__init__(session, tenant_id, actor, can, scope=scope)
        self.hooks = hooks  # the app's: AppServices.record_hooks

    # -- writing ---------------------------------------------------------------------------------

    async def _check_values(
        self,
        entity: EntityRef,
        data: Mapping[str, Any],
        *,
        creating: bool,
        record_id: uuid.UUID | None = None,
        unique: bool = True,
        references: bool = True,
    ) -> dict[str, Any]:
        errors: dict[str, str] = {}
        values: dict[str, Any] = {}
        unknown = [k for k in data if not entity.spec.has_field(k)]
        for key in unknown:
            errors[key] = (
                N_("Unknown field") if key not in entity.table.c else N_("This field is set by the platform")
            )
        for spec in entity.spec.fields:
            if spec.computed:
                continue  # kept by the service (app.records.computed); a value sent for it is ignored
            if spec.name not in data:
                if creating:
                    default = default_for(spec)
                    if default is not None:
                        values[spec.name] = default
                    elif spec.required:
                        errors[spec.name] = N_("This field is required.")
                continue
            try:
                value = parse(spec, data[spec.name])
            except FieldError as exc:
                errors[spec.name] = exc.message
                continue
            if value is None and spec.required:
                errors[spec.name] = N_("This field is required.")
                continue
            values[spec.name] = value
        if not errors:
            if unique:
                errors.update(await self._check_unique(entity, values, record_id))
            if references:
                errors.update(await self._check_references(entity, values))
            if (
                errors and not unique
            ):  # refused anyway: name a taken unique value too, as the check up front would
                errors = {**await self._check_unique(entity, values, record_id), **errors}
            if errors:  # well-formed values the data's state refuses (taken, no such record)
                raise ConflictingValues(errors)
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
                    errors[spec.name] = _taken(entity, spec.name, values[spec.name])
        return errors

    async def _references(
        self, entity: EntityRef, values: Mapping[str, Any]
    ) -> tuple[list[writes.Reference], dict[str, str]]:
        """The reference values to check (with their target's tenant and data-scope conditions: a row
        outside the user's data scope cannot be referenced, nor its existence learnt), and the errors of
        those whose entity is not available in this tenant."""
        from app.plugins import runtime

        errors: dict[str, str] = {}
        out: list[writes.Reference] = []
        refs = [s for s in entity.spec.fields if s.type == "reference" and values.get(s.name) is not None]
        if not refs:
            return out, errors
        plugins = await runtime.enabled_for(self.db, self.tenant_id)
        for spec in refs:
            target = runtime.find_entity(plugins, spec.entity or "")
            if target is None:
                errors[spec.name] = N_("%(entity)s is not available in this tenant.", entity=spec.entity)
                continue
            out.append(writes.Reference(spec.name, target, await self._visible(target), values[spec.name]))
        return out, errors

    async def _check_references(self, entity: EntityRef, values: Mapping[str, Any]) -> dict[str, str]:
        refs, errors = await self._references(entity, values)
        for ref in refs:
            t = ref.target.table
            found = await self.db.scalar(
                sa.select(t.c.id).where(*ref.visible, t.c.deleted_at.is_(None), t.c.id == ref.value)
            )
            if found is None:
                errors[ref.field] = _missing(ref.target)
        return errors

    def _journal_rows(
        self,
        entity: EntityRef,
        action: str,
        event_action: str,
        row: Mapping[str, Any],
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
        summary: str,
    ) -> tuple[dict[str, Any], Event]:
        """The change's audit row and its event (the outbox; delivered after the commit)."""

        def plain(values: Mapping[str, Any] | None) -> dict[str, Any] | None:
            if values is None:
                return None
            return {
                k: to_json(v) for k, v in values.items() if k not in {"tenant_id", "updated_at", "updated_by"}
            }

        payload = {
            "id": str(row["id"]),
            "entity": entity.name,
            "plugin": entity.plugin_id,
            "tenant_id": str(self.tenant_id),
            "record": {k: to_json(v) for k, v in row.items() if k != "tenant_id"},
            "actor": self.actor.email,
            "actor_id": str(self.actor.user_id) if self.actor.user_id else None,
        }
        entry = audit.entry(
            self.actor,
            f"record.{action}",
            f"{entity.plugin_id}.{entity.name}",
            row["id"],
            tenant_id=self.tenant_id,
            summary=summary,
            before=plain(before),
            after=plain(after),
        )
        event = Event(
            f"{entity.plugin_id}.{entity.name}.{event_action}",
            str(self.tenant_id),
            payload,
            source=entity.plugin_id,
            actor=self.actor.email,
        )
        return entry, event

    async def _journal(self, entity: EntityRef, *args: Any) -> None:
        """Write the audit row and the event together: one statement on PostgreSQL (emit's `along`)."""
        entry, event = self._journal_rows(entity, *args)
        await emit(self.db, event, along=(audit.TABLE, entry))

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
                N_(
                    "A conflicting %(label)s exists (unique: %(value)s)",
                    label=entity.spec.label,
                    value=", ".join(unique) or "id",
                )
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

    @property
    def _one_statement(self) -> bool:
        """Whether writes go as one statement with CTEs (app.records.writes): PostgreSQL, where each
        statement is a round trip. SQLite has no data-modifying CTEs and no network between statements."""
        return bool(self.db.get_bind().dialect.name == "postgresql")

    async def insert(self, entity: EntityRef, data: Mapping[str, Any]) -> dict[str, Any]:
        self.require(entity, "insert")
        pg = self._one_statement
        # Unique values are left to the unique indexes (INSERT ... ON CONFLICT DO NOTHING): a SELECT per
        # unique field runs only when the row is refused, to say which value is taken. On PostgreSQL the
        # references are checked by the INSERT too (app.records.writes).
        values = await self._check_values(entity, data, creating=True, unique=False, references=not pg)
        if entity.spec.has_computed:
            values |= computed.initial_rollups(entity.spec)
            values |= computed.evaluate(entity.spec, values)
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
                raise ConflictingValues(clash) from None
            raise
        label = row.get(entity.spec.display_field, row["id"])
        journal = ("create", "created", row, None, row, f"Created {entity.spec.label} {label}")
        if pg:
            await self._insert_one_statement(entity, row, values, journal)
        else:
            result = await self._write(self._insert_unless_taken(entity), entity, row)
            if result.first() is None:
                await self._refused(entity, values, None, {})
            await computed.refresh_parents(self, entity, None, row)
            await self._journal(entity, *journal)
        for hook in self.hooks.insert:
            await hook(self, entity, row)
        return row

    async def _refused(
        self,
        entity: EntityRef,
        values: Mapping[str, Any],
        record_id: uuid.UUID | None,
        errors: dict[str, str],
    ) -> None:
        """A row the database refused: say which unique value is taken (and which references missing)."""
        errors = {**await self._check_unique(entity, values, record_id), **errors}
        if errors:
            raise ConflictingValues(errors)
        raise Conflict(
            N_(
                "A conflicting %(label)s exists (unique: %(value)s)",
                label=entity.spec.label,
                value=", ".join(f.label for f in entity.spec.fields if f.unique) or "id",
            )
        )

    async def _insert_one_statement(
        self, entity: EntityRef, row: dict[str, Any], values: Mapping[str, Any], journal: tuple[Any, ...]
    ) -> None:
        refs, unavailable = await self._references(entity, values)
        if unavailable:
            await self._refused(entity, values, None, unavailable)
        entry, event = self._journal_rows(entity, *journal)
        prepared = await prepare(self.db, event)
        try:
            outcome = await writes.insert(self.db, entity, row, refs, entry, prepared.params)
        except IntegrityError as exc:
            raise Conflict(N_("A conflicting %(label)s exists", label=entity.spec.label)) from exc
        if not outcome.written:
            missing = {r.field: _missing(r.target) for r in refs if r.field in outcome.missing}
            await self._refused(entity, values, None, missing)
        recorded_in(self.db, prepared)
        await computed.refresh_parents(self, entity, None, row)

    async def update(
        self, entity: EntityRef, record_id: uuid.UUID | str, data: Mapping[str, Any], version: int | None
    ) -> dict[str, Any]:
        self.require(entity, "update")
        pg = self._one_statement
        before = await self._load(entity, record_id)
        if version is None:
            raise ValidationFailed({"version": N_("The record's version is required to update it.")})
        if int(version) != before["version"]:
            raise StaleVersion(before, int(version))
        # On PostgreSQL the UPDATE checks uniqueness, references and the version itself (app.records.writes).
        values = await self._check_values(
            entity, data, creating=False, record_id=before["id"], unique=not pg, references=not pg
        )
        if entity.spec.has_computed:
            values |= computed.evaluate(entity.spec, {**before, **values})
        t = entity.table
        now = dt.datetime.now(dt.UTC)
        changes = {
            **values,
            "updated_at": now,
            "updated_by": self.actor.user_id,
            "version": before["version"] + 1,
        }
        after = {**before, **changes}
        for check in self.hooks.validate:
            await check(self, entity, after, before)
        await self._check_in_scope(entity, after)
        journal = (
            "update",
            "updated",
            after,
            before,
            after,
            f"Edited {entity.spec.label} {after.get(entity.spec.display_field, before['id'])}",
        )
        if pg:
            await self._update_one_statement(entity, before, changes, values, journal)
            return after
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
            raise StaleVersion(await self._load(entity, before["id"], deleted=None), before["version"])
        await computed.refresh_parents(self, entity, before, after)
        await self._journal(entity, *journal)
        return after

    async def _update_one_statement(
        self,
        entity: EntityRef,
        before: dict[str, Any],
        changes: dict[str, Any],
        values: Mapping[str, Any],
        journal: tuple[Any, ...],
    ) -> None:
        refs, unavailable = await self._references(entity, values)
        if unavailable:
            await self._refused(entity, values, before["id"], unavailable)
        unique = {
            s.name: values[s.name] for s in entity.spec.fields if s.unique and values.get(s.name) is not None
        }
        entry, event = self._journal_rows(entity, *journal)
        prepared = await prepare(self.db, event)
        try:
            outcome = await writes.update(
                self.db, entity, self.tenant_id, before, changes, refs, unique, entry, prepared.params
            )
        except IntegrityError as exc:  # a unique value taken by a concurrent transaction
            raise Conflict(N_("A conflicting %(label)s exists", label=entity.spec.label)) from exc
        if not outcome.written:
            errors = {name: _taken(entity, name, unique[name]) for name in outcome.taken}
            errors |= {r.field: _missing(r.target) for r in refs if r.field in outcome.missing}
            if errors:
                raise ConflictingValues(errors)
            current = await self._load(entity, before["id"], deleted=None)
            raise StaleVersion(current, before["version"])  # changed between our read and our write
        recorded_in(self.db, prepared)
        await computed.refresh_parents(self, entity, before, {**before, **changes})

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
        await computed.refresh_parents(self, entity, None, after)
        await self._journal(
            entity,
            action,
            {"delete": "deleted", "restore": "restored"}[action],
            after,
            {"deleted_at": to_json(before["deleted_at"])},
            {"deleted_at": to_json(deleted_at)},
            f"{verb} {entity.spec.label} {before.get(entity.spec.display_field, before['id'])}",
        )
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


def _taken(entity: EntityRef, name: str, value: Any) -> str:
    return N_(
        "Another %(entity)s already has %(field)s = %(value)s.",
        entity=entity.spec.label,
        field=entity.spec.field(name).label,
        value=str(value),
    )


def _missing(target: EntityRef) -> str:
    return N_("No %(entity)s with that id in this tenant.", entity=target.spec.label)
