"""Schema differences between two versions of a plugin's entities, and applying the safe ones.

:func:`diff_entities` sorts every difference into

* ``additive`` — safe to apply automatically on upgrade: new entities, new nullable or defaulted
  columns, widened columns (longer strings, string → text, larger decimals), a required field made
  optional, new indexes, indexes no longer declared;
* ``destructive`` — would lose data or may fail on existing rows: dropped entities and fields, type
  changes, narrowed columns, new required fields the database cannot fill, optional fields made
  required.  These are only reported; nothing here applies them.

:func:`apply_additive` runs the additive changes with Alembic's operations, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.schema import CreateIndex

from app.core.i18n import N_, Msg, phrase
from app.manifest import EntitySpec, FieldSpec
from app.schema.tables import build_table, column_for, column_type, create_tables_sync, server_default_for

__all__ = ["Change", "ChangeKind", "SchemaDiff", "apply_additive", "diff_entities"]


class ChangeKind(StrEnum):
    ADD_ENTITY = "add_entity"
    ADD_COLUMN = "add_column"
    WIDEN_COLUMN = "widen_column"
    RELAX_NULLABLE = "relax_nullable"
    DROP_INDEX = "drop_index"
    ADD_INDEX = "add_index"
    DROP_ENTITY = "drop_entity"
    DROP_COLUMN = "drop_column"
    CHANGE_TYPE = "change_type"
    NARROW_COLUMN = "narrow_column"
    ADD_REQUIRED_COLUMN = "add_required_column"
    REQUIRE_VALUES = "require_values"


#: Order in which additive changes are applied.
_APPLY_ORDER: dict[ChangeKind, int] = {
    ChangeKind.ADD_ENTITY: 0,
    ChangeKind.ADD_COLUMN: 1,
    ChangeKind.WIDEN_COLUMN: 2,
    ChangeKind.RELAX_NULLABLE: 3,
    ChangeKind.DROP_INDEX: 4,
    ChangeKind.ADD_INDEX: 5,
}


@dataclass(frozen=True)
class Change:
    """One difference.  ``old_entity``/``new_entity`` are the entity before and after (``None`` when
    it is added or dropped); ``field`` names the field concerned and ``index`` the index."""

    kind: ChangeKind
    entity: str
    detail: str
    field: str | None = None
    index: str | None = None
    old_entity: EntitySpec | None = None
    new_entity: EntitySpec | None = None

    @property
    def destructive(self) -> bool:
        return self.kind not in _APPLY_ORDER

    @property
    def table_name(self) -> str:
        spec = self.new_entity or self.old_entity
        return spec.table_name if spec is not None else f"plugin_{self.entity}"

    def describe(self) -> str:
        """E.g. ``inventory_item.sku: type change string → integer (data would be lost)``."""
        target = f"{self.entity}.{self.field}" if self.field else self.entity
        # A detail without parameters is plain text (N_): a phrase, so that it is translated with the rest.
        detail = self.detail if isinstance(self.detail, Msg) else phrase(self.detail)
        return N_("%(target)s: %(detail)s", target=target, detail=detail)

    def __str__(self) -> str:
        return self.describe()


@dataclass
class SchemaDiff:
    additive: list[Change] = field(default_factory=list)
    destructive: list[Change] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not self.additive and not self.destructive

    @property
    def changes(self) -> list[Change]:
        return [*self.additive, *self.destructive]

    def describe(self) -> list[str]:
        return [change.describe() for change in self.changes]

    def _add(self, change: Change) -> None:
        (self.destructive if change.destructive else self.additive).append(change)


def _type_label(spec: FieldSpec) -> str:
    if spec.type == "string":
        return f"string({spec.max_length})"
    if spec.type == "decimal":
        return f"decimal({spec.precision}, {spec.scale})"
    return spec.type


def _string_length(spec: FieldSpec) -> int | None:
    """Maximum length of a string-like field (``None`` = unbounded text); only for string types."""
    if spec.type == "string":
        return spec.max_length
    if spec.type == "select":
        return 100
    return None


def _compare_field(
    old_entity: EntitySpec, new_entity: EntitySpec, old: FieldSpec, new: FieldSpec, diff: SchemaDiff
) -> None:
    def change(kind: ChangeKind, detail: str) -> None:
        diff._add(
            Change(
                kind, new_entity.name, detail, field=new.name, old_entity=old_entity, new_entity=new_entity
            )
        )

    textual = ("string", "text", "select")
    if old.type != new.type:
        if {old.type, new.type} == {"uuid", "reference"}:
            pass  # same column type; only the meaning changes
        elif old.type in textual and new.type in ("string", "text"):
            old_len, new_len = _string_length(old), _string_length(new)
            if new_len is None or (old_len is not None and new_len >= old_len):
                change(
                    ChangeKind.WIDEN_COLUMN,
                    N_("widened %(old)s → %(new)s", old=_type_label(old), new=_type_label(new)),
                )
            else:
                change(
                    ChangeKind.NARROW_COLUMN,
                    N_(
                        "narrowed %(old)s → %(new)s (longer values would be cut)",
                        old=_type_label(old),
                        new=_type_label(new),
                    ),
                )
        else:
            change(
                ChangeKind.CHANGE_TYPE,
                N_("type change %(type)s → %(type2)s (data would be lost)", type=old.type, type2=new.type),
            )
            return
    elif new.type == "string" and old.max_length != new.max_length:
        if (new.max_length or 0) > (old.max_length or 0):
            change(
                ChangeKind.WIDEN_COLUMN,
                N_("widened %(old)s → %(new)s", old=_type_label(old), new=_type_label(new)),
            )
        else:
            change(
                ChangeKind.NARROW_COLUMN,
                N_(
                    "narrowed %(old)s → %(new)s (longer values would be cut)",
                    old=_type_label(old),
                    new=_type_label(new),
                ),
            )
    elif new.type == "decimal" and (old.precision, old.scale) != (new.precision, new.scale):
        old_int = (old.precision or 0) - (old.scale or 0)
        new_int = (new.precision or 0) - (new.scale or 0)
        if (new.scale or 0) >= (old.scale or 0) and new_int >= old_int:
            change(
                ChangeKind.WIDEN_COLUMN,
                N_("widened %(old)s → %(new)s", old=_type_label(old), new=_type_label(new)),
            )
        else:
            change(
                ChangeKind.NARROW_COLUMN,
                N_(
                    "narrowed %(old)s → %(new)s (values would be rounded or not fit)",
                    old=_type_label(old),
                    new=_type_label(new),
                ),
            )

    if not old.nullable and new.nullable:
        change(ChangeKind.RELAX_NULLABLE, N_("no longer required (NOT NULL dropped)"))
    elif old.nullable and not new.nullable:
        change(ChangeKind.REQUIRE_VALUES, N_("becomes required (existing rows may have no value)"))


def diff_entities(old: Sequence[EntitySpec], new: Sequence[EntitySpec]) -> SchemaDiff:
    """Differences from ``old`` to ``new`` (the entities of two versions of one plugin)."""
    diff = SchemaDiff()
    old_by_name = {e.name: e for e in old}
    new_by_name = {e.name: e for e in new}

    for name, entity in new_by_name.items():
        if name not in old_by_name:
            diff._add(
                Change(
                    ChangeKind.ADD_ENTITY,
                    name,
                    N_("new entity (table %(table_name)s)", table_name=entity.table_name),
                    new_entity=entity,
                )
            )
    for name, entity in old_by_name.items():
        if name not in new_by_name:
            diff._add(
                Change(
                    ChangeKind.DROP_ENTITY,
                    name,
                    N_(
                        "entity dropped (table %(table_name)s and its data would be lost)",
                        table_name=entity.table_name,
                    ),
                    old_entity=entity,
                )
            )

    for name, new_entity in new_by_name.items():
        old_entity = old_by_name.get(name)
        if old_entity is None:
            continue
        old_fields = {f.name: f for f in old_entity.fields}
        new_fields = {f.name: f for f in new_entity.fields}
        for field_name, spec in new_fields.items():
            before = old_fields.get(field_name)
            if before is not None:
                _compare_field(old_entity, new_entity, before, spec, diff)
                continue
            if spec.nullable or server_default_for(spec) is not None:
                detail = (
                    N_("new field (%(type)s)", type=_type_label(spec))
                    if spec.nullable
                    else N_("new field (%(type)s, required, with default)", type=_type_label(spec))
                )
                kind = ChangeKind.ADD_COLUMN
            elif spec.has_default:
                kind = ChangeKind.ADD_REQUIRED_COLUMN
                detail = N_(
                    "new required field whose default %(default)s the database cannot fill in "
                    "(existing rows have no value)",
                    default=repr(spec.default),
                )
            else:
                kind = ChangeKind.ADD_REQUIRED_COLUMN
                detail = N_("new required field without default (existing rows have no value)")
            diff._add(
                Change(kind, name, detail, field=field_name, old_entity=old_entity, new_entity=new_entity)
            )
        dropped = [f for f in old_fields if f not in new_fields]
        for field_name in dropped:
            diff._add(
                Change(
                    ChangeKind.DROP_COLUMN,
                    name,
                    N_("field dropped (its data would be lost)"),
                    field=field_name,
                    old_entity=old_entity,
                    new_entity=new_entity,
                )
            )
        _compare_indexes(old_entity, new_entity, set(dropped), diff)
    return diff


def _compare_indexes(
    old_entity: EntitySpec, new_entity: EntitySpec, dropped: set[str], diff: SchemaDiff
) -> None:
    old_indexes = {str(ix.name): ix for ix in build_table(old_entity, sa.MetaData()).indexes}
    new_indexes = {str(ix.name): ix for ix in build_table(new_entity, sa.MetaData()).indexes}

    def columns(index: sa.Index) -> list[str]:
        return [str(c.name) for c in index.columns]

    for name in sorted(new_indexes.keys() - old_indexes.keys()):
        index = new_indexes[name]
        kind = phrase(N_("unique index")) if index.unique else phrase(N_("index"))
        diff._add(
            Change(
                ChangeKind.ADD_INDEX,
                new_entity.name,
                N_(
                    "new %(kind)s %(name)s on (%(names)s)",
                    kind=kind,
                    name=name,
                    names=", ".join(columns(index)),
                ),
                index=name,
                old_entity=old_entity,
                new_entity=new_entity,
            )
        )
    for name in sorted(old_indexes.keys() - new_indexes.keys()):
        index = old_indexes[name]
        if dropped.intersection(columns(index)):
            continue  # goes with the (destructive) drop of its column
        kind = phrase(N_("unique index")) if index.unique else phrase(N_("index"))
        diff._add(
            Change(
                ChangeKind.DROP_INDEX,
                new_entity.name,
                N_(
                    "%(kind)s %(name)s on (%(names)s) no longer declared",
                    kind=kind,
                    name=name,
                    names=", ".join(columns(index)),
                ),
                index=name,
                old_entity=old_entity,
                new_entity=new_entity,
            )
        )


async def apply_additive(conn: AsyncConnection, diff: SchemaDiff) -> None:
    """Apply ``diff.additive`` (never the destructive changes) in the caller's transaction."""
    changes = [c for c in diff.additive if not c.destructive]
    if changes:
        await conn.run_sync(_apply_sync, changes)


def _apply_sync(connection: Connection, changes: list[Change]) -> None:
    dialect = connection.dialect.name
    operations = Operations(MigrationContext.configure(connection))
    ordered = sorted(changes, key=lambda c: _APPLY_ORDER[c.kind])

    new_tables = [
        build_table(c.new_entity, sa.MetaData())
        for c in ordered
        if c.kind is ChangeKind.ADD_ENTITY and c.new_entity
    ]
    # Also takes PostgreSQL's DDL advisory lock, held until the transaction ends.
    create_tables_sync(connection, new_tables)

    relax_on_sqlite: dict[str, list[Change]] = {}
    for change in ordered:
        if change.kind is ChangeKind.ADD_ENTITY:
            continue
        assert change.new_entity is not None and change.old_entity is not None
        table = change.table_name
        if change.kind is ChangeKind.ADD_COLUMN:
            # Skipped when present, so re-applying a diff after an interrupted upgrade is harmless.
            if _field(change) not in _column_names(connection, table):
                operations.add_column(table, column_for(change.new_entity.field(_field(change))))
        elif change.kind is ChangeKind.WIDEN_COLUMN:
            # SQLite does not enforce VARCHAR lengths or NUMERIC precision: nothing to do there.
            if dialect != "sqlite":
                old = change.old_entity.field(_field(change))
                new = change.new_entity.field(_field(change))
                operations.alter_column(
                    table,
                    new.name,
                    type_=column_type(new),
                    existing_type=column_type(old),
                    existing_nullable=old.nullable,
                )
        elif change.kind is ChangeKind.RELAX_NULLABLE:
            if dialect == "sqlite":
                relax_on_sqlite.setdefault(table, []).append(change)
            else:
                new = change.new_entity.field(_field(change))
                operations.alter_column(table, new.name, nullable=True, existing_type=column_type(new))
        elif change.kind is ChangeKind.DROP_INDEX:
            _relax_sqlite(operations, relax_on_sqlite)
            operations.drop_index(str(change.index), table_name=table, if_exists=True)
        elif change.kind is ChangeKind.ADD_INDEX:
            _relax_sqlite(operations, relax_on_sqlite)
            index = _index(change)
            connection.execute(CreateIndex(index, if_not_exists=True))
    _relax_sqlite(operations, relax_on_sqlite)


def _column_names(connection: Connection, table: str) -> set[str]:
    return {str(column["name"]) for column in sa.inspect(connection).get_columns(table)}


def _field(change: Change) -> str:
    assert change.field is not None
    return change.field


def _index(change: Change) -> sa.Index:
    assert change.new_entity is not None
    table = build_table(change.new_entity, sa.MetaData())
    for index in table.indexes:
        if index.name == change.index:
            return index
    raise LookupError(f"index {change.index} is not defined by entity {change.entity}")


def _relax_sqlite(operations: Operations, pending: dict[str, list[Change]]) -> None:
    """SQLite cannot drop NOT NULL in place: rebuild each table once (Alembic batch mode reflects the
    table as it really is, indexes included, so columns the manifest no longer lists survive)."""
    for table, changes in pending.items():
        with operations.batch_alter_table(table, recreate="always") as batch:
            for change in changes:
                batch.alter_column(_field(change), nullable=True)
    pending.clear()
