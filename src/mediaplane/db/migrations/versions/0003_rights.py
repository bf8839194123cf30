"""asset source type, moderation state, licensed-content rights and passthrough

Revision ID: 0003_rights
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_rights"
down_revision = "0001"
branch_labels = None
depends_on = None

SOURCE_TYPES = ("creator_upload", "ugc", "vod_library", "licensed", "live_recording")
MODERATION = ("not_required", "pending", "approved", "rejected")


def upgrade() -> None:
    # Existing assets were creator uploads that nobody held: the server defaults say so.
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "source_type",
                sa.Enum(*SOURCE_TYPES, name="sourcetype", native_enum=False, length=32),
                nullable=False,
                server_default="creator_upload",
            )
        )
        batch_op.add_column(
            sa.Column(
                "moderation",
                sa.Enum(*MODERATION, name="moderationstatus", native_enum=False, length=16),
                nullable=False,
                server_default="not_required",
            )
        )
        batch_op.add_column(sa.Column("moderated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("rights", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("passthrough", sa.String(length=255), nullable=True))
        batch_op.create_index(batch_op.f("ix_assets_moderation"), ["moderation"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assets_moderation"))
        batch_op.drop_column("passthrough")
        batch_op.drop_column("rights")
        batch_op.drop_column("moderated_at")
        batch_op.drop_column("moderation")
        batch_op.drop_column("source_type")
