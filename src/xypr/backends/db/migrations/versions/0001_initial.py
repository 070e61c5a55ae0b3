"""Initial schema: tenants, conversations, messages.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("genesys_region", sa.String(64), nullable=False),
        sa.Column("genesys_client_id", sa.String(200), nullable=False),
        sa.Column("genesys_integration_id", sa.String(200), nullable=False),
        sa.Column("genesys_org_id", sa.String(200), nullable=True),
        sa.Column("genesys_client_secret_sealed", sa.String(1000), nullable=False),
        sa.Column("genesys_webhook_secret_sealed", sa.String(1000), nullable=False),
        sa.Column("wa_waba_id", sa.String(64), nullable=False),
        sa.Column("wa_phone_number_id", sa.String(64), nullable=False),
        sa.Column("wa_display_phone_number", sa.String(32), nullable=False),
        sa.Column("wa_access_token_sealed", sa.String(4000), nullable=False),
        sa.Column("wa_app_secret_sealed", sa.String(1000), nullable=False),
        sa.Column("wa_verify_token_sealed", sa.String(1000), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tenants"),
        sa.UniqueConstraint("genesys_integration_id", name="uq_tenants_genesys_integration_id"),
        sa.UniqueConstraint("genesys_org_id", name="uq_tenants_genesys_org_id"),
        sa.UniqueConstraint("wa_phone_number_id", name="uq_tenants_wa_phone_number_id"),
    )
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("wa_id", sa.String(64), nullable=False),
        sa.Column("bsuid", sa.String(64), nullable=True),
        sa.Column("customer_name", sa.String(200), nullable=True),
        sa.Column("genesys_conversation_id", sa.String(64), nullable=True),
        sa.Column("last_customer_message_at", TZ, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_conversations"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_conversations_tenant_id_tenants", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("tenant_id", "wa_id", name="uq_conversations_tenant_id_wa_id"),
    )
    op.create_index("ix_conversations_genesys_conversation_id", "conversations", ["genesys_conversation_id"])
    op.create_table(
        "messages",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("conversation_id", sa.String(36), nullable=True),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("wamid", sa.String(200), nullable=True),
        sa.Column("genesys_message_id", sa.String(64), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_messages_tenant_id_tenants", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_messages_conversation_id_conversations",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("tenant_id", "direction", "wamid", name="uq_messages_tenant_id_direction_wamid"),
        sa.UniqueConstraint(
            "tenant_id",
            "direction",
            "genesys_message_id",
            name="uq_messages_tenant_id_direction_genesys_message_id",
        ),
    )
    op.create_index("ix_messages_tenant_conversation", "messages", ["tenant_id", "conversation_id", "created_at"])
    op.create_index("ix_messages_tenant_wamid", "messages", ["tenant_id", "wamid"])


def downgrade() -> None:
    op.drop_table("messages")
    op.drop_table("conversations")
    op.drop_table("tenants")
