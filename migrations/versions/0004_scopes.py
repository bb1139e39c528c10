"""data scopes: member manager and unit, tenant hierarchy version, role scopes

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("hierarchy_version", sa.Integer(), nullable=False, server_default="1"))
    with op.batch_alter_table("tenant_users") as batch:
        batch.add_column(sa.Column("manager_id", GUID(length=16), nullable=True))
        batch.add_column(sa.Column("unit", sa.String(100), nullable=True))
        batch.create_foreign_key("fk_tenant_users_manager_id_users", "users", ["manager_id"], ["id"],
                                 ondelete="SET NULL")
    op.create_index("ix_tenant_users_manager", "tenant_users", ["tenant_id", "manager_id", "user_id"])
    op.create_table(
        "role_scopes",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("tenant_id", GUID(length=16), nullable=False),
        sa.Column("role_id", GUID(length=16), nullable=False),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(20), nullable=False),
        sa.Column("by_unit", sa.Boolean(), nullable=False),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_role_scopes_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["role_id"], ["roles.id"], name=op.f("fk_role_scopes_role_id_roles"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_role_scopes")),
        sa.UniqueConstraint("role_id", "entity", name="uq_role_scopes_role_entity"),
    )
    op.create_index("ix_role_scopes_tenant_id", "role_scopes", ["tenant_id"])


def downgrade() -> None:
    op.drop_index("ix_role_scopes_tenant_id", table_name="role_scopes")
    op.drop_table("role_scopes")
    op.drop_index("ix_tenant_users_manager", table_name="tenant_users")
    with op.batch_alter_table("tenant_users") as batch:
        batch.drop_constraint("fk_tenant_users_manager_id_users", type_="foreignkey")
        batch.drop_column("unit")
        batch.drop_column("manager_id")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("hierarchy_version")
