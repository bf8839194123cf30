"""Content protection policy per asset: ``none``, ``aes-128``, ``cenc`` or ``cbcs``.

Revision ID: 0022_asset_protection
Revises: 0021_content_keys
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022_asset_protection"
down_revision = "0021_content_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("assets") as batch_op:
        batch_op.add_column(
            sa.Column("protection", sa.String(16), server_default="none", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("assets") as batch_op:
        batch_op.drop_column("protection")
