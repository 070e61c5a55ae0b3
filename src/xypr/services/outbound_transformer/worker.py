"""outbound-transformer worker: one Genesys agent message, event or receipt → state, checks, Graph API sends."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pydantic import ValidationError

from xypr.core.errors import PermanentError
from xypr.core.logging import get_logger
from xypr.events import MediaUpload, OutboundGenesysEvent, WhatsAppRequest
from xypr.genesys.attachments import AttachmentPolicy, AttachmentRefused, fetch_attachment
from xypr.genesys.models import GenesysOutbound
from xypr.runtime import Runtime
from xypr.services.receipts import publish_failed_receipt
from xypr.services.whatsapp_api.worker import WhatsAppApi
from xypr.stage import Handoff, Stage
from xypr.state.details import KeptAttachment, MessageDetails, OfferedChoice, stored_details
from xypr.state.messages import mark_failed, merge_details
from xypr.state.service import (
    CUSTOMER_SERVICE_WINDOW,
    SETTLED,
    ConversationFacts,
    conversation_facts,
    find_conversation_of_genesys_customer,
    insert_agent_message,
    latest_inbound_wamid,
    record_outbound,
    window_open,
)
from xypr.tenants.service import TenantRuntime
from xypr.topology import OUTBOUND_GENESYS
from xypr.transform.outbound import (
    AttachmentSource,
    OutboundPlan,
    UnsupportedOutbound,
    is_template_message,
    mark_read,
    plan_outbound,
    typing_indicator,
)
from xypr.whatsapp.mediatypes import media_kind, mime_of
from xypr.whatsapp.models import customer_id_type

__all__ = ["CUSTOMER_SERVICE_WINDOW", "MARK_READ_SETTING", "OutboundTransformer", "window_open"]

log = get_logger(__name__)

MARK_READ_SETTING = "mark_read"
# Typing events and read receipts are remembered this long to pass each on once.
EVENT_DEDUPE_TTL_SECONDS = 24 * 3600.0
_WINDOW_CLOSED = (
    "The customer has not written in the last 24 hours: WhatsApp only allows an approved template message now."
)
_UNSAFE_NAME = re.compile(r"[^\w.\-]+")


def _object_name(source: AttachmentSource) -> str:
    name = _UNSAFE_NAME.sub("_", source.filename or "").strip("._")[:100]
    return name or f"attachment.{source.mime_type.rsplit('/', 1)[-1][:10]}"


class OutboundTransformer(Stage[OutboundGenesysEvent]):
    """Consumes `outbound.genesys`; sends to WhatsApp from here (`XYPR_DIRECT_SEND`) or through `send.whatsapp`,
    and a Failed receipt through `send.genesys`."""

    name = "outbound-transformer"
    queue = OUTBOUND_GENESYS
    event_type = OutboundGenesysEvent

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.to_whatsapp: Handoff[WhatsAppRequest] = Handoff(
            WhatsAppApi(runtime), runtime.broker, direct=runtime.settings.direct_send
        )

    async def handle(self, event: OutboundGenesysEvent) -> str:
        """Check, track and transform one agent message; problems end as a Failed receipt."""
        tenant = await self.runtime.tenants.by_id(event.tenant_id)
        if tenant is None:
            raise PermanentError(f"tenant {event.tenant_id} no longer exists")
        try:
            message = GenesysOutbound.model_validate(event.body)
        except ValidationError as exc:
            raise PermanentError(f"malformed Genesys message: {exc.errors()[0]['msg']}") from exc
        if message.type == "Event":
            return await self._typing(tenant, message, event)
        if message.type == "Receipt":
            return await self._read_receipt(tenant, message, event)
        return await self._message(tenant, message, event)

    async def _message(self, tenant: TenantRuntime, message: GenesysOutbound, event: OutboundGenesysEvent) -> str:
        # `to.id` is the id Genesys knows the customer by; the send goes to their WhatsApp id now, which
        # differs once they changed number or BSUID.
        customer = message.channel.to.id
        id_type = message.channel.to.id_type or customer_id_type(customer)
        conversation = await conversation_facts(
            self.runtime.database, tenant_id=tenant.id, genesys_customer_id=customer
        )
        send_to = conversation.wa_id if conversation is not None else customer
        plan: OutboundPlan | None = None
        problem: tuple[str, str] | None = None
        try:
            plan = plan_outbound(message, to=send_to, id_type=customer_id_type(send_to))
        except UnsupportedOutbound as exc:
            problem = (exc.reason, str(exc))
        template = plan.is_template if plan is not None else is_template_message(message)
        kind = "template" if template else message.type.lower()
        if plan is not None and plan.attachment is not None:
            kind = plan.attachment.whatsapp_type
        if problem is None and not template and not window_open(conversation, datetime.now(UTC)):
            problem = ("MessageExpired", _WINDOW_CLOSED)
        # The inbound path maps a customer's button_reply / list_reply id back to its payload.
        details = None
        if problem is None and plan is not None and plan.quick_replies:
            offered = tuple(
                OfferedChoice(id=each.id, title=each.title, payload=each.payload) for each in plan.quick_replies
            )
            details = MessageDetails(quick_replies=offered)
        tracked = await self._track(tenant, message, kind, conversation, details)
        if tracked is None:
            return "duplicate"
        row_id, new = tracked
        if problem is not None or plan is None:
            reason, text = problem or ("GeneralError", "nothing to send")
            await self._fail(tenant, message, event, row_id, reason, text)
            return "failed"
        media: list[MediaUpload] = []
        if plan.attachment is not None:
            try:
                media.append(await self._keep_attachment(tenant, plan.attachment, row_id))
            except AttachmentRefused as exc:
                await self._fail(tenant, message, event, row_id, exc.reason, exc.message)
                return "failed"
        request = WhatsAppRequest(
            tenant_id=tenant.id,
            kind="message",
            bodies=plan.sends,
            message_id=row_id,
            genesys_message_id=message.id,
            customer_id=customer,
            customer_id_type=id_type,
            media=media,
            accepted_at=event.accepted_at,
            correlation_id=event.correlation_id,
            # Tracked a moment ago: nothing to read back. After an attachment's download (its details changed,
            # and the conversation's partition may have moved meanwhile) the sender reads the row.
            just_tracked=new and plan.attachment is None,
            tracked_details=stored_details(details) if new else None,
        )
        await self.to_whatsapp(request, customer=customer)
        return "processed"

    async def _track(
        self,
        tenant: TenantRuntime,
        message: GenesysOutbound,
        kind: str,
        conversation: ConversationFacts | None,
        details: MessageDetails | None,
    ) -> tuple[str, bool] | None:
        """Track the agent message once (one statement): its row id and whether it was created just now, or
        None when it was settled before."""
        row_id = await insert_agent_message(
            self.runtime.database,
            tenant_id=tenant.id,
            conversation_id=conversation.id if conversation else None,
            genesys_message_id=message.id,
            kind=kind,
            text=message.text,
            details=details,
        )
        if row_id is not None:
            return row_id, True
        # Tracked before: settled means done; otherwise go on with the same row.
        async with self.runtime.database.session() as session:
            record = await record_outbound(
                session,
                tenant_id=tenant.id,
                genesys_message_id=message.id,
                conversation_id=conversation.id if conversation else None,
                kind=kind,
                text=message.text,
                details=details,  # merged into the row unless it is settled
            )
            if record.message.status in SETTLED:
                return None
            return record.message.id, False

    async def _keep_attachment(self, tenant: TenantRuntime, source: AttachmentSource, row_id: str) -> MediaUpload:
        """Fetch the agent's file (public addresses only) and keep it in the object store."""
        settings = self.runtime.settings
        policy = AttachmentPolicy.from_settings(
            genesys_api_url=settings.genesys_api_url,
            host_allowlist=settings.attachment_host_allowlist,
            timeout_seconds=settings.http_timeout_seconds,
            accepts_type=whatsapp_takes,
        )
        fetched = await fetch_attachment(source.url, policy=policy, max_bytes=source.max_bytes)
        name = _object_name(source)
        key = f"tenant/{tenant.id}/outbound/{row_id}/{name}"
        await self.runtime.store.put(key, fetched.data, content_type=source.mime_type)
        kept = MessageDetails(media=(KeptAttachment(object_key=key, bytes=len(fetched.data)),))
        async with self.runtime.database.session() as session:
            await merge_details(session, tenant_id=tenant.id, message_id=row_id, update=kept)
        return MediaUpload(part=source.part, object_key=key, mime_type=source.mime_type, filename=name)

    async def _typing(self, tenant: TenantRuntime, message: GenesysOutbound, event: OutboundGenesysEvent) -> str:
        """Agent typing → WhatsApp typing indicator on the customer's latest message."""
        if not any(isinstance(item, dict) and item.get("eventType") == "Typing" for item in message.events):
            return "ignored"
        return await self._status_call(tenant, message, event, kind="typing", once_key=f"typing:{message.id}")

    async def _read_receipt(self, tenant: TenantRuntime, message: GenesysOutbound, event: OutboundGenesysEvent) -> str:
        """Genesys `Read` receipt → mark the customer's messages read (tenant setting `mark_read`, on by default)."""
        if (message.status or "").lower() != "read" or tenant.settings.get(MARK_READ_SETTING, True) is False:
            return "ignored"
        return await self._status_call(tenant, message, event, kind="mark_read", once_key=f"read:{message.id}")

    async def _status_call(
        self, tenant: TenantRuntime, message: GenesysOutbound, event: OutboundGenesysEvent, *, kind: str, once_key: str
    ) -> str:
        customer = message.channel.to.id
        dedupe = f"{tenant.id}:wa-event:{once_key}"
        if await self.runtime.cache.get(dedupe) is not None:
            return "duplicate"
        async with self.runtime.database.session() as session:
            conversation = await find_conversation_of_genesys_customer(
                session, tenant_id=tenant.id, genesys_customer_id=customer
            )
            wamid = (
                await latest_inbound_wamid(
                    session,
                    tenant_id=tenant.id,
                    conversation_id=conversation.id,
                    genesys_message_id=message.id if kind == "mark_read" else None,
                )
                if conversation is not None
                else None
            )
        if wamid is None:
            log.info("outbound.no_customer_message", kind=kind, tenant_id=tenant.id)
            return "ignored"
        body = typing_indicator(wamid) if kind == "typing" else mark_read(wamid)
        request = WhatsAppRequest(
            tenant_id=tenant.id,
            kind="typing" if kind == "typing" else "mark_read",
            bodies=[body],
            customer_id=customer,
            customer_id_type=message.channel.to.id_type or customer_id_type(customer),
            accepted_at=event.accepted_at,
            correlation_id=event.correlation_id,
        )
        await self.to_whatsapp(request, customer=customer)
        # Remembered only once queued: a crash in between repeats an indicator, which is harmless.
        await self.runtime.cache.set(dedupe, b"1", ttl=EVENT_DEDUPE_TTL_SECONDS)
        return "processed"

    async def on_exhausted(self, event: OutboundGenesysEvent, error: Exception) -> None:
        """Retries ran out (attachment host, database or broker down): the agent still learns it failed."""
        try:
            message = GenesysOutbound.model_validate(event.body)
        except ValidationError:
            return
        if message.type not in ("Text", "Structured"):
            return  # typing indicators and read receipts have no receipt of their own
        tenant = await self.runtime.tenants.by_id(event.tenant_id)
        if tenant is None:
            return
        text = f"the message could not be prepared for WhatsApp after retries: {error}"[:1000]
        async with self.runtime.database.session() as session:
            conversation = await find_conversation_of_genesys_customer(
                session, tenant_id=tenant.id, genesys_customer_id=message.channel.to.id
            )
            record = await record_outbound(
                session,
                tenant_id=tenant.id,
                genesys_message_id=message.id,
                conversation_id=conversation.id if conversation else None,
                kind=message.type.lower(),
                text=message.text,
            )
            if record.message.status in SETTLED:
                return
            row_id = record.message.id
        await self._fail(tenant, message, event, row_id, "ServerError", text)

    async def _fail(
        self,
        tenant: TenantRuntime,
        message: GenesysOutbound,
        event: OutboundGenesysEvent,
        row_id: str,
        reason: str,
        text: str,
    ) -> None:
        """The receipt first, then the row: a crash in between repeats the receipt (dropped downstream by its
        dedupe key) instead of settling the row with no receipt sent."""
        customer = message.channel.to.id
        await publish_failed_receipt(
            self.runtime.broker,
            tenant_id=tenant.id,
            genesys_message_id=message.id,
            customer_id=customer,
            customer_id_type=message.channel.to.id_type or customer_id_type(customer),
            reason=reason,
            message=text,
            correlation_id=event.correlation_id,
        )
        log.info("outbound.failed", reason=reason, tenant_id=tenant.id, genesys_message_id=message.id)
        await mark_failed(self.runtime.database, tenant_id=tenant.id, message_id=row_id, error=f"{reason}: {text}")


def whatsapp_takes(mime: str) -> bool:
    """Whether WhatsApp sends a file of this media type (aliases such as image/jpg included)."""
    return media_kind(mime_of(mime, None)) is not None
