"""Tenant service: parked webhook events of suspended tenants, the last onboarding checks of a tenant.

Revision ID: 0003_tenant_service
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_tenant_service"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("onboarding_checks", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("checked_at", TZ, nullable=True))
    op.create_table(
        "parked_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_parked_events"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_parked_events_tenant_id_tenants", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_parked_events_tenant_id_id", "parked_events", ["tenant_id", "id"])


def downgrade() -> None:
    op.drop_table("parked_events")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("checked_at")
        batch.drop_column("onboarding_checks")
