"""Live stream health: when ``live_streams.health`` (input bitrate, frame rate, keyframe
interval, dropped frames, audio, encoder speed, or a failure's message) was last written by
the ingest. Apart from ``updated_at``, which health writes every few seconds leave alone.

Revision ID: 0020_live_health
Revises: 0019_outbox_unpublished
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020_live_health"
down_revision = "0019_outbox_unpublished"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("live_streams") as batch:
        batch.add_column(sa.Column("health_updated_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("live_streams") as batch:
        batch.drop_column("health_updated_at")
