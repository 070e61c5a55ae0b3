"""State operations used by the workers: conversation mapping and message tracking, tenant-scoped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from xypr.backends.db.base import utcnow
from xypr.state.models import Conversation, Message

__all__ = [
    "InboundRecord",
    "OutboundRecord",
    "find_conversation",
    "get_message",
    "latest_inbound_wamid",
    "record_inbound",
    "record_outbound",
    "upsert_conversation",
]

# Statuses after which a message must not be sent again.
SETTLED = frozenset({"sent", "delivered", "read", "failed"})


@dataclass(frozen=True, slots=True)
class InboundRecord:
    """Outcome of recording a customer message: its row, its conversation, and whether it is new."""

    message: Message
    conversation: Conversation
    created: bool


@dataclass(frozen=True, slots=True)
class OutboundRecord:
    """Outcome of recording an agent message."""

    message: Message
    conversation: Conversation | None
    created: bool


async def upsert_conversation(
    session: AsyncSession,
    *,
    tenant_id: str,
    wa_id: str,
    bsuid: str | None = None,
    customer_name: str | None = None,
    customer_wrote_at: datetime | None = None,
) -> Conversation:
    """The conversation of a customer, created on first contact; name and last-message time refreshed."""
    conversation = await find_conversation(session, tenant_id=tenant_id, wa_id=wa_id)
    if conversation is None:
        conversation = Conversation(tenant_id=tenant_id, wa_id=wa_id)
        session.add(conversation)
    if bsuid:
        conversation.bsuid = bsuid
    if customer_name:
        conversation.customer_name = customer_name
    last = conversation.last_customer_message_at
    if customer_wrote_at is not None and (last is None or _aware(last) < customer_wrote_at):
        # Meta does not deliver in order: keep the latest time seen, not the last one processed.
        conversation.last_customer_message_at = customer_wrote_at
    await session.flush()
    return conversation


async def find_conversation(session: AsyncSession, *, tenant_id: str, wa_id: str) -> Conversation | None:
    """The conversation of `wa_id` (phone or BSUID) within a tenant."""
    return await session.scalar(
        select(Conversation).where(Conversation.tenant_id == tenant_id, Conversation.wa_id == wa_id)
    )


async def get_message(session: AsyncSession, *, tenant_id: str, message_id: str) -> Message | None:
    """A tracked message by our id, only within its tenant."""
    return await session.scalar(select(Message).where(Message.tenant_id == tenant_id, Message.id == message_id))


async def latest_inbound_wamid(
    session: AsyncSession, *, tenant_id: str, conversation_id: str, genesys_message_id: str | None = None
) -> str | None:
    """The wamid of a customer message of a conversation: the one Genesys knows as `genesys_message_id`
    when given and known, else the latest one recorded (for read receipts and typing indicators)."""
    query = select(Message.wamid).where(
        Message.tenant_id == tenant_id,
        Message.conversation_id == conversation_id,
        Message.direction == "inbound",
        Message.wamid.is_not(None),
    )
    if genesys_message_id:
        named = await session.scalar(query.where(Message.genesys_message_id == genesys_message_id).limit(1))
        if named:
            return named
    return await session.scalar(query.order_by(Message.created_at.desc()).limit(1))


async def record_inbound(
    session: AsyncSession,
    *,
    conversation: Conversation,
    wamid: str,
    kind: str,
    text: str | None,
) -> InboundRecord:
    """Track a customer message once per `(tenant, wamid)`; a redelivery returns the existing row."""
    existing = await session.scalar(
        select(Message).where(
            Message.tenant_id == conversation.tenant_id, Message.direction == "inbound", Message.wamid == wamid
        )
    )
    if existing is not None:
        return InboundRecord(existing, conversation, created=False)
    message = Message(
        tenant_id=conversation.tenant_id,
        conversation_id=conversation.id,
        direction="inbound",
        wamid=wamid,
        kind=kind,
        status="received",
        text=text,
    )
    session.add(message)
    await session.flush()
    return InboundRecord(message, conversation, created=True)


async def record_outbound(
    session: AsyncSession,
    *,
    tenant_id: str,
    genesys_message_id: str,
    customer_id: str,
    kind: str,
    text: str | None,
) -> OutboundRecord:
    """Track an agent message once per `(tenant, genesys message id)`."""
    conversation = await find_conversation(session, tenant_id=tenant_id, wa_id=customer_id)
    existing = await session.scalar(
        select(Message).where(
            Message.tenant_id == tenant_id,
            Message.direction == "outbound",
            Message.genesys_message_id == genesys_message_id,
        )
    )
    if existing is not None:
        return OutboundRecord(existing, conversation, created=False)
    message = Message(
        tenant_id=tenant_id,
        conversation_id=conversation.id if conversation else None,
        direction="outbound",
        genesys_message_id=genesys_message_id,
        kind=kind,
        status="received",
        text=text,
    )
    session.add(message)
    await session.flush()
    return OutboundRecord(message, conversation, created=True)


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)
