"""Merge the uploads, rights and content branches; source sizes become 64-bit.

Revision ID: 0005_merge
Revises: 0002_uploads, 0003_rights, 0004_content
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_merge"
down_revision = ("0002_uploads", "0003_rights", "0004_content")
branch_labels = None
depends_on = None


def upgrade() -> None:
    # INTEGER is 32-bit on PostgreSQL: a 2 GiB source would not fit.
    with op.batch_alter_table("assets") as batch_op:
        batch_op.alter_column("source_size", type_=sa.BigInteger(), existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("assets") as batch_op:
        batch_op.alter_column("source_size", type_=sa.Integer(), existing_nullable=True)
