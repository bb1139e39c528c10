"""plugin registry, per-tenant plugin state, schema versions

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _audit_columns() -> list[sa.Column]:
    return [
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "plugins",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("plugin_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("manifest_toml", sa.Text(), nullable=False),
        sa.Column("package_sha256", sa.String(64), nullable=False),
        sa.Column("has_wasm", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=False),
        sa.Column("bundled", sa.Boolean(), nullable=False),
        sa.Column("deleted_at", DateTimeUTC(timezone=True), nullable=True),
        *_audit_columns(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plugins")),
        sa.UniqueConstraint("plugin_id", name=op.f("uq_plugins_plugin_id")),
    )
    op.create_table(
        "tenant_plugins",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("tenant_id", GUID(length=16), nullable=False),
        sa.Column("plugin_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=False),
        *_audit_columns(),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_tenant_plugins_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant_plugins")),
        sa.UniqueConstraint("tenant_id", "plugin_id", name="uq_tenant_plugins"),
    )
    op.create_index("ix_tenant_plugins_plugin_id", "tenant_plugins", ["plugin_id"])
    op.create_table(
        "entity_schema_versions",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("plugin_id", sa.String(64), nullable=False),
        sa.Column("entity_name", sa.String(64), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("plugin_version", sa.String(40), nullable=False),
        *_audit_columns(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entity_schema_versions")),
        sa.UniqueConstraint("plugin_id", "entity_name", name="uq_entity_schema_versions"),
    )


def downgrade() -> None:
    op.drop_table("entity_schema_versions")
    op.drop_index("ix_tenant_plugins_plugin_id", table_name="tenant_plugins")
    op.drop_table("tenant_plugins")
    op.drop_table("plugins")
