"""wasm hash per plugin package; plugin faults (traps and limit breaches, for the crash policy)

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("plugins") as batch:
        batch.add_column(sa.Column("wasm_sha256", sa.String(64), nullable=False, server_default=""))
    op.create_table(
        "guest_faults",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("tenant_id", GUID(length=16), nullable=True),
        sa.Column("plugin_id", sa.String(64), nullable=False),
        sa.Column("call", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("counts_as_trap", sa.Boolean(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guest_faults")),
    )
    op.create_index("ix_guest_faults_plugin_tenant_time", "guest_faults", ["plugin_id", "tenant_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_guest_faults_plugin_tenant_time", table_name="guest_faults")
    op.drop_table("guest_faults")
    with op.batch_alter_table("plugins") as batch:
        batch.drop_column("wasm_sha256")
