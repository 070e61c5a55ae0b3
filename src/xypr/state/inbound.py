"""Tracking a customer message, once per wamid: its conversation and row, and what its transform needs of
what we stored before (the message it quotes, the name Genesys knows the customer by).

The inbound transformer calls these in the order it handles a message: `customer_of_bsuid` (who wrote),
`track_inbound` or `track_identity_change` (the row), then `note_learned` (what the transform found out)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from xypr.backends.db.engine import Database
from xypr.state.details import MessageDetails
from xypr.state.identity import follow_identity, keep_told_as
from xypr.state.messages import merge_details, rewrite_text
from xypr.state.models import Conversation, Message
from xypr.state.service import (
    SETTLED,
    TrackedCustomerMessage,
    find_conversation,
    record_inbound,
    track_customer_message,
    upsert_conversation,
)
from xypr.transform.inbound import QuickReply, ReferencedMessage
from xypr.whatsapp.models import WaSystem, WaSystemType, is_bsuid

__all__ = [
    "CustomerMessage",
    "IdentityNotice",
    "TrackedInbound",
    "customer_of_bsuid",
    "note_learned",
    "quick_replies_of",
    "track_identity_change",
    "track_inbound",
]


@dataclass(frozen=True, slots=True)
class CustomerMessage:
    """A customer message to track, as the transformer read it."""

    wamid: str
    kind: str
    text: str | None
    details: MessageDetails | None
    # The conversation's key (phone `wa_id`, else BSUID) and the BSUID Meta gave, if any.
    customer: str
    bsuid: str | None
    customer_name: str | None
    # When the customer wrote (None for a system notice: it opens no customer-service window).
    wrote_at: datetime | None
    # The wamid of the message this one quotes, reacts to, edits or revokes.
    referenced_wamid: str | None


@dataclass(frozen=True, slots=True)
class TrackedInbound:
    """A customer message tracked (or found tracked but not yet in Genesys), with what its transform needs."""

    conversation_id: str
    row_id: str
    customer_name: str | None
    # The id Genesys knows the customer by.
    told_as: str
    referenced: ReferencedMessage | None = None
    # Set when the row was created just now (not a redelivery): what the sender would otherwise read back.
    new: TrackedCustomerMessage | None = None


async def customer_of_bsuid(database: Database, *, tenant_id: str, bsuid: str | None) -> str | None:
    """The key of the conversation whose customer has this BSUID, when it is not the BSUID itself (a message
    without `from` may come from a customer known by phone, or whose BSUID changed since)."""
    if not bsuid:
        return None
    async with database.session() as session:
        if await find_conversation(session, tenant_id=tenant_id, wa_id=bsuid) is not None:
            return None
        key = await session.scalar(
            select(Conversation.wa_id)
            .where(Conversation.tenant_id == tenant_id, Conversation.bsuid == bsuid)
            .order_by(Conversation.updated_at.desc())
            .limit(1)
        )
    return str(key) if key else None


async def track_inbound(database: Database, *, tenant_id: str, message: CustomerMessage) -> TrackedInbound | None:
    """Track the message once; None when it already reached Genesys.

    The common case (a new message) is one statement on PostgreSQL, a transaction on SQLite. A redelivery
    (the wamid is tracked already) and a system notice take the general path, which keeps a half-processed
    row's conversation: it may have moved number since."""
    tracked = None
    if message.kind != "system":  # a system notice takes the general path
        tracked = await track_customer_message(
            database,
            tenant_id=tenant_id,
            wa_id=message.customer,
            bsuid=message.bsuid,
            customer_name=message.customer_name,
            customer_wrote_at=message.wrote_at,
            wamid=message.wamid,
            kind=message.kind[:32],
            text=message.text,
            details=message.details,
        )
    if tracked is not None:  # new: the quoted message (if any) is a read of its own
        referenced = None
        if message.referenced_wamid:
            async with database.session() as session:
                referenced = await _referenced(session, tenant_id, message.referenced_wamid)
        return TrackedInbound(
            tracked.conversation_id,
            tracked.message_id,
            tracked.customer_name,
            tracked.genesys_customer_id,
            referenced,
            new=tracked,
        )
    async with database.session() as session:
        existing = await _inbound_row(session, tenant_id, message.wamid)
        if existing is not None and existing.status in SETTLED:
            return None
        conversation: Conversation | None = None
        row = existing
        if existing is not None and existing.conversation_id:
            # A redelivery of a message half-processed before: keep its conversation (it may have moved number).
            conversation = await session.get(Conversation, existing.conversation_id)
        if conversation is None or row is None:
            conversation = await upsert_conversation(
                session,
                tenant_id=tenant_id,
                wa_id=message.customer,
                bsuid=message.bsuid,
                customer_name=message.customer_name,
                customer_wrote_at=message.wrote_at,
            )
            recorded = await record_inbound(
                session,
                conversation=conversation,
                wamid=message.wamid,
                kind=message.kind[:32],
                text=message.text,
                details=message.details,
            )
            row = recorded.message
        referenced = await _referenced(session, tenant_id, message.referenced_wamid)
        return TrackedInbound(
            conversation.id, row.id, conversation.customer_name, conversation.genesys_customer_id, referenced
        )


@dataclass(frozen=True, slots=True)
class IdentityNotice:
    """WhatsApp's notice that a customer changed phone number or BSUID."""

    wamid: str
    text: str | None
    system: WaSystem
    # The ids the customer had (sender, previous BSUID…) and the ones they have now.
    before: tuple[str, ...]
    after: tuple[str, ...]


async def track_identity_change(database: Database, *, tenant_id: str, notice: IdentityNotice) -> TrackedInbound | None:
    """Track the notice once, in the customer's existing conversation, and move that conversation to the new
    ids; None when it already reached Genesys. `told_as` is the id Genesys knows the customer by (it threads
    on it), kept on the notice's row so that a redelivery, after the move, tells the same."""
    before, after = notice.before, notice.after
    async with database.session() as session:
        row = await _inbound_row(session, tenant_id, notice.wamid)
        if row is not None and row.status in SETTLED:
            return None
        conversation = None
        if row is not None and row.conversation_id:
            # A redelivery: the conversation it was tracked in has moved to the new ids already.
            conversation = await session.get(Conversation, row.conversation_id)
        conversation = (
            conversation
            or await _conversation_of(session, tenant_id, before)
            or await _conversation_of(session, tenant_id, after)  # the move happened, the notice came again
            or await upsert_conversation(  # never seen: their conversation starts under the new id
                session, tenant_id=tenant_id, wa_id=(after or before)[0], bsuid=notice.system.user_id
            )
        )
        if row is None:
            recorded = await record_inbound(
                session, conversation=conversation, wamid=notice.wamid, kind="system", text=notice.text
            )
            row = recorded.message
        told_as = keep_told_as(row, conversation)
        await follow_identity(
            session,
            conversation,
            new_key=_new_key(conversation, notice),
            new_bsuid=notice.system.user_id,
            change=notice.system.type,
        )
        return TrackedInbound(conversation.id, row.id, conversation.customer_name, told_as)


async def note_learned(
    database: Database,
    *,
    tenant_id: str,
    row_id: str,
    learned: MessageDetails,
    edited: tuple[str, str | None] | None = None,
) -> None:
    """Keep what the transform found out about a tracked message (its media copied, sent as structured);
    `edited`: (the wamid an edit changes, its new text), so later quotes of it show what it says now."""
    async with database.session() as session:
        await merge_details(session, tenant_id=tenant_id, message_id=row_id, update=learned)
        if edited is not None:
            wamid, text = edited
            await rewrite_text(session, tenant_id=tenant_id, wamid=wamid, text=text)


def quick_replies_of(details: MessageDetails | None) -> tuple[QuickReply, ...]:
    """The choices an outbound message offered (`details.quick_replies`)."""
    choices: list[QuickReply] = []
    for entry in (details.quick_replies if details is not None else None) or ():
        title = entry.title or entry.payload or entry.id
        payload = entry.payload if entry.payload is not None else title
        kind: Literal["QuickReply", "Button"] = "Button" if entry.type == "Button" else "QuickReply"
        choices.append(QuickReply(id=entry.id, title=title, payload=payload, type=kind))
    return tuple(choices)


async def _inbound_row(session: AsyncSession, tenant_id: str, wamid: str) -> Message | None:
    return await session.scalar(
        select(Message).where(Message.tenant_id == tenant_id, Message.direction == "inbound", Message.wamid == wamid)
    )


async def _referenced(session: AsyncSession, tenant_id: str, wamid: str | None) -> ReferencedMessage | None:
    """The tracked message (either direction) a reply, reaction, edit or revoke points at."""
    if not wamid:
        return None
    row = await session.scalar(select(Message).where(Message.tenant_id == tenant_id, Message.wamid == wamid).limit(1))
    if row is None:
        return None
    return ReferencedMessage(
        text=row.text,
        genesys_message_id=row.genesys_message_id,
        quick_replies=quick_replies_of(row.details) if row.direction == "outbound" else (),
    )


async def _conversation_of(session: AsyncSession, tenant_id: str, ids: tuple[str, ...]) -> Conversation | None:
    """The conversation one of `ids` names: as its key first, else as its BSUID."""
    for each in ids:
        found = await find_conversation(session, tenant_id=tenant_id, wa_id=each)
        if found is not None:
            return found
    if not ids:
        return None
    return await session.scalar(
        select(Conversation)
        .where(Conversation.tenant_id == tenant_id, Conversation.bsuid.in_(ids))
        .order_by(Conversation.updated_at.desc())
        .limit(1)
    )


def _new_key(conversation: Conversation, notice: IdentityNotice) -> str | None:
    """The key the conversation moves to: the new phone number (`user_changed_number`), or the new BSUID
    (`user_changed_user_id`; the key itself only for a customer known by BSUID alone: a conversation keyed
    by a BSUID, or by the one this notice says the customer had)."""
    system = notice.system
    if system.type is WaSystemType.USER_CHANGED_NUMBER:
        return system.wa_id or system.user_id
    keyed_by_bsuid = is_bsuid(conversation.wa_id) or conversation.wa_id == system.previous_user_id
    if system.user_id and keyed_by_bsuid:
        return system.user_id
    return None
