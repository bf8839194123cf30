"""Access rules: an asset's visibility and access rule; plans (covering channels, with a
limit of concurrent streams) and grants (subscriptions, rentals, purchases).

Revision ID: 0013_access
Revises: 0012_web_sessions
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_access"
down_revision = "0012_web_sessions"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=16)


def upgrade() -> None:
    with op.batch_alter_table("assets") as batch_op:
        batch_op.add_column(
            sa.Column(
                "visibility",
                _enum("visibility", "public", "unlisted", "private"),
                server_default="public",
                nullable=False,
            )
        )
        batch_op.add_column(
            sa.Column(
                "access",
                _enum("accesskind", "free", "plan", "rental", "purchase"),
                server_default="free",
                nullable=False,
            )
        )
        batch_op.add_column(sa.Column("rental_hours", sa.Integer(), nullable=True))
    op.create_table(
        "plans",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("max_streams", sa.Integer(), nullable=True),
        _when("created_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plans")),
    )
    op.create_table(
        "plan_channels",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("plan_id", sa.String(length=32), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["plans.id"],
            name=op.f("fk_plan_channels_plan_id_plans"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_plan_channels_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_channels")),
        sa.UniqueConstraint("plan_id", "channel_id", name="uq_plan_channels"),
    )
    op.create_index(op.f("ix_plan_channels_plan_id"), "plan_channels", ["plan_id"], unique=False)
    op.create_index(
        op.f("ix_plan_channels_channel_id"), "plan_channels", ["channel_id"], unique=False
    )
    op.create_table(
        "grants",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("kind", _enum("grantkind", "subscription", "rental", "purchase"), nullable=False),
        sa.Column("plan_id", sa.String(length=32), nullable=True),
        sa.Column("asset_id", sa.String(length=32), nullable=True),
        sa.Column("window_hours", sa.Integer(), nullable=True),
        _when("expires_at"),
        _when("started_at"),
        _when("created_at", nullable=False),
        _when("revoked_at"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_grants_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plans.id"], name=op.f("fk_grants_plan_id_plans"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grants")),
    )
    op.create_index(op.f("ix_grants_user_id"), "grants", ["user_id"], unique=False)
    op.create_index(op.f("ix_grants_plan_id"), "grants", ["plan_id"], unique=False)
    op.create_index(op.f("ix_grants_asset_id"), "grants", ["asset_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_grants_asset_id"), table_name="grants")
    op.drop_index(op.f("ix_grants_plan_id"), table_name="grants")
    op.drop_index(op.f("ix_grants_user_id"), table_name="grants")
    op.drop_table("grants")
    op.drop_index(op.f("ix_plan_channels_channel_id"), table_name="plan_channels")
    op.drop_index(op.f("ix_plan_channels_plan_id"), table_name="plan_channels")
    op.drop_table("plan_channels")
    op.drop_table("plans")
    with op.batch_alter_table("assets") as batch_op:
        batch_op.drop_column("rental_hours")
        batch_op.drop_column("access")
        batch_op.drop_column("visibility")
