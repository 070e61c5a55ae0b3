"""Customer messages, in the order they are handled: read the item, track it once (`state.inbound`), copy its
media, turn it into Open Messaging (`transform.inbound`, pure), keep what that found out, hand it on."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from pydantic import ValidationError

from xypr.core.errors import PermanentError
from xypr.core.logging import get_logger
from xypr.core.metrics import WHATSAPP_UNKNOWN_FIELDS
from xypr.events import GenesysRequest, InboundWhatsAppEvent
from xypr.runtime import Runtime
from xypr.services.inbound_transformer.media import MediaCopier
from xypr.stage import Handoff
from xypr.state.details import MessageDetails
from xypr.state.inbound import (
    CustomerMessage,
    IdentityNotice,
    TrackedInbound,
    customer_of_bsuid,
    note_learned,
    track_identity_change,
    track_inbound,
)
from xypr.tenants.service import TenantRuntime
from xypr.transform.inbound import (
    GenesysInbound,
    InboundFacts,
    StoredMedia,
    message_facts,
    message_summary,
    referenced_wamid,
    to_genesys_inbound,
)
from xypr.whatsapp.media import MediaUnavailable
from xypr.whatsapp.models import WaContact, WaInboundMessage, customer_of

__all__ = ["handle_message", "parse_message"]

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
        return await _handle_identity_change(runtime, tenant, event, message, contact, send)

    tracked = await track_inbound(
        runtime.database, tenant_id=tenant.id, message=await _customer_message(runtime, tenant, message, contact)
    )
    if tracked is None:
        return "duplicate"
    stored, problem = await _copy_media(runtime, tenant, message)
    facts = InboundFacts(
        referenced=tracked.referenced,
        media=stored,
        media_problem=problem,
        customer_name=tracked.customer_name,
        customer_id=tracked.told_as,
    )
    inbound = to_genesys_inbound(message, contact, facts)
    await _note_learned(runtime, tenant, message, inbound, tracked, media_copied=stored is not None)
    # Tracked a moment ago, the row needs no read-back before the send; after a media copy (up to 100 MB) it
    # does: meanwhile the conversation's partition may have moved to another process, which sent it.
    return await _send(send, tenant, event, inbound, tracked, just_tracked=message.media is None)


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


def _is_unix_time(value: Any) -> bool:
    try:
        return float(value) >= 0
    except (TypeError, ValueError):
        return False


def _contact(event: InboundWhatsAppEvent) -> WaContact | None:
    if not event.contact:
        return None
    try:
        return WaContact.model_validate(event.contact)
    except ValidationError:
        return None  # a name is nice to have, never a reason to lose the message


def _count_unknown_fields(tenant: TenantRuntime, message: WaInboundMessage) -> None:
    unknown = sorted(set(message.model_extra or {}) - _KNOWN_KEYS - {message.type})
    if unknown:
        WHATSAPP_UNKNOWN_FIELDS.labels("message").inc()
        log.info("inbound.unknown_fields", tenant_id=tenant.id, wamid=message.id, fields=unknown[:20])


async def _handle_identity_change(
    runtime: Runtime,
    tenant: TenantRuntime,
    event: InboundWhatsAppEvent,
    message: WaInboundMessage,
    contact: WaContact | None,
    send: Handoff[GenesysRequest],
) -> str:
    """A phone number or BSUID change: tracked once in the customer's conversation, which moves to the new
    ids; Genesys is told under the id it knows the customer by."""
    assert message.system is not None
    if not message.previous_ids and not message.new_ids:
        raise PermanentError(
            f"WhatsApp {message.system.type} notice names no customer (no from, previous_user_id, wa_id, user_id)"
        )
    notice = IdentityNotice(
        wamid=message.id,
        text=message_summary(message),
        system=message.system,
        before=message.previous_ids,
        after=message.new_ids,
    )
    tracked = await track_identity_change(runtime.database, tenant_id=tenant.id, notice=notice)
    if tracked is None:
        return "duplicate"
    facts = InboundFacts(customer_name=tracked.customer_name, customer_id=tracked.told_as)
    return await _send(send, tenant, event, to_genesys_inbound(message, contact, facts), tracked)


async def _customer_message(
    runtime: Runtime, tenant: TenantRuntime, message: WaInboundMessage, contact: WaContact | None
) -> CustomerMessage:
    """What to track of a message: its facts, and the conversation it belongs to."""
    customer = message.customer_key
    if customer is None:
        raise PermanentError("WhatsApp message without `from` or `from_user_id`")
    if message.from_ is None:
        # Without `from`, the BSUID may belong to a customer known by phone (or whose BSUID changed since).
        customer = (
            await customer_of_bsuid(runtime.database, tenant_id=tenant.id, bsuid=message.from_user_id) or customer
        )
    return CustomerMessage(
        wamid=message.id,
        kind=message.type,
        text=message_summary(message),
        details=MessageDetails.load(message_facts(message)),
        customer=customer,
        bsuid=message.from_user_id,
        customer_name=contact.profile.name if contact and contact.profile else None,
        # A system notice is WhatsApp speaking, not the customer: it opens no customer-service window.
        wrote_at=None if message.type == "system" else datetime.fromtimestamp(float(message.timestamp), tz=UTC),
        referenced_wamid=referenced_wamid(message),
    )


async def _copy_media(
    runtime: Runtime, tenant: TenantRuntime, message: WaInboundMessage
) -> tuple[StoredMedia | None, str | None]:
    """The stored media, or why WhatsApp could not give it (the message goes on with a note); none without."""
    media = message.media
    if media is None:
        return None, None
    try:
        stored = await MediaCopier.from_runtime(runtime).copy(tenant, wamid=message.id, kind=message.type, media=media)
    except MediaUnavailable as exc:
        return None, exc.agent_note
    return stored, None


async def _note_learned(
    runtime: Runtime,
    tenant: TenantRuntime,
    message: WaInboundMessage,
    inbound: GenesysInbound,
    tracked: TrackedInbound,
    *,
    media_copied: bool,
) -> None:
    """Keep on the row what handling it found out: its media copied or not, sent as structured; an edit
    rewrites the text of the message it edits. Nothing to write for a plain text."""
    media_id = message.media.id if message.media is not None else None
    if media_id is None and inbound.kind != "structured" and message.type != "edit":
        return
    learned = MessageDetails(
        media_id=media_id,
        media_copied=media_copied if media_id is not None else None,
        structured=True if inbound.kind == "structured" else None,
    )
    edited = None
    if message.type == "edit" and message.edit and message.edit.original_message_id:
        edited = (message.edit.original_message_id, message_summary(message))
    await note_learned(runtime.database, tenant_id=tenant.id, row_id=tracked.row_id, learned=learned, edited=edited)


async def _send(
    send: Handoff[GenesysRequest],
    tenant: TenantRuntime,
    event: InboundWhatsAppEvent,
    inbound: GenesysInbound,
    tracked: TrackedInbound,
    *,
    just_tracked: bool = False,
) -> str:
    """Hand on the Open Messaging request of one tracked customer message (`just_tracked`: its row was
    created a moment ago, so the sender need not read it back)."""
    new = tracked.new if just_tracked else None
    request = GenesysRequest(
        tenant_id=tenant.id,
        kind=inbound.kind,
        body=inbound.body,
        message_id=tracked.row_id,
        conversation_id=tracked.conversation_id,
        accepted_at=event.accepted_at,
        correlation_id=event.correlation_id,
        just_tracked=new is not None,
        genesys_conversation_id=new.genesys_conversation_id if new is not None else None,
    )
    # The key the webhook used, so a queued request keeps the conversation's order downstream.
    await send(request, customer=customer_of(event.item) or "_unknown")
    return "processed"
