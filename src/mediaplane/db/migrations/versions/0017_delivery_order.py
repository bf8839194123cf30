"""Webhook deliveries ordered per object: each delivery carries its event's object id and
outbox sequence, and an index finds an object's unfinished deliveries to an endpoint.

Deliveries made before this revision take both from their outbox row; where the event was
pruned from the outbox already, the delivery's own id stands in for the object (it then
waits for nothing).

Revision ID: 0017_delivery_order
Revises: 0016_webhooks
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_delivery_order"
down_revision = "0016_webhooks"
branch_labels = None
depends_on = None

_BACKFILL = """
UPDATE webhook_deliveries SET
  object_id = COALESCE(
    (SELECT o.object_id FROM outbox o WHERE o.event_id = webhook_deliveries.event_id),
    webhook_deliveries.id),
  seq = COALESCE(
    (SELECT o.id FROM outbox o WHERE o.event_id = webhook_deliveries.event_id), 0)
"""


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as batch_op:
        batch_op.add_column(sa.Column("object_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
    op.execute(_BACKFILL)
    with op.batch_alter_table("webhook_deliveries") as batch_op:
        batch_op.alter_column("object_id", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
    op.create_index(
        "ix_webhook_deliveries_order",
        "webhook_deliveries",
        ["endpoint_id", "object_id", "status", "seq"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_order", table_name="webhook_deliveries")
    with op.batch_alter_table("webhook_deliveries") as batch_op:
        batch_op.drop_column("seq")
        batch_op.drop_column("object_id")
