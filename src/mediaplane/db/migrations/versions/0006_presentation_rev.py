"""Assets get a presentation revision: several jobs (the preview publisher, chunk stitchers)
now update one asset's presentation, so each write is a compare-and-set on this number.

Revision ID: 0006_presentation_rev
Revises: 0005_merge
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_presentation_rev"
down_revision = "0005_merge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("assets") as batch_op:
        batch_op.add_column(
            sa.Column("presentation_rev", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("assets") as batch_op:
        batch_op.drop_column("presentation_rev")
