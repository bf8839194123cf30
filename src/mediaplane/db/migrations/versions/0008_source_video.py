"""The source's video facts on the asset: display shape and pixel aspect, fields, colour and
HDR transfer (kept for HDR renditions), as the probe read them.

Revision ID: 0008_source_video
Revises: 0007_tus_concat
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_source_video"
down_revision = "0007_tus_concat"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("assets") as batch_op:
        batch_op.add_column(sa.Column("source_video", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("assets") as batch_op:
        batch_op.drop_column("source_video")
