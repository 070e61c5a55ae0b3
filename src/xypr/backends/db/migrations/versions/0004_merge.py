"""Merge the four 0003 branches (auth, media, statuses, tenant service) written in parallel.

Revision ID: 0004
Revises: 0003_auth, 0003_media, 0003_statuses, 0003_tenant_service
Create Date: 2026-11-21
"""

from collections.abc import Sequence

revision: str = "0004"
down_revision: str | Sequence[str] | None = ("0003_auth", "0003_media", "0003_statuses", "0003_tenant_service")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing to change: the branches touch different tables."""


def downgrade() -> None:
    """Nothing to change."""
