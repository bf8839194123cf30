"""Channels and their members; assets and uploads belong to a channel (nullable: assets
from before channels, and those admins create, are the install's).

Revision ID: 0011_channels
Revises: 0010_job_leases
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_channels"
down_revision = "0010_job_leases"
branch_labels = None
depends_on = None


def _when(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "channels",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=True),
        _when("created_at"),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_channels_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channels")),
    )
    op.create_index(op.f("ix_channels_created_by"), "channels", ["created_by"], unique=False)
    op.create_table(
        "channel_members",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column(
            "role",
            sa.Enum("owner", "editor", "viewer", name="channelrole", native_enum=False, length=16),
            nullable=False,
        ),
        _when("created_at"),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_channel_members_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_channel_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_members")),
        sa.UniqueConstraint("channel_id", "user_id", name="uq_channel_members"),
    )
    op.create_index(
        op.f("ix_channel_members_channel_id"), "channel_members", ["channel_id"], unique=False
    )
    op.create_index(
        op.f("ix_channel_members_user_id"), "channel_members", ["user_id"], unique=False
    )
    with op.batch_alter_table("assets") as batch_op:
        batch_op.add_column(sa.Column("channel_id", sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f("ix_assets_channel_id"), ["channel_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_assets_channel_id_channels"),
            "channels",
            ["channel_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("uploads") as batch_op:
        batch_op.add_column(sa.Column("owner_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("channel_id", sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f("ix_uploads_owner_id"), ["owner_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_uploads_channel_id_channels"),
            "channels",
            ["channel_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("uploads") as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_uploads_channel_id_channels"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_uploads_owner_id"))
        batch_op.drop_column("channel_id")
        batch_op.drop_column("owner_id")
    with op.batch_alter_table("assets") as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_assets_channel_id_channels"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_assets_channel_id"))
        batch_op.drop_column("channel_id")
    op.drop_index(op.f("ix_channel_members_user_id"), table_name="channel_members")
    op.drop_index(op.f("ix_channel_members_channel_id"), table_name="channel_members")
    op.drop_table("channel_members")
    op.drop_index(op.f("ix_channels_created_by"), table_name="channels")
    op.drop_table("channels")
