"""Live streams, their sessions and playback ids.

Revision ID: 0018_live_streams
Revises: 0017_delivery_order
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018_live_streams"
down_revision = "0017_delivery_order"
branch_labels = None
depends_on = None


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=16)


def upgrade() -> None:
    # assets.source_type already holds "live_recording" (a VARCHAR enum: no change here).
    op.create_table(
        "live_streams",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=True),
        sa.Column("stream_key", sa.String(length=64), nullable=False),
        sa.Column("stream_key_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "status", _enum("livestreamstatus", "idle", "active", "disabled"), nullable=False
        ),
        sa.Column("latency_mode", _enum("latencymode", "standard", "low"), nullable=False),
        sa.Column("record", sa.Boolean(), nullable=False),
        sa.Column("dvr_window_seconds", sa.Integer(), nullable=False),
        sa.Column("reconnect_window_seconds", sa.Integer(), nullable=False),
        sa.Column("active_session_id", sa.String(length=32), nullable=True),
        sa.Column("active_asset_id", sa.String(length=32), nullable=True),
        sa.Column("recent_asset_ids", sa.JSON(), nullable=False),
        sa.Column("health", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_live_streams_channel_id_channels"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["active_asset_id"],
            ["assets.id"],
            name=op.f("fk_live_streams_active_asset_id_assets"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_streams")),
        sa.UniqueConstraint("stream_key_hash", name=op.f("uq_live_streams_stream_key_hash")),
    )
    op.create_index(op.f("ix_live_streams_channel_id"), "live_streams", ["channel_id"])
    op.create_index(op.f("ix_live_streams_created_at"), "live_streams", ["created_at"])
    op.create_table(
        "live_sessions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("live_stream_id", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disconnected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("protocol", sa.String(length=16), nullable=False),
        sa.Column("asset_id", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["live_stream_id"],
            ["live_streams.id"],
            name=op.f("fk_live_sessions_live_stream_id_live_streams"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["assets.id"],
            name=op.f("fk_live_sessions_asset_id_assets"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_sessions")),
    )
    op.create_index(
        "ix_live_sessions_stream_started", "live_sessions", ["live_stream_id", "started_at"]
    )
    op.create_table(
        "live_playback_ids",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("live_stream_id", sa.String(length=32), nullable=False),
        sa.Column("policy", _enum("playbackpolicy", "public", "signed"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["live_stream_id"],
            ["live_streams.id"],
            name=op.f("fk_live_playback_ids_live_stream_id_live_streams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_playback_ids")),
    )
    op.create_index(
        op.f("ix_live_playback_ids_live_stream_id"), "live_playback_ids", ["live_stream_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_live_playback_ids_live_stream_id"), table_name="live_playback_ids")
    op.drop_table("live_playback_ids")
    op.drop_index("ix_live_sessions_stream_started", table_name="live_sessions")
    op.drop_table("live_sessions")
    op.drop_index(op.f("ix_live_streams_created_at"), table_name="live_streams")
    op.drop_index(op.f("ix_live_streams_channel_id"), table_name="live_streams")
    op.drop_table("live_streams")
