"""inbound-transformer worker: one Meta webhook item → state + an Open Messaging request."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from pydantic import ValidationError

from xypr.backends.broker.base import OutgoingMessage
from xypr.core.errors import PermanentError
from xypr.core.logging import get_logger
from xypr.events import GenesysRequest, InboundWhatsAppEvent, ordering_key
from xypr.runtime import Runtime
from xypr.stage import Stage
from xypr.state.service import SETTLED, record_inbound, upsert_conversation
from xypr.tenants.service import TenantRuntime
from xypr.topology import INBOUND_WHATSAPP, SEND_GENESYS
from xypr.transform.inbound import to_genesys_message
from xypr.whatsapp.models import WaContact, WaInboundMessage

__all__ = ["InboundTransformer"]

log = get_logger(__name__)


class InboundTransformer(Stage[InboundWhatsAppEvent]):
    """Consumes `inbound.whatsapp`, publishes to `send.genesys`."""

    name = "inbound-transformer"
    queue = INBOUND_WHATSAPP
    event_type = InboundWhatsAppEvent

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def handle(self, event: InboundWhatsAppEvent) -> str:
        """Transform and track one item; a redelivered wamid that already reached Genesys is dropped."""
        tenant = await self.runtime.tenants.by_id(event.tenant_id)
        if tenant is None:
            raise PermanentError(f"tenant {event.tenant_id} no longer exists")
        if event.kind == "message":
            return await self._message(tenant, event)
        # Statuses become receipts and value-level errors are reported in the inbound-complete issue.
        log.info("inbound.ignored", kind=event.kind, tenant_id=tenant.id, item_id=event.item.get("id"))
        return "ignored"

    async def _message(self, tenant: TenantRuntime, event: InboundWhatsAppEvent) -> str:
        try:
            message = WaInboundMessage.model_validate(event.item)
            contact = WaContact.model_validate(event.contact) if event.contact else None
        except ValidationError as exc:
            raise PermanentError(f"malformed WhatsApp message: {exc.errors()[0]['msg']}") from exc
        customer = message.customer_key
        if customer is None:
            raise PermanentError("WhatsApp message without `from` or `from_user_id`")
        body = to_genesys_message(message, contact)
        name = contact.profile.name if contact and contact.profile else None
        async with self.runtime.database.session() as session:
            conversation = await upsert_conversation(
                session,
                tenant_id=tenant.id,
                wa_id=customer,
                bsuid=message.from_user_id,
                customer_name=name,
                customer_wrote_at=datetime.fromtimestamp(float(message.timestamp), tz=UTC),
            )
            record = await record_inbound(
                session, conversation=conversation, wamid=message.id, kind=message.type, text=body.get("text")
            )
        if not record.created and record.message.status in SETTLED:
            return "duplicate"
        request = GenesysRequest(
            tenant_id=tenant.id,
            kind="message",
            body=body,
            message_id=record.message.id,
            conversation_id=record.conversation.id,
            accepted_at=event.accepted_at,
            correlation_id=event.correlation_id,
        )
        await self.runtime.broker.publish(
            SEND_GENESYS,
            [
                OutgoingMessage(
                    body=orjson.dumps(request.model_dump(mode="json")),
                    key=ordering_key(tenant.id, customer),
                    headers={"correlation_id": event.correlation_id},
                )
            ],
        )
        return "processed"
