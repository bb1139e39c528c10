"""api_tokens.expires_at and api_tokens.scope: API tokens may expire and may be read-only
(existing tokens keep acting as their user, without expiry, until revoked)

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("expires_at", DateTimeUTC(timezone=True), nullable=True))
        batch.add_column(sa.Column("scope", sa.String(20), nullable=False, server_default="full"))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("scope")
        batch.drop_column("expires_at")
