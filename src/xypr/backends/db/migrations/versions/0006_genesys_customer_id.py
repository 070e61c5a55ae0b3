"""The id Genesys knows a conversation's customer by, kept when their WhatsApp number or BSUID changes.

Genesys Open Messaging threads a conversation on `channel.from.id`: after an identity change the bridge
keeps telling Genesys the first id, while WhatsApp sends go to the new one (`conversations.wa_id`).
Existing conversations are known to Genesys by their current key.

Revision ID: 0006_genesys_customer_id
Revises: 0005_dashboard_audit
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_genesys_customer_id"
down_revision: str | None = "0005_dashboard_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("genesys_customer_id", sa.String(64), nullable=True))
    op.execute("UPDATE conversations SET genesys_customer_id = wa_id")
    with op.batch_alter_table("conversations") as batch:
        batch.alter_column("genesys_customer_id", existing_type=sa.String(64), nullable=False)
    op.create_index("ix_conversations_tenant_genesys_customer", "conversations", ["tenant_id", "genesys_customer_id"])


def downgrade() -> None:
    op.drop_index("ix_conversations_tenant_genesys_customer", table_name="conversations")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("genesys_customer_id")
