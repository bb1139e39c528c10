"""Importing many rows through the record service, in batches.

A batch (`ImportRun.batch`, BATCH_SIZE rows by default) costs a fixed number of queries: one per
reference column to resolve names ("Hardware") and check ids, one to find the rows matching the chosen
key field, then the rows are written together by app.records.bulk (the record service's checks per row
in Python — tenant, data scope, validators, computed fields, optimistic lock — and per batch one
multi-row INSERT, one UPDATE, and the audit and event rows). Should the database refuse the batch's
statements anyway, the batch is written again row by row through `RecordService.insert` or `update`,
each in a savepoint, so that only the refused rows are refused. The caller decides where transactions
end: the web import commits after every batch, so no transaction (nor SQLite's write lock) outlives
one batch.

Counts: *created* (no row with that key), *updated* (a key match whose values differ), *skipped* (a key
match with nothing to change) and *refused* (the row's errors, kept with the row for a CSV of them).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from app.core.errors import Conflict, ValidationFailed
from app.core.i18n import N_
from app.events import PENDING_KEY
from app.manifest import FieldSpec
from app.plugins.runtime import EntityRef
from app.records import bulk
from app.records.service import RecordService
from app.records.values import FieldError, parse

BATCH_SIZE = 500
# A reference cell is matched against the target's display field and its unique fields of these types.
MATCHABLE = {"string", "text", "select"}


@dataclass
class ImportCounts:
    created: int = 0
    updated: int = 0
    skipped: int = 0
    refused: int = 0

    @property
    def done(self) -> int:
        return self.created + self.updated + self.skipped + self.refused


@dataclass
class ImportRun:
    """One import (or its dry run) of one entity: options, counts so far and the refused rows."""

    svc: RecordService
    entity: EntityRef
    key: str | None = None  # a unique field: rows whose value matches an existing row update it
    counts: ImportCounts = field(default_factory=ImportCounts)
    errors: dict[int, dict[str, str]] = field(default_factory=dict)  # refused rows by 1-based number
    _seen: dict[str, dict[Any, int]] = field(default_factory=dict)  # unique field → value → first row

    def __post_init__(self) -> None:
        self.svc.require(self.entity, "insert")
        if self.key is not None:
            spec = self.key_spec(self.entity, self.key)
            if spec is None:
                raise ValidationFailed({"key": N_("Choose a unique field as the key.")})
            self.svc.require(self.entity, "update")

    @staticmethod
    def key_fields(entity: EntityRef) -> list[FieldSpec]:
        return [f for f in entity.spec.fields if f.unique and f.type != "json" and not f.computed]

    @classmethod
    def key_spec(cls, entity: EntityRef, name: str) -> FieldSpec | None:
        return next((f for f in cls.key_fields(entity) if f.name == name), None)

    # -- one batch -------------------------------------------------------------------------------

    async def batch(self, rows: Sequence[tuple[int, dict[str, str]]]) -> None:
        """Import `rows` ((number, cells) pairs); counts and errors accumulate on the run."""
        rows = [(n, dict(cells)) for n, cells in rows]
        errors: dict[int, dict[str, str]] = {}
        for number, problem in (await self._resolve_references(rows)).items():
            errors.setdefault(number, {}).update(problem)
        self._check_file_duplicates(rows, errors)
        existing = await self._matches(rows, errors)
        creates: list[tuple[int, dict[str, str]]] = []
        updates: list[tuple[int, dict[str, Any], dict[str, str]]] = []
        for number, cells in rows:
            match = existing.get(number)
            if number in errors:
                continue
            if match is None:
                creates.append((number, cells))
            elif self._unchanged(match, cells):
                self.counts.skipped += 1
            else:
                updates.append((number, match, {k: v for k, v in cells.items() if k != self.key}))
        pending = self.svc.db.sync_session.info.setdefault(PENDING_KEY, [])
        noted = len(pending)
        try:
            async with self.svc.db.begin_nested():
                created, refused = await bulk.insert(self.svc, self.entity, creates)
                updated, refused_updates = await bulk.update(self.svc, self.entity, updates)
        except (DBAPIError, Conflict):  # refused by the database (a constraint): row by row instead
            del pending[noted:]  # their rows were rolled back with the savepoint
            await self._one_by_one(
                [(n, c) for n, c in creates] + [(n, c) for n, _, c in updates], existing, errors
            )
        else:
            self.counts.created += created
            self.counts.updated += updated
            errors |= refused | refused_updates
        for number in sorted(errors):
            self._refuse(number, errors[number])

    async def _one_by_one(
        self,
        rows: list[tuple[int, dict[str, str]]],
        existing: dict[int, dict[str, Any]],
        errors: dict[int, dict[str, str]],
    ) -> None:
        db = self.svc.db
        for number, cells in rows:
            match = existing.get(number)
            try:
                async with db.begin_nested():
                    if match is None:
                        await self.svc.insert(self.entity, cells)
                        self.counts.created += 1
                    else:
                        await self.svc.update(self.entity, match["id"], cells, match["version"])
                        self.counts.updated += 1
            except ValidationFailed as exc:
                errors[number] = exc.errors
            except Conflict as exc:  # StaleVersion too: changed since this batch read it
                errors[number] = {"": exc.detail}

    def _refuse(self, number: int, errors: dict[str, str]) -> None:
        self.errors[number] = errors
        self.counts.refused += 1

    # -- references ------------------------------------------------------------------------------

    async def _resolve_references(self, rows: list[tuple[int, dict[str, str]]]) -> dict[int, dict[str, str]]:
        """Replace reference cells naming a row ("Hardware", a code) with its id: one query per reference
        column per batch, within the importer's tenant and data scope (an invisible row is not found)."""
        from app.plugins import runtime

        errors: dict[int, dict[str, str]] = {}
        refs = [s for s in self.entity.spec.fields if s.type == "reference" and s.entity]
        if not refs:
            return errors
        plugins = None
        for spec in refs:
            given = {cells[spec.name].strip() for _, cells in rows if cells.get(spec.name, "").strip()}
            if not given:
                continue
            names = {v for v in given if not _is_uuid(v)}
            if plugins is None:
                plugins = await runtime.enabled_for(self.svc.db, self.svc.tenant_id)
            target = runtime.find_entity(plugins, spec.entity or "")
            found = await self._lookup(target, names, given - names) if target is not None else {}
            label = target.spec.label if target is not None else spec.entity
            for number, cells in rows:
                value = cells.get(spec.name, "").strip()
                if value not in given:
                    continue
                ids = found.get(value, set())
                if value not in names:  # an id: kept as given when it names a row the importer may see
                    if not ids:
                        errors.setdefault(number, {})[spec.name] = (
                            N_("No %(entity)s with that id in this tenant.", entity=label)
                            if target is not None
                            else N_("%(entity)s is not available in this tenant.", entity=label)
                        )
                elif len(ids) == 1:
                    cells[spec.name] = str(next(iter(ids)))
                elif not ids:
                    errors.setdefault(number, {})[spec.name] = N_(
                        "No %(entity)s “%(value)s” in this tenant.", entity=label, value=value
                    )
                else:
                    errors.setdefault(number, {})[spec.name] = N_(
                        "“%(value)s” matches %(count)s %(entity)s records: use a unique value or the id.",
                        value=value,
                        count=len(ids),
                        entity=label,
                    )
        return errors

    async def _lookup(self, target: EntityRef, names: set[str], ids: set[str]) -> dict[str, set[uuid.UUID]]:
        """The rows of `target` the importer may see named by `names` (display field or a unique text
        field) or by `ids` (as the record service checks a reference): one query."""
        t = target.table
        columns = [
            t.c[f.name]
            for f in target.spec.fields
            if f.type in MATCHABLE and (f.unique or f.name == target.spec.display_field)
        ]
        if not self.svc.can(target.permission("select")):
            columns = []  # a user who cannot read the target cannot find its rows by name either
        wanted = {uuid.UUID(i): i for i in ids}
        conditions = [c.in_(sorted(names)) for c in columns if names]
        if wanted:
            conditions.append(t.c.id.in_(sorted(wanted, key=str)))
        if not conditions:
            return {}
        stmt = sa.select(t.c.id, *columns).where(
            *await self.svc._visible(target), t.c.deleted_at.is_(None), sa.or_(*conditions)
        )
        found: dict[str, set[uuid.UUID]] = {}
        for row in (await self.svc.db.execute(stmt)).all():
            if row[0] in wanted:
                found.setdefault(wanted[row[0]], set()).add(row[0])
            for value in set(row[1:]):
                if value in names:
                    found.setdefault(value, set()).add(row[0])
        return found

    # -- keys and duplicates ---------------------------------------------------------------------

    def _check_file_duplicates(
        self, rows: list[tuple[int, dict[str, str]]], errors: dict[int, dict[str, str]]
    ) -> None:
        """A unique value twice in the file is refused the second time, also across batches (a dry run
        rolls each batch back, so the unique index alone would not see the earlier batch's rows)."""
        for spec in self.key_fields(self.entity):
            seen = self._seen.setdefault(spec.name, {})
            for number, cells in rows:
                value = cells.get(spec.name, "").strip()
                if not value:
                    continue
                first = seen.setdefault(value, number)
                if first != number:
                    errors.setdefault(number, {})[spec.name] = N_(
                        "The same %(field)s as row %(row)s of the file.", field=spec.label, row=first
                    )

    async def _matches(
        self, rows: list[tuple[int, dict[str, str]]], errors: dict[int, dict[str, str]]
    ) -> dict[int, dict[str, Any]]:
        """The existing row each row updates (by the key field): one query for the batch."""
        if self.key is None:
            return {}
        spec = self.key_spec(self.entity, self.key)
        assert spec is not None
        wanted: dict[int, Any] = {}
        for number, cells in rows:
            if number in errors or not cells.get(self.key, "").strip():
                continue
            try:
                wanted[number] = parse(spec, cells[self.key])
            except FieldError as exc:
                errors.setdefault(number, {})[self.key] = str(exc)
        if not wanted:
            return {}
        t = self.entity.table
        stmt = sa.select(t).where(
            *await self.svc._visible(self.entity),
            t.c.deleted_at.is_(None),
            t.c[self.key].in_(set(wanted.values())),
        )
        by_key = {row[self.key]: dict(row) for row in (await self.svc.db.execute(stmt)).mappings()}
        return {n: by_key[v] for n, v in wanted.items() if v in by_key}

    def _unchanged(self, match: dict[str, Any], cells: dict[str, str]) -> bool:
        for name, raw in cells.items():
            spec = next((f for f in self.entity.spec.fields if f.name == name), None)
            if spec is None or spec.computed:
                continue
            try:
                value = parse(spec, raw)
            except FieldError:
                return False  # let the update say what is wrong
            if value != match.get(name):
                return False
        return True


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text.strip())
    except ValueError:
        return False
    return True
