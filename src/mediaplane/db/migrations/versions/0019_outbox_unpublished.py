"""The outbox's waiting events indexed apart: the relay reads the oldest unpublished
events by id, and without this index PostgreSQL walks the primary key past every
published event still kept (a week of them) on each read.

Revision ID: 0019_outbox_unpublished
Revises: 0018_live_streams
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019_outbox_unpublished"
down_revision = "0018_live_streams"
branch_labels = None
depends_on = None

_WAITING = sa.text("published_at IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["id"],
        unique=False,
        postgresql_where=_WAITING,
        sqlite_where=_WAITING,
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_unpublished", table_name="outbox")
