"""extension point configurations per tenant (built-in and plugin implementations)

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC, JsonB
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_extension_configs",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("tenant_id", GUID(length=16), nullable=False),
        sa.Column("point", sa.String(32), nullable=False),
        sa.Column("plugin_id", sa.String(64), nullable=False),
        sa.Column("implementation", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("plain_values", JsonB, nullable=False),
        sa.Column("secret_values", JsonB, nullable=False),
        sa.Column("is_enabled", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_tenant_extension_configs_tenant_id_tenants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant_extension_configs")),
        sa.UniqueConstraint("tenant_id", "name", name="uq_tenant_extension_configs_name"),
    )
    op.create_index("ix_tenant_extension_configs_point", "tenant_extension_configs", ["tenant_id", "point"])


def downgrade() -> None:
    op.drop_index("ix_tenant_extension_configs_point", table_name="tenant_extension_configs")
    op.drop_table("tenant_extension_configs")
