"""Content protection policy per live stream: ``none``, ``cenc`` or ``cbcs``.

Revision ID: 0023_live_protection
Revises: 0022_asset_protection
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023_live_protection"
down_revision = "0022_asset_protection"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("live_streams") as batch_op:
        batch_op.add_column(
            sa.Column("protection", sa.String(16), server_default="none", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("live_streams") as batch_op:
        batch_op.drop_column("protection")
