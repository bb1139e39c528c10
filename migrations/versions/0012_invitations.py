"""invitations: a tenant admin's offer to an existing (or future) account holder to join with a role,
accepted or declined by them, instead of attaching their account directly

Revision ID: 0012
Revises: 0011 (re-chained after 0011 at merge)
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invitations",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("tenant_id", GUID(length=16), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("role_id", GUID(length=16), nullable=False),
        sa.Column("manager_id", GUID(length=16), nullable=True),
        sa.Column("unit", sa.String(100), nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("invited_by", GUID(length=16), nullable=True),
        sa.Column("invited_by_email", sa.String(254), nullable=False),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("expires_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("decided_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_invitations_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["role_id"], ["roles.id"], name=op.f("fk_invitations_role_id_roles"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["manager_id"], ["users.id"], name=op.f("fk_invitations_manager_id_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitations")),
    )
    op.create_index("uq_invitations_pending", "invitations", ["tenant_id", "email"], unique=True,
                    sqlite_where=sa.text("state = 'pending'"), postgresql_where=sa.text("state = 'pending'"))
    op.create_index("ix_invitations_email", "invitations", ["email", "state"])


def downgrade() -> None:
    op.drop_index("ix_invitations_email", table_name="invitations")
    op.drop_index("uq_invitations_pending", table_name="invitations")
    op.drop_table("invitations")
