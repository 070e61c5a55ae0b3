"""Customer messages: track once, look up what the transform needs (quotes, quick replies, media), publish."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from xypr.core.errors import PermanentError
from xypr.core.logging import get_logger
from xypr.core.metrics import WHATSAPP_UNKNOWN_FIELDS
from xypr.events import GenesysRequest, InboundWhatsAppEvent
from xypr.runtime import Runtime
from xypr.services.inbound_transformer.media import MediaCopier
from xypr.stage import Handoff
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
from xypr.tenants.service import TenantRuntime
from xypr.transform.inbound import (
    GenesysInbound,
    InboundFacts,
    QuickReply,
    ReferencedMessage,
    StoredMedia,
    message_facts,
    message_summary,
    referenced_wamid,
    to_genesys_inbound,
)
from xypr.whatsapp.media import MediaUnavailable
from xypr.whatsapp.models import WaContact, WaInboundMessage, WaSystem, customer_of, is_bsuid

__all__ = ["handle_message", "parse_message", "quick_replies_of"]

log = get_logger(__name__)

# Keys of a message item this version understands; anything else is counted as an unknown field.
_KNOWN_KEYS: Final = frozenset(WaInboundMessage.model_fields) | {"from", "identity", "request_welcome"}


async def handle_message(
    runtime: Runtime, tenant: TenantRuntime, event: InboundWhatsAppEvent, send: Handoff[GenesysRequest]
) -> str:
    """Track a customer message once per wamid, enrich it, and hand its Open Messaging request to `send`."""
    message = parse_message(event)
    contact = _contact(event)
    _count_unknown_fields(tenant, message)
    if message.system is not None and message.system.is_identity_change:
        changed = await _track_identity_change(runtime, tenant, message)
        if changed is None:
            return "duplicate"
        customer_name, conversation_id, row_id, told_as = changed
        facts = InboundFacts(customer_name=customer_name, customer_id=told_as)
        return await _send(send, tenant, event, to_genesys_inbound(message, contact, facts), row_id, conversation_id)

    customer = message.customer_key
    if customer is None:
        raise PermanentError("WhatsApp message without `from` or `from_user_id`")
    # Without `from`, the BSUID may belong to a customer known by phone (or whose BSUID changed since).
    known_as = await _known_by_bsuid(runtime, tenant, message.from_user_id) if message.from_ is None else None
    customer = known_as or customer

    known = await _track(runtime, tenant, message, contact, customer)
    if known is None:
        return "duplicate"
    referenced, customer_name, told_as, row_id = known.referenced, known.customer_name, known.told_as, known.row_id

    facts = InboundFacts(referenced=referenced, customer_name=customer_name, customer_id=told_as)
    media_id: str | None = None
    if message.media is not None:
        media_id = message.media.id
        stored, problem = await _copy_media(runtime, tenant, message)
        facts = InboundFacts(
            referenced=referenced,
            media=stored,
            media_problem=problem,
            customer_name=customer_name,
            customer_id=told_as,
        )
    inbound = to_genesys_inbound(message, contact, facts)

    if media_id is not None or inbound.kind == "structured" or message.type == "edit":
        learned = MessageDetails(
            media_id=media_id,
            media_copied=(facts.media is not None) if media_id is not None else None,
            structured=True if inbound.kind == "structured" else None,
        )
        async with runtime.database.session() as session:
            await merge_details(session, tenant_id=tenant.id, message_id=row_id, update=learned)
            if message.type == "edit" and message.edit and message.edit.original_message_id:
                # Later quotes of the edited message show what it says now.
                await rewrite_text(
                    session, tenant_id=tenant.id, wamid=message.edit.original_message_id, text=message_summary(message)
                )

    # Tracked a moment ago, the row needs no read-back before the send; after a media copy (up to 100 MB) it
    # does: meanwhile the conversation's partition may have moved to another process, which sent it.
    new = known.new if media_id is None else None
    return await _send(send, tenant, event, inbound, row_id, known.conversation_id, new=new)


async def _send(
    send: Handoff[GenesysRequest],
    tenant: TenantRuntime,
    event: InboundWhatsAppEvent,
    inbound: GenesysInbound,
    row_id: str,
    conversation_id: str,
    *,
    new: TrackedCustomerMessage | None = None,
) -> str:
    """Hand on the Open Messaging request of one tracked customer message (`new`: tracked just now)."""
    request = GenesysRequest(
        tenant_id=tenant.id,
        kind=inbound.kind,
        body=inbound.body,
        message_id=row_id,
        conversation_id=conversation_id,
        accepted_at=event.accepted_at,
        correlation_id=event.correlation_id,
        just_tracked=new is not None,
        genesys_conversation_id=new.genesys_conversation_id if new is not None else None,
    )
    # The key the webhook used, so a queued request keeps the conversation's order downstream.
    await send(request, customer=customer_of(event.item) or "_unknown")
    return "processed"


@dataclass(frozen=True, slots=True)
class _Tracked:
    """A customer message tracked (or found tracked but not yet in Genesys), with what its transform needs."""

    customer_name: str | None
    conversation_id: str
    row_id: str
    referenced: ReferencedMessage | None
    # The id Genesys knows the customer by.
    told_as: str
    # Set when the row was created just now (not a redelivery): what the sender would otherwise read back.
    new: TrackedCustomerMessage | None = None


async def _track(
    runtime: Runtime, tenant: TenantRuntime, message: WaInboundMessage, contact: WaContact | None, customer: str
) -> _Tracked | None:
    """Track the message once; None when it already reached Genesys."""
    wrote_at = _wrote_at(message)
    name = contact.profile.name if contact and contact.profile else None
    summary = message_summary(message)
    facts = MessageDetails.load(message_facts(message))
    wamid_referenced = referenced_wamid(message)
    tracked = None
    if message.type != "system":
        # The common case in one transaction of two statements; a redelivery falls through to the general path.
        tracked = await track_customer_message(
            runtime.database,
            tenant_id=tenant.id,
            wa_id=customer,
            bsuid=message.from_user_id,
            customer_name=name,
            customer_wrote_at=wrote_at,
            wamid=message.id,
            kind=message.type[:32],
            text=summary,
            details=facts,
        )
    referenced: ReferencedMessage | None = None
    if tracked is not None:  # new: the quoted message (if any) is a read of its own
        if wamid_referenced:
            async with runtime.database.session() as session:
                referenced = await _referenced(session, tenant.id, wamid_referenced)
        return _Tracked(
            tracked.customer_name,
            tracked.conversation_id,
            tracked.message_id,
            referenced,
            tracked.genesys_customer_id,
            new=tracked,
        )
    async with runtime.database.session() as session:
        existing = await _inbound_row(session, tenant.id, message.id)
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
                tenant_id=tenant.id,
                wa_id=customer,
                bsuid=message.from_user_id,
                customer_name=name,
                customer_wrote_at=wrote_at,
            )
            row = (
                await record_inbound(
                    session,
                    conversation=conversation,
                    wamid=message.id,
                    kind=message.type[:32],
                    text=summary,
                    details=facts,
                )
            ).message
        referenced = await _referenced(session, tenant.id, wamid_referenced)
        return _Tracked(
            conversation.customer_name, conversation.id, row.id, referenced, conversation.genesys_customer_id
        )


async def _track_identity_change(
    runtime: Runtime, tenant: TenantRuntime, message: WaInboundMessage
) -> tuple[str | None, str, str, str] | None:
    """Track a phone number or BSUID change once, in the customer's existing conversation, and move that
    conversation to the new ids: (customer name, conversation id, message row id, the id Genesys knows
    the customer by), or None when it already reached Genesys."""
    before, after = message.previous_ids, message.new_ids
    if not before and not after:
        kind = message.system.type if message.system else "system"
        raise PermanentError(f"WhatsApp {kind} notice names no customer (no from, previous_user_id, wa_id, user_id)")
    async with runtime.database.session() as session:
        row = await _inbound_row(session, tenant.id, message.id)
        if row is not None and row.status in SETTLED:
            return None
        conversation = None
        if row is not None and row.conversation_id:
            # A redelivery: the conversation it was tracked in has moved to the new ids already.
            conversation = await session.get(Conversation, row.conversation_id)
        conversation = (
            conversation
            or await _conversation_of(session, tenant.id, before)
            or await _conversation_of(session, tenant.id, after)  # the move happened, the notice came again
            or await upsert_conversation(  # never seen: their conversation starts under the new id
                session, tenant_id=tenant.id, wa_id=(after or before)[0], bsuid=_new_bsuid(message)
            )
        )
        if row is None:
            row = (
                await record_inbound(
                    session, conversation=conversation, wamid=message.id, kind="system", text=message_summary(message)
                )
            ).message
        # Told to Genesys under the id it knows the customer by (it threads on it).
        told_as = keep_told_as(row, conversation)
        if message.system is not None:
            await follow_identity(
                session,
                conversation,
                new_key=_new_key(conversation, message.system, message),
                new_bsuid=message.system.user_id,
                change=message.system.type,
            )
        return conversation.customer_name, conversation.id, row.id, told_as


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


async def _known_by_bsuid(runtime: Runtime, tenant: TenantRuntime, bsuid: str | None) -> str | None:
    """The key of the conversation whose customer has this BSUID, when it is not the BSUID itself."""
    if not bsuid:
        return None
    async with runtime.database.session() as session:
        if await find_conversation(session, tenant_id=tenant.id, wa_id=bsuid) is not None:
            return None
        key = await session.scalar(
            select(Conversation.wa_id)
            .where(Conversation.tenant_id == tenant.id, Conversation.bsuid == bsuid)
            .order_by(Conversation.updated_at.desc())
            .limit(1)
        )
    return str(key) if key else None


def _new_bsuid(message: WaInboundMessage) -> str | None:
    return message.system.user_id if message.system else None


def parse_message(event: InboundWhatsAppEvent) -> WaInboundMessage:
    """The typed message; a part Meta shaped unexpectedly is dropped rather than the message."""
    item = dict(event.item)
    if not _is_unix_time(item.get("timestamp")):
        item["timestamp"] = str(int(event.accepted_at))
    try:
        return WaInboundMessage.model_validate(item)
    except ValidationError as exc:
        log.warning(
            "inbound.message_malformed",
            tenant_id=event.tenant_id,
            item_id=item.get("id"),
            type=item.get("type"),
            error=str(exc.errors()[0]["msg"])[:300],
        )
    # Keep who sent what and when: the agent still learns that a message of that type arrived.
    minimal = {key: item[key] for key in ("id", "from", "from_user_id", "timestamp", "type") if key in item}
    minimal.setdefault("type", "unknown")
    try:
        return WaInboundMessage.model_validate(minimal)
    except ValidationError as exc:
        raise PermanentError(f"malformed WhatsApp message: {exc.errors()[0]['msg']}") from exc


def quick_replies_of(details: MessageDetails | None) -> tuple[QuickReply, ...]:
    """The choices an outbound message offered (`details.quick_replies`)."""
    choices: list[QuickReply] = []
    for entry in (details.quick_replies if details is not None else None) or ():
        title = entry.title or entry.payload or entry.id
        payload = entry.payload if entry.payload is not None else title
        kind: Literal["QuickReply", "Button"] = "Button" if entry.type == "Button" else "QuickReply"
        choices.append(QuickReply(id=entry.id, title=title, payload=payload, type=kind))
    return tuple(choices)


def _contact(event: InboundWhatsAppEvent) -> WaContact | None:
    if not event.contact:
        return None
    try:
        return WaContact.model_validate(event.contact)
    except ValidationError:
        return None  # a name is nice to have, never a reason to lose the message


def _is_unix_time(value: Any) -> bool:
    try:
        return float(value) >= 0
    except (TypeError, ValueError):
        return False


def _wrote_at(message: WaInboundMessage) -> datetime | None:
    # A system notice is WhatsApp speaking, not the customer: it opens no customer-service window.
    if message.type == "system":
        return None
    return datetime.fromtimestamp(float(message.timestamp), tz=UTC)


def _count_unknown_fields(tenant: TenantRuntime, message: WaInboundMessage) -> None:
    unknown = sorted(set(message.model_extra or {}) - _KNOWN_KEYS - {message.type})
    if unknown:
        WHATSAPP_UNKNOWN_FIELDS.labels("message").inc()
        log.info("inbound.unknown_fields", tenant_id=tenant.id, wamid=message.id, fields=unknown[:20])


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


def _new_key(conversation: Conversation, system: WaSystem, message: WaInboundMessage) -> str | None:
    """The key the conversation moves to: the new phone number (`user_changed_number`), or the new BSUID
    (`user_changed_user_id`; the key itself only for a customer known by BSUID alone)."""
    if system.type == "user_changed_number":
        return system.wa_id or system.user_id
    if system.user_id and _is_bsuid_key(conversation, message):
        return system.user_id
    return None


def _is_bsuid_key(conversation: Conversation, message: WaInboundMessage) -> bool:
    """Whether the conversation is keyed by the customer's (old) BSUID rather than a phone number."""
    previous = message.system.previous_user_id if message.system else None
    return is_bsuid(conversation.wa_id) or conversation.wa_id == previous


async def _copy_media(
    runtime: Runtime, tenant: TenantRuntime, message: WaInboundMessage
) -> tuple[StoredMedia | None, str | None]:
    """The stored media, or why WhatsApp could not give it (the message goes on with a note)."""
    media = message.media
    if media is None:
        return None, None
    try:
        stored = await MediaCopier.from_runtime(runtime).copy(tenant, wamid=message.id, kind=message.type, media=media)
    except MediaUnavailable as exc:
        return None, exc.agent_note
    return stored, None
