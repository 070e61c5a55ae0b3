"""The tenant table; every secret column holds a `SecretBox` ciphertext bound to the tenant id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from xypr.backends.db.base import Base, new_id, utcnow

__all__ = ["SECRET_FIELDS", "TENANT_STATUSES", "ParkedEvent", "Tenant"]

# active: processed; suspended: webhooks acknowledged and parked; resuming: parked events being republished.
TENANT_STATUSES = ("active", "suspended", "resuming")

# (section, field) of the tenant file → sealed column.
SECRET_FIELDS: dict[tuple[str, str], str] = {
    ("genesys", "client_secret"): "genesys_client_secret_sealed",
    ("genesys", "webhook_secret"): "genesys_webhook_secret_sealed",
    ("whatsapp", "access_token"): "wa_access_token_sealed",
    ("whatsapp", "app_secret"): "wa_app_secret_sealed",
    ("whatsapp", "verify_token"): "wa_verify_token_sealed",
}


class Tenant(Base):
    """One organisation bridged by Xypr."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="active")

    genesys_region: Mapped[str] = mapped_column(String(64))
    genesys_client_id: Mapped[str] = mapped_column(String(200))
    genesys_integration_id: Mapped[str] = mapped_column(String(200), unique=True)
    genesys_org_id: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    genesys_client_secret_sealed: Mapped[str] = mapped_column(String(1000))
    genesys_webhook_secret_sealed: Mapped[str] = mapped_column(String(1000))

    wa_waba_id: Mapped[str] = mapped_column(String(64))
    wa_phone_number_id: Mapped[str] = mapped_column(String(64), unique=True)
    wa_display_phone_number: Mapped[str] = mapped_column(String(32))
    wa_access_token_sealed: Mapped[str] = mapped_column(String(4000))
    wa_app_secret_sealed: Mapped[str] = mapped_column(String(1000))
    wa_verify_token_sealed: Mapped[str] = mapped_column(String(1000))

    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The last onboarding checks ({"genesys.credentials": {"ok", "message"}, …}) and when they ran.
    onboarding_checks: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class ParkedEvent(Base):
    """A webhook event of a suspended tenant, kept (in arrival order: `id`) until the tenant is reactivated."""

    __tablename__ = "parked_events"
    __table_args__ = (Index("ix_parked_events_tenant_id_id", "tenant_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36), ForeignKey("tenants.id", ondelete="CASCADE"))
    queue: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(300))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
