"""stored_blobs.location: where a blob's bytes live (database | s3); content empty for s3 blobs

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stored_blobs") as batch:
        batch.add_column(sa.Column("location", sa.String(16), nullable=False, server_default="database"))
        batch.alter_column("content", existing_type=sa.LargeBinary(), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("stored_blobs") as batch:
        batch.alter_column("content", existing_type=sa.LargeBinary(), nullable=False)
        batch.drop_column("location")
