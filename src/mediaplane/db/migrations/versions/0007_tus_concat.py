"""tus concatenation and deferred length: an upload may be partial or final, a partial
names the final upload that claimed it, and the length may be unknown for a while.

Revision ID: 0007_tus_concat
Revises: 0006_presentation_rev
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_tus_concat"
down_revision = "0006_presentation_rev"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("uploads") as batch_op:
        batch_op.alter_column("length", existing_type=sa.BigInteger(), nullable=True)
        batch_op.add_column(
            sa.Column(
                "concat",
                sa.Enum("partial", "final", name="uploadconcat", native_enum=False, length=8),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("concat_parts", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("final_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    # Uploads whose length is still deferred cannot be kept without one.
    op.execute("DELETE FROM uploads WHERE length IS NULL")
    with op.batch_alter_table("uploads") as batch_op:
        batch_op.drop_column("final_id")
        batch_op.drop_column("concat_parts")
        batch_op.drop_column("concat")
        batch_op.alter_column("length", existing_type=sa.BigInteger(), nullable=False)
