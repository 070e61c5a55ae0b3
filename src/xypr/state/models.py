"""Conversation mapping and message tracking tables; every row carries `tenant_id`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from xypr.backends.db.base import Base, new_id, utcnow
from xypr.state.details import MessageDetails, MessageDetailsType

__all__ = ["Conversation", "Media", "Message", "MessageStatus"]


def _first_key(context: Any) -> str:
    """A new conversation is known to Genesys by the customer key it starts with."""
    return str(context.get_current_parameters()["wa_id"])


class Conversation(Base):
    """One bridged conversation (our *portal*): a WhatsApp customer of a tenant ↔ a Genesys conversation."""

    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("tenant_id", "wa_id"),
        Index("ix_conversations_tenant_genesys_customer", "tenant_id", "genesys_customer_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), ForeignKey("tenants.id", ondelete="CASCADE"))
    # The customer key: the phone-based wa_id, or the BSUID for users known only by username.
    wa_id: Mapped[str] = mapped_column(String(64))
    bsuid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The id Genesys knows the customer by (`channel.from.id` / `channel.to.id`): the key of the first
    # message, kept when the customer changes number or BSUID, since Genesys threads conversations on it.
    genesys_customer_id: Mapped[str] = mapped_column(String(64), default=_first_key)
    customer_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    genesys_conversation_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    last_customer_message_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Free-form conversation context (`xypr.state.context`): what tools and agents keep about the customer.
    context: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Message(Base):
    """One tracked message: its WhatsApp id, its Genesys id, its direction and latest status."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("tenant_id", "direction", "wamid"),
        UniqueConstraint("tenant_id", "direction", "genesys_message_id"),
        Index("ix_messages_tenant_conversation", "tenant_id", "conversation_id", "created_at"),
        Index("ix_messages_tenant_wamid", "tenant_id", "wamid"),
        Index("ix_messages_created_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), ForeignKey("tenants.id", ondelete="CASCADE"))
    conversation_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("conversations.id", ondelete="CASCADE"), nullable=True
    )
    direction: Mapped[str] = mapped_column(String(8))  # inbound (customer → agent) | outbound
    wamid: Mapped[str | None] = mapped_column(String(200), nullable=True)
    genesys_message_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    kind: Mapped[str] = mapped_column(String(32))
    # received → sent (upstream accepted) → delivered → read | failed
    status: Mapped[str] = mapped_column(String(16))
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Facts needed later (quick replies offered, every part's wamid, media, …): `xypr.state.details`.
    details: Mapped[MessageDetails | None] = mapped_column(MessageDetailsType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class MessageStatus(Base):
    """One WhatsApp status (`sent`, `delivered`, `read`, `failed`…) seen for a wamid: the dedupe key of statuses."""

    __tablename__ = "message_statuses"
    __table_args__ = (UniqueConstraint("tenant_id", "wamid", "status"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), ForeignKey("tenants.id", ondelete="CASCADE"))
    wamid: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Media(Base):
    """Inbound media copied from WhatsApp into the object store: one row per `(tenant, media id)`."""

    __tablename__ = "media"
    __table_args__ = (
        UniqueConstraint("tenant_id", "media_id"),
        Index("ix_media_tenant_wamid", "tenant_id", "wamid"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), ForeignKey("tenants.id", ondelete="CASCADE"))
    wamid: Mapped[str] = mapped_column(String(200))
    media_id: Mapped[str] = mapped_column(String(128))
    object_key: Mapped[str] = mapped_column(String(512))
    mime_type: Mapped[str] = mapped_column(String(128))
    sha256: Mapped[str] = mapped_column(String(64))  # hex of the bytes we stored
    size: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
