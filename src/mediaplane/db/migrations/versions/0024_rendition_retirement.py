"""When an asset's replaced renditions are deleted (after a re-package's grace).

Revision ID: 0024_rendition_retirement
Revises: 0023_live_protection
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024_rendition_retirement"
down_revision = "0023_live_protection"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("assets") as batch_op:
        batch_op.add_column(
            sa.Column("renditions_retire_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.create_index("ix_assets_renditions_retire_at", ["renditions_retire_at"])


def downgrade() -> None:
    with op.batch_alter_table("assets") as batch_op:
        batch_op.drop_index("ix_assets_renditions_retire_at")
        batch_op.drop_column("renditions_retire_at")
