"""Content protection: wrapped key-encryption keys, wrapped content keys, commercial DRM
systems' signalling per KID (PSSH etc., from a key provider), and the audit log of key
releases (who asked for which KID, the decision and why; never a key).

Revision ID: 0021_content_keys
Revises: 0020_live_health
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021_content_keys"
down_revision = "0020_live_health"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "key_encryption_keys",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kms", sa.String(200), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_encryption_keys")),
    )
    op.create_table(
        "content_keys",
        sa.Column("kid", sa.String(32), nullable=False),
        sa.Column("asset_id", sa.String(64), nullable=False),
        sa.Column("track_type", sa.String(16), nullable=False),
        sa.Column("kek_id", sa.Integer(), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["kek_id"],
            ["key_encryption_keys.id"],
            name=op.f("fk_content_keys_kek_id_key_encryption_keys"),
        ),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_content_keys")),
    )
    op.create_index(op.f("ix_content_keys_asset_id"), "content_keys", ["asset_id"])
    op.create_table(
        "drm_signals",
        sa.Column("kid", sa.String(32), nullable=False),
        sa.Column("system_id", sa.String(36), nullable=False),
        sa.Column("pssh", sa.LargeBinary(), nullable=True),
        sa.Column("content_protection_data", sa.LargeBinary(), nullable=True),
        sa.Column("hls_media", sa.LargeBinary(), nullable=True),
        sa.Column("hls_master", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("kid", "system_id", name=op.f("pk_drm_signals")),
    )
    op.create_table(
        "key_releases",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kid", sa.String(32), nullable=False),
        sa.Column("asset_id", sa.String(64), nullable=True),
        sa.Column("playback_id", sa.String(64), nullable=True),
        sa.Column("principal", sa.String(120), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("address", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_releases")),
    )
    op.create_index(op.f("ix_key_releases_at"), "key_releases", ["at"])
    op.create_index(op.f("ix_key_releases_kid"), "key_releases", ["kid"])
    op.create_index(op.f("ix_key_releases_asset_id"), "key_releases", ["asset_id"])


def downgrade() -> None:
    op.drop_table("key_releases")
    op.drop_table("drm_signals")
    op.drop_table("content_keys")
    op.drop_table("key_encryption_keys")
