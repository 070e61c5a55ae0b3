"""Inbound media mapping: each WhatsApp media id copied into the object store, once per tenant.

Revision ID: 0003_media
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_media"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "media",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("wamid", sa.String(200), nullable=False),
        sa.Column("media_id", sa.String(128), nullable=False),
        sa.Column("object_key", sa.String(512), nullable=False),
        sa.Column("mime_type", sa.String(128), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(255), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_media"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_media_tenant_id_tenants", ondelete="CASCADE"),
        sa.UniqueConstraint("tenant_id", "media_id", name="uq_media_tenant_id_media_id"),
    )
    op.create_index("ix_media_tenant_wamid", "media", ["tenant_id", "wamid"])


def downgrade() -> None:
    op.drop_index("ix_media_tenant_wamid", table_name="media")
    op.drop_table("media")
