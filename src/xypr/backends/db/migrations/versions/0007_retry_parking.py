"""The parking store: events of conversations held by an upstream outage, out of the broker's queues.

Revision ID: 0007_retry_parking
Revises: 0006_genesys_customer_id
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_retry_parking"
down_revision: str | None = "0006_genesys_customer_id"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Times are seconds since the epoch: compared with the clock on every drain, never shown as such.
SECONDS = sa.Float(precision=53)


def upgrade() -> None:
    # One row per parked conversation: its lock row (every change to the key's events locks it first),
    # when its head is due, and the lease of the drainer working on it.
    op.create_table(
        "retry_parked_keys",
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("next_attempt_at", SECONDS, nullable=False),
        sa.Column("lease_owner", sa.String(36), nullable=True),
        sa.Column("lease_until", SECONDS, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("queue", "key", name="pk_retry_parked_keys"),
    )
    op.create_index("ix_retry_parked_keys_due", "retry_parked_keys", ["queue", "next_attempt_at"])
    op.create_table(
        "retry_parked_events",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        # sha256 of key and body: a delivery parked twice (a crash between parking and the ack) is one row.
        sa.Column("identity", sa.String(64), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("first_try_at", SECONDS, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", SECONDS, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("parked_at", SECONDS, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_retry_parked_events"),
        sa.UniqueConstraint("queue", "identity", name="uq_retry_parked_events_queue_identity"),
    )
    op.create_index("ix_retry_parked_events_key_seq", "retry_parked_events", ["queue", "key", "seq"])


def downgrade() -> None:
    op.drop_index("ix_retry_parked_events_key_seq", table_name="retry_parked_events")
    op.drop_table("retry_parked_events")
    op.drop_index("ix_retry_parked_keys_due", table_name="retry_parked_keys")
    op.drop_table("retry_parked_keys")
