"""saved_views, saved_view_shares, saved_view_defaults: named states of generated list pages, shared
with roles, and each user's default view per page

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC, JsonB
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "saved_views",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("tenant_id", GUID(length=16), nullable=False),
        sa.Column("owner_id", GUID(length=16), nullable=False),
        sa.Column("plugin_id", sa.String(64), nullable=False),
        sa.Column("page_path", sa.String(200), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("params", JsonB, nullable=False),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_saved_views_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_saved_views_owner_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_views")),
        sa.UniqueConstraint("tenant_id", "owner_id", "plugin_id", "page_path", "name", name="uq_saved_views_name"),
    )
    op.create_index("ix_saved_views_page", "saved_views", ["tenant_id", "plugin_id", "page_path"])
    op.create_table(
        "saved_view_shares",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("tenant_id", GUID(length=16), nullable=False),
        sa.Column("view_id", GUID(length=16), nullable=False),
        sa.Column("role_id", GUID(length=16), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_saved_view_shares_tenant_id_tenants"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["view_id"], ["saved_views.id"],
                                name=op.f("fk_saved_view_shares_view_id_saved_views"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["role_id"], ["roles.id"], name=op.f("fk_saved_view_shares_role_id_roles"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_view_shares")),
        sa.UniqueConstraint("view_id", "role_id", name="uq_saved_view_shares"),
    )
    op.create_index(op.f("ix_saved_view_shares_role_id"), "saved_view_shares", ["role_id"])
    op.create_table(
        "saved_view_defaults",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("tenant_id", GUID(length=16), nullable=False),
        sa.Column("user_id", GUID(length=16), nullable=False),
        sa.Column("plugin_id", sa.String(64), nullable=False),
        sa.Column("page_path", sa.String(200), nullable=False),
        sa.Column("view_id", GUID(length=16), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_saved_view_defaults_tenant_id_tenants"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_saved_view_defaults_user_id_users"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["view_id"], ["saved_views.id"],
                                name=op.f("fk_saved_view_defaults_view_id_saved_views"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_view_defaults")),
        sa.UniqueConstraint("tenant_id", "user_id", "plugin_id", "page_path", name="uq_saved_view_defaults"),
    )
    op.create_index(op.f("ix_saved_view_defaults_view_id"), "saved_view_defaults", ["view_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_saved_view_defaults_view_id"), table_name="saved_view_defaults")
    op.drop_table("saved_view_defaults")
    op.drop_index(op.f("ix_saved_view_shares_role_id"), table_name="saved_view_shares")
    op.drop_table("saved_view_shares")
    op.drop_index("ix_saved_views_page", table_name="saved_views")
    op.drop_table("saved_views")
