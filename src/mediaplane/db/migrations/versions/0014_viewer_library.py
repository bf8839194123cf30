"""The viewer's library: watch history with resume positions, favourites, playlists; and
the device facts the profile shows (a truncated address on web sessions, the user agent
and truncated address on app refresh tokens).

Revision ID: 0014_viewer_library
Revises: 0012_web_sessions
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_viewer_library"
down_revision = "0013_access"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=op.f(f"fk_{table}_{column}_{target}"),
        ondelete="CASCADE",
    )


def _id(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.String(length=32), nullable=False)


def upgrade() -> None:
    op.create_table(
        "watch_history",
        _id("user_id"),
        _id("asset_id"),
        sa.Column("position_seconds", sa.Float(), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("finished", sa.Boolean(), nullable=False),
        _when("created_at"),
        _when("updated_at"),
        _fk("watch_history", "user_id", "users"),
        _fk("watch_history", "asset_id", "assets"),
        sa.PrimaryKeyConstraint("user_id", "asset_id", name=op.f("pk_watch_history")),
    )
    op.create_index(
        "ix_watch_history_user_id_updated_at", "watch_history", ["user_id", "updated_at"]
    )
    op.create_table(
        "favourites",
        _id("user_id"),
        _id("asset_id"),
        _when("created_at"),
        _fk("favourites", "user_id", "users"),
        _fk("favourites", "asset_id", "assets"),
        sa.PrimaryKeyConstraint("user_id", "asset_id", name=op.f("pk_favourites")),
    )
    op.create_index("ix_favourites_user_id_created_at", "favourites", ["user_id", "created_at"])
    op.create_table(
        "playlists",
        _id("id"),
        _id("user_id"),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=False),
        _when("created_at"),
        _when("updated_at"),
        _fk("playlists", "user_id", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_playlists")),
    )
    op.create_index(op.f("ix_playlists_user_id"), "playlists", ["user_id"], unique=False)
    op.create_table(
        "playlist_items",
        _id("playlist_id"),
        _id("asset_id"),
        sa.Column("position", sa.Integer(), nullable=False),
        _when("added_at"),
        _fk("playlist_items", "playlist_id", "playlists"),
        _fk("playlist_items", "asset_id", "assets"),
        sa.PrimaryKeyConstraint("playlist_id", "asset_id", name=op.f("pk_playlist_items")),
    )
    with op.batch_alter_table("web_sessions") as batch:
        batch.add_column(sa.Column("address", sa.String(length=64), nullable=True))
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.add_column(sa.Column("user_agent", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("address", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.drop_column("address")
        batch.drop_column("user_agent")
    with op.batch_alter_table("web_sessions") as batch:
        batch.drop_column("address")
    op.drop_table("playlist_items")
    op.drop_index(op.f("ix_playlists_user_id"), table_name="playlists")
    op.drop_table("playlists")
    op.drop_index("ix_favourites_user_id_created_at", table_name="favourites")
    op.drop_table("favourites")
    op.drop_index("ix_watch_history_user_id_updated_at", table_name="watch_history")
    op.drop_table("watch_history")
