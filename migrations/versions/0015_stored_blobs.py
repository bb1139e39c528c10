"""stored_blobs, data_backups, plugins.package_files: plugin packages and backups in the database,
content-addressed by sha256, so that every host over one database reaches them

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC, JsonB
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stored_blobs",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stored_blobs")),
        sa.UniqueConstraint("sha256", name=op.f("uq_stored_blobs_sha256")),
    )
    op.create_table(
        "data_backups",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("plugin_id", sa.String(64), nullable=False),
        sa.Column("label", sa.String(20), nullable=False),
        sa.Column("file_name", sa.String(200), nullable=False),
        sa.Column("blob_sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_backups")),
    )
    op.create_index(op.f("ix_data_backups_plugin_id"), "data_backups", ["plugin_id"])
    # Existing packages' files are imported from the data dir at the next start (app.installs.stored).
    with op.batch_alter_table("plugins") as batch:
        batch.add_column(sa.Column("package_files", JsonB, nullable=False, server_default=sa.text("'{}'")))


def downgrade() -> None:
    with op.batch_alter_table("plugins") as batch:
        batch.drop_column("package_files")
    op.drop_index(op.f("ix_data_backups_plugin_id"), table_name="data_backups")
    op.drop_table("data_backups")
    op.drop_table("stored_blobs")
