"""Where base table rows get their tenant (app.core.models.TenantScoped), the query helpers that keep a
query to one tenant (app.core.tenancy), and that the models still describe what the migrations build."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from advanced_alchemy.base import orm_registry
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import ForeignKey, create_engine, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from app.core.errors import NotFound
from app.core.models import AuditEntry, Role, Tenant, TenantScoped
from app.core.settings import load_settings
from app.core.tenancy import get_in_tenant, in_tenant, tenant_is
from tests.conftest import run


def test_every_base_table_owned_by_a_tenant_declares_it_with_the_mixin() -> None:
    owned = []
    for mapper in orm_registry.mappers:
        column = mapper.columns.get("tenant_id")
        if column is None or column.nullable:
            continue  # platform-wide rows allowed (audit log, event log, guest faults)
        fks: set[ForeignKey] = set(column.foreign_keys)
        assert [fk.target_fullname for fk in fks] == ["tenants.id"], mapper.class_.__name__
        assert issubclass(mapper.class_, TenantScoped), f"{mapper.class_.__name__} declares its own tenant_id"
        owned.append(mapper.class_.__name__)
    assert {"Role", "Membership", "PluginTenant", "RoleScope", "Invitation", "WorkflowTask"} <= set(owned)


def test_the_models_describe_what_the_migrations_build(db_url: str) -> None:
    """Tables, columns, indexes, unique constraints and foreign keys of the models equal the migrated
    database's (column types too on PostgreSQL; SQLite reflects its UUID columns as NUMERIC)."""
    url = db_url.replace("postgresql://", "postgresql+psycopg://")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": not url.startswith("sqlite")})
            diff = compare_metadata(context, orm_registry.metadata)
    finally:
        engine.dispose()
    assert diff == []


async def _two_tenants(session: AsyncSession) -> tuple[Tenant, Tenant, Role, Role]:
    one, two = Tenant(slug="one", name="One"), Tenant(slug="two", name="Two")
    session.add_all([one, two])
    await session.flush()
    r1 = Role(tenant_id=one.id, name="Clerk", description="")
    r2 = Role(tenant_id=two.id, name="Clerk", description="")
    session.add_all([r1, r2])
    await session.flush()
    return one, two, r1, r2


@pytest.fixture
def session_factory(settings_env: dict[str, str]) -> Any:
    settings = load_settings(settings_env)
    url = settings.database_url
    engine = create_async_engine(url)
    yield async_sessionmaker(engine, expire_on_commit=False)
    run(engine.dispose())


def test_the_helpers_keep_a_query_to_one_tenant(session_factory: Any) -> None:
    async def go() -> None:
        async with session_factory() as session:
            one, two, r1, r2 = await _two_tenants(session)
            # get_in_tenant: another tenant's row is "not found", exactly like a missing one.
            assert (await get_in_tenant(session, Role, r1.id, one.id)).id == r1.id
            with pytest.raises(NotFound):
                await get_in_tenant(session, Role, r2.id, one.id)
            with pytest.raises(NotFound):
                await get_in_tenant(session, Role, uuid.uuid4(), one.id)
            # in_tenant(Model): select(Model) of the tenant's rows.
            names = (await session.scalars(in_tenant(Role, two.id).where(Role.name == "Clerk"))).all()
            assert [r.id for r in names] == [r2.id]
            # in_tenant(statement): limited on every selected entity that has a tenant_id.
            stmt = in_tenant(select(Role.id, Role.name).where(Role.name == "Clerk"), one.id)
            assert [row.id for row in (await session.execute(stmt)).all()] == [r1.id]
            # tenant_is also serves tables whose rows may be platform-wide (nullable tenant_id).
            count = select(func.count()).select_from(AuditEntry).where(tenant_is(AuditEntry, one.id))
            assert await session.scalar(count) == 0
            await session.rollback()

    run(go())


def test_the_helpers_refuse_a_table_without_tenant() -> None:
    with pytest.raises(TypeError, match="no tenant_id"):
        tenant_is(Tenant, uuid.uuid4())
    with pytest.raises(TypeError, match="no table with a tenant_id"):
        in_tenant(select(Tenant), uuid.uuid4())
