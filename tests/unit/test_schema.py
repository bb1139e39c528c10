"""Manifest entities → tables (app.schema.tables) and upgrade diffs (app.schema.diff).

Database tests run on in-memory SQLite and on PostgreSQL (``TEST_DATABASE_URL``, default
``postgresql://postgres@127.0.0.1:5432/test``).  PostgreSQL is skipped only when unreachable, and
unreachable is a failure when ``CI=true``.  Every test works on tables with a random suffix and drops
them afterwards, so it does not touch other tests' tables in the shared database.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from app.manifest import EntitySpec, FieldSpec, ValidationContext, load_manifest, parse_manifest
from app.schema import (
    STANDARD_COLUMNS,
    ChangeKind,
    SchemaDiff,
    UtcDateTime,
    apply_additive,
    build_metadata,
    build_table,
    diff_entities,
    ensure_tables,
    index_name,
    search_index_name,
)

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
SEED = load_manifest(
    ROOT / "tests" / "fixtures" / "manifests" / "seed004_inventory.toml",
    ValidationContext(available_modules=frozenset({"auth", "workflow"})),
)
PG_URL = re.sub(
    r"^postgres(ql)?(\+\w+)?://",
    "postgresql+psycopg://",
    os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

ALL_TYPES_TOML = """
[plugin]
id = "typed"
name = "Typed"
version = "1.0.0"

[[schema.entities]]
name = "sample"
fields = [
  { name = "title", type = "string", required = true, max_length = 40, unique = true },
  { name = "body", type = "text" },
  { name = "amount", type = "integer", default = 7 },
  { name = "price", type = "decimal", precision = 12, scale = 3, default = "1.500" },
  { name = "flag", type = "boolean", default = true },
  { name = "day", type = "date", default = "2024-02-29" },
  { name = "moment", type = "datetime" },
  { name = "token", type = "uuid" },
  { name = "state", type = "select", options = ["new", "done"], default = "new" },
  { name = "other_id", type = "reference", entity = "sample" },
  { name = "payload", type = "json" },
]
indexes = [["state", "day"]]
"""
ALL_TYPES = parse_manifest(ALL_TYPES_TOML).entity("sample")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def renamed(entities: Sequence[EntitySpec], suffix: str) -> list[EntitySpec]:
    """The same entities under unique names (references follow), for a shared database."""
    names = {e.name for e in entities}

    def field(spec: FieldSpec) -> FieldSpec:
        if spec.entity in names:
            return dataclasses.replace(spec, entity=f"{spec.entity}_{suffix}")
        return spec

    return [
        dataclasses.replace(e, name=f"{e.name}_{suffix}", fields=tuple(field(f) for f in e.fields))
        for e in entities
    ]


def with_fields(
    entity: EntitySpec, *fields: FieldSpec, drop: Sequence[str] = (), **changes: Any
) -> EntitySpec:
    kept = tuple(f for f in entity.fields if f.name not in drop)
    return dataclasses.replace(entity, fields=kept + fields, **changes)


def replace_field(target: EntitySpec, name: str, /, **changes: Any) -> EntitySpec:
    fields = tuple(dataclasses.replace(f, **changes) if f.name == name else f for f in target.fields)
    return dataclasses.replace(target, fields=fields)


@dataclasses.dataclass
class Db:
    engine: AsyncEngine
    suffix: str

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def entities(self, entities: Sequence[EntitySpec]) -> list[EntitySpec]:
        return renamed(entities, self.suffix)

    async def inspect(self, fn: Any) -> Any:
        async with self.engine.connect() as conn:
            return await conn.run_sync(lambda sync: fn(sa.inspect(sync)))


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest) -> AsyncIterator[Db]:
    if request.param == "sqlite":
        engine = create_async_engine("sqlite+aiosqlite:///:memory:", poolclass=StaticPool)
    else:
        engine = create_async_engine(PG_URL, connect_args={"connect_timeout": 3})
        try:
            async with engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except Exception as exc:
            await engine.dispose()
            reason = f"PostgreSQL at {PG_URL} unreachable: {str(exc).splitlines()[0]}"
            if IN_CI:
                pytest.fail(reason)
            pytest.skip(reason)
    suffix = uuid.uuid4().hex[:8]
    try:
        yield Db(engine, suffix)
    finally:
        async with engine.begin() as conn:
            names = await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names())
            for name in names:
                if name.startswith("plugin_") and name.endswith(f"_{suffix}"):
                    await conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))
        await engine.dispose()


async def insert(conn: AsyncConnection, table: sa.Table, **values: Any) -> uuid.UUID:
    row_id = uuid.uuid4()
    await conn.execute(table.insert().values(id=row_id, **values))
    return row_id


# --------------------------------------------------------------------------------------------------
# Table definitions (no database)
# --------------------------------------------------------------------------------------------------


def test_seed_tables_layout() -> None:
    metadata = build_metadata(SEED.entities)
    assert set(metadata.tables) == {"plugin_inventory_item", "plugin_purchase_order"}
    item = metadata.tables["plugin_inventory_item"]
    assert [c.name for c in item.columns] == [
        *STANDARD_COLUMNS,
        "sku",
        "name",
        "quantity",
        "unit",
        "category_id",
        "unit_price",
    ]
    assert list(item.primary_key.columns.keys()) == ["id"]
    c = item.c
    assert isinstance(c.id.type, sa.Uuid) and isinstance(c.tenant_id.type, sa.Uuid)
    assert not c.tenant_id.nullable and not c.created_at.nullable and not c.updated_at.nullable
    assert c.created_by.nullable and c.updated_by.nullable and c.deleted_at.nullable
    assert isinstance(c.created_at.type, UtcDateTime) and c.created_at.type.impl.timezone
    assert isinstance(c.version.type, sa.Integer) and not c.version.nullable
    assert isinstance(c.sku.type, sa.String) and c.sku.type.length == 255 and not c.sku.nullable
    assert isinstance(c.quantity.type, sa.BigInteger) and c.quantity.nullable
    assert isinstance(c.unit_price.type, sa.Numeric) and (
        c.unit_price.type.precision,
        c.unit_price.type.scale,
    ) == (10, 2)
    assert isinstance(c.category_id.type, sa.Uuid) and c.category_id.nullable
    assert c.quantity.server_default is not None and str(c.quantity.server_default.arg) == "0"
    assert c.unit.server_default is not None and c.unit.server_default.arg == "个"
    assert c.unit_price.server_default is None

    indexes = {ix.name: ix for ix in item.indexes}
    assert set(indexes) == {
        "ix_plugin_inventory_item_tenant",
        "ix_plugin_inventory_item_live",
        "ix_plugin_inventory_item_sku",
        "ix_plugin_inventory_item_category_id",
        "ix_plugin_inventory_item_owner",
        "uq_plugin_inventory_item_sku",
    }
    assert [col.name for col in indexes["ix_plugin_inventory_item_owner"].columns] == [
        "tenant_id",
        "created_by",
    ]
    assert [col.name for col in indexes["ix_plugin_inventory_item_tenant"].columns] == ["tenant_id"]
    live = indexes["ix_plugin_inventory_item_live"]
    assert [col.name for col in live.columns] == ["tenant_id", "created_at", "id"]
    assert str(live.dialect_options["postgresql"]["where"]) == "plugin_inventory_item.deleted_at IS NULL"
    assert [col.name for col in indexes["ix_plugin_inventory_item_category_id"].columns] == [
        "tenant_id",
        "category_id",
    ]
    unique = indexes["uq_plugin_inventory_item_sku"]
    assert unique.unique and [col.name for col in unique.columns] == ["tenant_id", "sku"]
    assert str(unique.dialect_options["sqlite"]["where"]) == "plugin_inventory_item.deleted_at IS NULL"
    assert str(unique.dialect_options["postgresql"]["where"]) == "plugin_inventory_item.deleted_at IS NULL"
    order = metadata.tables["plugin_purchase_order"]
    assert isinstance(order.c.order_date.type, sa.Date)
    assert {ix.name for ix in order.indexes} == {
        "ix_plugin_purchase_order_tenant",
        "ix_plugin_purchase_order_live",
        "ix_plugin_purchase_order_owner",
        "uq_plugin_purchase_order_order_no",
    }


def test_all_field_types_map_to_columns() -> None:
    table = build_table(ALL_TYPES, sa.MetaData())
    c = table.c
    expected: dict[str, type] = {
        "title": sa.String,
        "body": sa.Text,
        "amount": sa.BigInteger,
        "price": sa.Numeric,
        "flag": sa.Boolean,
        "day": sa.Date,
        "moment": UtcDateTime,
        "token": sa.Uuid,
        "state": sa.String,
        "other_id": sa.Uuid,
        "payload": sa.JSON,
    }
    for name, kind in expected.items():
        assert isinstance(c[name].type, kind), name
    assert c.state.type.length == 100 and c.title.type.length == 40
    assert not c.title.nullable and all(c[n].nullable for n in expected if n != "title")
    assert str(c.flag.server_default.arg.compile(dialect=sa.dialects.postgresql.dialect())) == "true"
    assert str(c.price.server_default.arg) == "1.500"
    assert c.day.server_default.arg == "2024-02-29"
    assert c.state.server_default.arg == "new"
    assert c.moment.server_default is None and c.payload.server_default is None


def test_build_table_replaces_an_earlier_definition() -> None:
    metadata = sa.MetaData()
    first = build_table(ALL_TYPES, metadata)
    second = build_table(with_fields(ALL_TYPES, FieldSpec("extra", "text", "Extra")), metadata)
    assert first is not second and "extra" in metadata.tables["plugin_sample"].c


def test_long_names_are_shortened_deterministically() -> None:
    long_entity = "e" * 56
    spec = EntitySpec(
        long_entity,
        "Long",
        (FieldSpec("f" * 60, "string", "F", unique=True), FieldSpec("g" * 60, "string", "G")),
        indexes=(("f" * 60, "g" * 60),),
    )
    table = build_table(spec, sa.MetaData())
    assert table.name == f"plugin_{long_entity}" and len(table.name) == 63
    names = [str(ix.name) for ix in table.indexes]
    assert all(len(n) <= 63 for n in names)
    assert len(set(names)) == len(names) == 5  # tenant, live, owner, declared, unique
    assert index_name("ix", table.name, "f" * 60) == index_name("ix", table.name, "f" * 60)
    assert index_name("ix", "t", "a") == "ix_t_a"


# --------------------------------------------------------------------------------------------------
# Creating tables (SQLite and PostgreSQL)
# --------------------------------------------------------------------------------------------------


async def test_ensure_tables_is_idempotent(db: Db) -> None:
    entities = db.entities(SEED.entities)
    async with db.engine.begin() as conn:
        await ensure_tables(conn, entities)
    async with db.engine.begin() as conn:
        await ensure_tables(conn, entities)  # second run: no error, nothing changes

    item = f"plugin_inventory_item_{db.suffix}"
    tables = await db.inspect(lambda i: i.get_table_names())
    assert {item, f"plugin_purchase_order_{db.suffix}"} <= set(tables)
    indexes = await db.inspect(lambda i: {ix["name"]: ix for ix in i.get_indexes(item)})
    # PostgreSQL adds a trigram index per searchable text field (pg_trgm ships with the server here).
    searchable = next(e for e in entities if e.table_name == item).searchable_fields
    trigram = (
        {search_index_name(item, f.name, per_tenant=True) for f in searchable}
        if db.dialect == "postgresql"
        else set()
    )
    assert set(indexes) == {
        f"ix_{item}_tenant",
        f"ix_{item}_live",
        f"ix_{item}_sku",
        f"ix_{item}_category_id",
        f"ix_{item}_owner",
        f"uq_{item}_sku",
        *trigram,
    }
    assert indexes[f"uq_{item}_sku"]["unique"]
    assert indexes[f"uq_{item}_sku"]["column_names"] == ["tenant_id", "sku"]


async def test_search_uses_the_trigram_indexes_on_postgresql(db: Db) -> None:
    """The record service's search condition, lower(col) LIKE '%q%', is answered by the trigram indexes,
    and a field that stops being searchable loses its index on the next ensure_tables."""
    entities = db.entities(SEED.entities)
    entity = next(e for e in entities if e.name.startswith("inventory_item"))
    async with db.engine.begin() as conn:
        await ensure_tables(conn, entities)
    if db.dialect != "postgresql":  # SQLite has no trigram indexes: its search scans, and no index is made
        names = await db.inspect(lambda i: {ix["name"] for ix in i.get_indexes(entity.table_name)})
        assert entity.searchable_fields and not {n for n in names if n.startswith("trgm")}
        return
    table = build_table(entity, sa.MetaData())
    needle = "%zephyr%"
    cond = sa.or_(*(sa.func.lower(table.c[f.name]).like(needle) for f in entity.searchable_fields))
    compiled = sa.select(table.c.id).where(cond).compile(dialect=db.engine.dialect)
    async with db.engine.begin() as conn:
        await conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(
            r[0] for r in (await conn.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params)).all()
        )
    # The local server has btree_gin (contrib): the indexes lead with tenant_id.
    for f in entity.searchable_fields:
        assert search_index_name(entity.table_name, f.name, per_tenant=True) in plan, plan

    narrowed = dataclasses.replace(
        entity, fields=tuple(dataclasses.replace(f, searchable=f.name == "sku") for f in entity.fields)
    )
    async with db.engine.begin() as conn:
        await ensure_tables(conn, [narrowed])
    names = await db.inspect(lambda i: {ix["name"] for ix in i.get_indexes(entity.table_name)})
    assert {n for n in names if n.startswith("trgm")} == {
        search_index_name(entity.table_name, "sku", per_tenant=True)
    }


async def test_ensure_tables_adds_missing_indexes_to_existing_tables(db: Db) -> None:
    [entity] = db.entities([ALL_TYPES])
    async with db.engine.begin() as conn:
        await ensure_tables(conn, [dataclasses.replace(entity, indexes=())])
        await ensure_tables(conn, [entity])
    indexes = await db.inspect(lambda i: {ix["name"] for ix in i.get_indexes(entity.table_name)})
    assert f"ix_{entity.table_name}_state_day" in indexes


async def test_insert_and_read_back_every_type(db: Db) -> None:
    [entity] = db.entities([ALL_TYPES])
    table = build_table(entity, sa.MetaData())
    tenant, user = uuid.uuid4(), uuid.uuid4()
    moment = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone(dt.timedelta(hours=3)))
    async with db.engine.begin() as conn:
        await ensure_tables(conn, [entity])
        full = await insert(
            conn,
            table,
            tenant_id=tenant,
            created_by=user,
            title="Widget",
            body="long text " * 50,
            amount=2**40,
            price=Decimal("12345.678"),
            flag=False,
            day=dt.date(2023, 12, 31),
            moment=moment,
            token=user,
            state="done",
            other_id=tenant,
            payload={"a": [1, 2, {"b": None}], "c": "ü"},
        )
        # Only the required field: the database fills in the literal defaults.
        bare = await insert(conn, table, tenant_id=tenant, title="Bare")
    async with db.engine.connect() as conn:
        row = (await conn.execute(sa.select(table).where(table.c.id == full))).mappings().one()
        defaults = (await conn.execute(sa.select(table).where(table.c.id == bare))).mappings().one()
    assert row["tenant_id"] == tenant and row["created_by"] == user and row["updated_by"] is None
    assert row["version"] == 1 and row["deleted_at"] is None
    assert row["created_at"].tzinfo is not None
    assert row["title"] == "Widget" and row["body"] == "long text " * 50
    assert row["amount"] == 2**40
    assert row["price"] == Decimal("12345.678")
    assert row["flag"] is False
    assert row["day"] == dt.date(2023, 12, 31)
    assert row["moment"] == moment and row["moment"].utcoffset() == dt.timedelta(0)
    assert row["token"] == user and row["other_id"] == tenant
    assert row["state"] == "done"
    assert row["payload"] == {"a": [1, 2, {"b": None}], "c": "ü"}
    assert defaults["amount"] == 7 and defaults["flag"] is True and defaults["state"] == "new"
    assert defaults["price"] == Decimal("1.5") and defaults["day"] == dt.date(2024, 2, 29)
    assert defaults["body"] is None and defaults["payload"] is None


async def test_required_field_is_not_null(db: Db) -> None:
    [entity] = db.entities([ALL_TYPES])
    table = build_table(entity, sa.MetaData())
    async with db.engine.begin() as conn:
        await ensure_tables(conn, [entity])
    with pytest.raises(IntegrityError):
        async with db.engine.begin() as conn:
            await insert(conn, table, tenant_id=uuid.uuid4())


async def test_unique_is_per_tenant_and_ignores_soft_deleted_rows(db: Db) -> None:
    entities = db.entities(SEED.entities)
    item = build_table(entities[0], sa.MetaData())
    tenant_a, tenant_b = uuid.uuid4(), uuid.uuid4()
    async with db.engine.begin() as conn:
        await ensure_tables(conn, entities)
        first = await insert(conn, item, tenant_id=tenant_a, sku="SKU-1", name="One")
        await insert(conn, item, tenant_id=tenant_b, sku="SKU-1", name="Same SKU, other tenant")

    with pytest.raises(IntegrityError):
        async with db.engine.begin() as conn:
            await insert(conn, item, tenant_id=tenant_a, sku="SKU-1", name="Duplicate")

    async with db.engine.begin() as conn:
        await conn.execute(
            item.update().where(item.c.id == first).values(deleted_at=dt.datetime.now(dt.UTC), version=2)
        )
        await insert(conn, item, tenant_id=tenant_a, sku="SKU-1", name="Re-used after soft delete")
    async with db.engine.connect() as conn:
        count = await conn.scalar(
            sa.select(sa.func.count()).select_from(item).where(item.c.tenant_id == tenant_a)
        )
    assert count == 2


# --------------------------------------------------------------------------------------------------
# Diffs
# --------------------------------------------------------------------------------------------------

ITEM = SEED.entity("inventory_item")
ORDER = SEED.entity("purchase_order")


def kinds(changes: Sequence[Any]) -> list[tuple[ChangeKind, str | None]]:
    return [(c.kind, c.field) for c in changes]


def test_identical_entities_have_no_diff() -> None:
    diff = diff_entities(SEED.entities, SEED.entities)
    assert diff.is_empty and diff.changes == [] and diff.describe() == []


def test_diff_classifies_additive_changes() -> None:
    supplier = EntitySpec("supplier", "Supplier", (FieldSpec("name", "string", "Name", max_length=100),))
    new_item = with_fields(
        replace_field(ITEM, "name", max_length=500, required=False, nullable=True),
        FieldSpec("barcode", "string", "Barcode", max_length=64),
        FieldSpec("reorder", "integer", "Reorder", required=True, nullable=False, default=5),
        FieldSpec("active", "boolean", "Active", required=True, nullable=False, default=True),
        indexes=(("sku",), ("category_id",), ("barcode",)),
    )
    new_order = replace_field(
        replace_field(ORDER, "total_amount", precision=14, scale=3), "status", type="text", max_length=None
    )
    diff = diff_entities(SEED.entities, [new_item, new_order, supplier])
    assert diff.destructive == []
    described = diff.describe()
    assert "supplier: new entity (table plugin_supplier)" in described
    assert "inventory_item.name: widened string(255) → string(500)" in described
    assert "inventory_item.name: no longer required (NOT NULL dropped)" in described
    assert "inventory_item.barcode: new field (string(64))" in described
    assert "inventory_item.reorder: new field (integer, required, with default)" in described
    assert "inventory_item: new index ix_plugin_inventory_item_barcode on (tenant_id, barcode)" in described
    assert "purchase_order.total_amount: widened decimal(12, 2) → decimal(14, 3)" in described
    assert "purchase_order.status: widened string(255) → text" in described
    assert all(not c.destructive for c in diff.additive)


def test_diff_classifies_destructive_changes() -> None:
    new_item = with_fields(
        replace_field(
            replace_field(replace_field(ITEM, "sku", type="integer", max_length=None), "name", max_length=50),
            "unit_price",
            precision=8,
        ),
        FieldSpec("warehouse", "string", "Warehouse", required=True, nullable=False),
        FieldSpec("counted_at", "datetime", "Counted at", required=True, nullable=False, default="now"),
        drop=("unit",),
    )
    new_item = replace_field(new_item, "category_id", nullable=False, required=True)
    diff = diff_entities(SEED.entities, [new_item])
    described = [c.describe() for c in diff.destructive]
    assert described == [
        "purchase_order: entity dropped (table plugin_purchase_order and its data would be lost)",
        "inventory_item.sku: type change string → integer (data would be lost)",
        "inventory_item.name: narrowed string(255) → string(50) (longer values would be cut)",
        "inventory_item.category_id: becomes required (existing rows may have no value)",
        "inventory_item.unit_price: narrowed decimal(10, 2) → decimal(8, 2) (values would be rounded or not fit)",
        "inventory_item.warehouse: new required field without default (existing rows have no value)",
        "inventory_item.counted_at: new required field whose default 'now' the database cannot fill in "
        "(existing rows have no value)",
        "inventory_item.unit: field dropped (its data would be lost)",
    ]
    assert all(c.destructive for c in diff.destructive)
    # The unique index on sku is unchanged by name; the dropped field's indexes go with the field.
    assert diff.additive == []


def test_diff_details() -> None:
    as_reference = replace_field(ITEM, "category_id", type="reference", entity="category")
    assert diff_entities([ITEM], [as_reference]).is_empty
    narrowed_text = diff_entities([replace_field(ITEM, "name", type="text", max_length=None)], [ITEM])
    assert kinds(narrowed_text.destructive) == [(ChangeKind.NARROW_COLUMN, "name")]
    scale_down = diff_entities([ITEM], [replace_field(ITEM, "unit_price", precision=12, scale=1)])
    assert kinds(scale_down.destructive) == [(ChangeKind.NARROW_COLUMN, "unit_price")]
    no_longer_unique = diff_entities([ITEM], [replace_field(ITEM, "sku", unique=False)])
    assert no_longer_unique.describe() == [
        "inventory_item: unique index uq_plugin_inventory_item_sku on (tenant_id, sku) no longer declared"
    ]
    made_unique = diff_entities([ITEM], [replace_field(ITEM, "name", unique=True)])
    assert kinds(made_unique.additive) == [(ChangeKind.ADD_INDEX, None)]
    assert made_unique.additive[0].index == "uq_plugin_inventory_item_name"


# --------------------------------------------------------------------------------------------------
# Applying diffs (SQLite and PostgreSQL)
# --------------------------------------------------------------------------------------------------


async def test_additive_changes_are_applied_and_usable(db: Db) -> None:
    old = db.entities(SEED.entities)
    old_item, old_order = old
    tenant = uuid.uuid4()
    async with db.engine.begin() as conn:
        await ensure_tables(conn, old)
        existing = await insert(
            conn, build_table(old_item, sa.MetaData()), tenant_id=tenant, sku="A", name="Old"
        )

    new_item = with_fields(
        replace_field(old_item, "name", max_length=500, required=False, nullable=True),
        FieldSpec("barcode", "string", "Barcode", max_length=64, unique=True),
        FieldSpec("reorder", "integer", "Reorder", required=True, nullable=False, default=5),
        FieldSpec("active", "boolean", "Active", required=True, nullable=False, default=True),
        FieldSpec("memo", "text", "Memo"),
        indexes=((*old_item.indexes, ("reorder",))),
    )
    new_order = replace_field(
        replace_field(old_order, "total_amount", precision=14, scale=3),
        "status",
        type="text",
        max_length=None,
    )
    [supplier] = db.entities([EntitySpec("supplier", "Supplier", (FieldSpec("name", "string", "Name"),))])
    diff = diff_entities(old, [new_item, new_order, supplier])
    assert diff.destructive == []
    assert sorted(kinds(diff.additive), key=str) == sorted(
        [
            (ChangeKind.ADD_ENTITY, None),
            (ChangeKind.WIDEN_COLUMN, "name"),
            (ChangeKind.RELAX_NULLABLE, "name"),
            (ChangeKind.ADD_COLUMN, "barcode"),
            (ChangeKind.ADD_COLUMN, "reorder"),
            (ChangeKind.ADD_COLUMN, "active"),
            (ChangeKind.ADD_COLUMN, "memo"),
            (ChangeKind.WIDEN_COLUMN, "total_amount"),
            (ChangeKind.WIDEN_COLUMN, "status"),
            (ChangeKind.ADD_INDEX, None),
            (ChangeKind.ADD_INDEX, None),
        ],
        key=str,
    )

    async with db.engine.begin() as conn:
        await apply_additive(conn, diff)

    item = build_table(new_item, sa.MetaData())
    long_name = "N" * 400  # fits only after widening (PostgreSQL enforces VARCHAR lengths)
    async with db.engine.begin() as conn:
        await insert(conn, item, tenant_id=tenant, sku="B", name=long_name, barcode="123", memo="hello")
        await insert(conn, item, tenant_id=tenant, sku="C", barcode="456")  # name is optional now
        order = build_table(new_order, sa.MetaData())
        await insert(
            conn,
            order,
            tenant_id=tenant,
            order_no="PO-1",
            total_amount=Decimal("99999999999.999"),
            status="S" * 300,
        )
        await insert(conn, build_table(supplier, sa.MetaData()), tenant_id=tenant, name="ACME")
    async with db.engine.connect() as conn:
        old_row = (await conn.execute(sa.select(item).where(item.c.id == existing))).mappings().one()
        names = (await conn.execute(sa.select(item.c.name).where(item.c.sku == "B"))).scalar_one()
        amount = (await conn.execute(sa.select(order.c.total_amount))).scalar_one()
    assert old_row["reorder"] == 5 and old_row["active"] is True  # filled by the server default
    assert old_row["barcode"] is None and old_row["name"] == "Old"
    assert names == long_name
    assert amount == Decimal("99999999999.999")

    indexes = await db.inspect(lambda i: {ix["name"]: ix for ix in i.get_indexes(item.name)})
    assert {f"ix_{item.name}_reorder", f"uq_{item.name}_barcode", f"uq_{item.name}_sku"} <= set(indexes)
    # The unique indexes survive (SQLite rebuilt the table to drop NOT NULL) and stay partial.
    with pytest.raises(IntegrityError):
        async with db.engine.begin() as conn:
            await insert(conn, item, tenant_id=tenant, sku="A", name="Dup")
    async with db.engine.begin() as conn:
        await conn.execute(
            item.update().where(item.c.id == existing).values(deleted_at=dt.datetime.now(dt.UTC))
        )
        await insert(conn, item, tenant_id=tenant, sku="A", name="Re-used", barcode="789")

    # Re-applying (e.g. after an interrupted upgrade) is harmless, and an empty diff does nothing.
    async with db.engine.begin() as conn:
        await apply_additive(conn, diff)
        await apply_additive(conn, SchemaDiff())
    columns = await db.inspect(lambda i: [c["name"] for c in i.get_columns(item.name)])
    assert columns.count("barcode") == 1


async def test_destructive_changes_are_listed_not_applied(db: Db) -> None:
    old = db.entities(SEED.entities)
    old_item, old_order = old
    tenant = uuid.uuid4()
    async with db.engine.begin() as conn:
        await ensure_tables(conn, old)
        await insert(
            conn, build_table(old_item, sa.MetaData()), tenant_id=tenant, sku="A", name="Kept", unit="box"
        )

    new_item = with_fields(
        replace_field(old_item, "sku", type="integer", max_length=None),
        FieldSpec("warehouse", "string", "Warehouse", required=True, nullable=False),
        FieldSpec("note", "text", "Note"),
        drop=("unit",),
    )
    diff = diff_entities(old, [new_item])
    assert kinds(diff.destructive) == [
        (ChangeKind.DROP_ENTITY, None),
        (ChangeKind.CHANGE_TYPE, "sku"),
        (ChangeKind.ADD_REQUIRED_COLUMN, "warehouse"),
        (ChangeKind.DROP_COLUMN, "unit"),
    ]
    assert kinds(diff.additive) == [(ChangeKind.ADD_COLUMN, "note")]
    assert diff.destructive[1].describe() == (
        f"{old_item.name}.sku: type change string → integer (data would be lost)"
    )

    async with db.engine.begin() as conn:
        await apply_additive(conn, diff)

    tables = await db.inspect(lambda i: set(i.get_table_names()))
    assert old_order.table_name in tables  # dropped entity: table kept
    columns = await db.inspect(lambda i: {c["name"]: c for c in i.get_columns(old_item.table_name)})
    assert "unit" in columns and "note" in columns and "warehouse" not in columns
    assert isinstance(columns["sku"]["type"], sa.String)
    async with db.engine.connect() as conn:
        unit = await conn.scalar(sa.text(f'SELECT unit FROM "{old_item.table_name}"'))
    assert unit == "box"
