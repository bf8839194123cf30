"""asset content hash, duplicate links and chromaprint audio fingerprint

Revision ID: 0004_content
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_content"
down_revision = "0001"
branch_labels = None
depends_on = None

FINGERPRINT_STATUS = ("pending", "ready", "no_audio", "too_short", "failed")


def upgrade() -> None:
    # Plain ADD COLUMNs (no table rebuild on SQLite). The links are not foreign keys:
    # deleting an asset clears them in the service, and adding an FK would force SQLite to
    # rebuild the assets table under the playback_ids that reference it.
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("duplicate_of", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("audio_fingerprint", sa.LargeBinary(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "fingerprint_status",
                sa.Enum(
                    *FINGERPRINT_STATUS, name="fingerprintstatus", native_enum=False, length=16
                ),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("audio_match_of", sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f("ix_assets_content_hash"), ["content_hash"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_assets_fingerprint_status"), ["fingerprint_status"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assets_fingerprint_status"))
        batch_op.drop_index(batch_op.f("ix_assets_content_hash"))
        batch_op.drop_column("audio_match_of")
        batch_op.drop_column("fingerprint_status")
        batch_op.drop_column("audio_fingerprint")
        batch_op.drop_column("duplicate_of")
        batch_op.drop_column("content_hash")
