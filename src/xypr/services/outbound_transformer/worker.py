"""outbound-transformer worker: one Genesys agent message → state, the 24 h window, Graph API sends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
from pydantic import ValidationError

from xypr.backends.broker.base import OutgoingMessage
from xypr.core.errors import PermanentError
from xypr.core.logging import get_logger
from xypr.events import OutboundGenesysEvent, WhatsAppRequest, ordering_key
from xypr.genesys.models import GenesysOutbound
from xypr.runtime import Runtime
from xypr.services.receipts import publish_failed_receipt
from xypr.stage import Stage
from xypr.state.service import SETTLED, record_outbound
from xypr.topology import OUTBOUND_GENESYS, SEND_WHATSAPP
from xypr.transform.outbound import UnsupportedOutbound, to_whatsapp_sends

__all__ = ["CUSTOMER_SERVICE_WINDOW", "OutboundTransformer"]

log = get_logger(__name__)

CUSTOMER_SERVICE_WINDOW = timedelta(hours=24)


class OutboundTransformer(Stage[OutboundGenesysEvent]):
    """Consumes `outbound.genesys`, publishes to `send.whatsapp` (or a Failed receipt)."""

    name = "outbound-transformer"
    queue = OUTBOUND_GENESYS
    event_type = OutboundGenesysEvent

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def handle(self, event: OutboundGenesysEvent) -> str:
        """Check, track and transform one agent message; problems end as a Failed receipt."""
        tenant = await self.runtime.tenants.by_id(event.tenant_id)
        if tenant is None:
            raise PermanentError(f"tenant {event.tenant_id} no longer exists")
        try:
            message = GenesysOutbound.model_validate(event.body)
        except ValidationError as exc:
            raise PermanentError(f"malformed Genesys message: {exc.errors()[0]['msg']}") from exc
        if message.type in ("Event", "Receipt"):
            # Typing and read receipts toward WhatsApp come with the outbound-complete issue.
            log.info("outbound.ignored", type=message.type, tenant_id=tenant.id)
            return "ignored"
        customer = message.channel.to.id
        id_type = message.channel.to.id_type or ("Opaque" if "." in customer else "Phone")
        async with self.runtime.database.session() as session:
            record = await record_outbound(
                session,
                tenant_id=tenant.id,
                genesys_message_id=message.id,
                customer_id=customer,
                kind=message.type.lower(),
                text=message.text,
            )
            if not record.created and record.message.status in SETTLED:
                return "duplicate"
            problem: tuple[str, str] | None = None
            last = record.conversation.last_customer_message_at if record.conversation else None
            if last is not None and last.tzinfo is None:
                last = last.replace(tzinfo=UTC)
            if last is None or datetime.now(UTC) - last > CUSTOMER_SERVICE_WINDOW:
                problem = (
                    "MessageExpired",
                    "The customer has not written in the last 24 hours: WhatsApp only allows an "
                    "approved template message now.",
                )
            try:
                sends = to_whatsapp_sends(message, to=customer, id_type=id_type)
            except UnsupportedOutbound as exc:
                problem = problem or ("UnsupportedMessage", str(exc))
            if problem is not None:
                record.message.status = "failed"
                record.message.error = f"{problem[0]}: {problem[1]}"
        if problem is not None:
            await publish_failed_receipt(
                self.runtime.broker,
                tenant_id=tenant.id,
                genesys_message_id=message.id,
                customer_id=customer,
                customer_id_type=id_type,
                reason=problem[0],
                message=problem[1],
                correlation_id=event.correlation_id,
            )
            return "failed"
        request = WhatsAppRequest(
            tenant_id=tenant.id,
            kind="message",
            bodies=sends,
            message_id=record.message.id,
            genesys_message_id=message.id,
            customer_id=customer,
            customer_id_type=id_type,
            accepted_at=event.accepted_at,
            correlation_id=event.correlation_id,
        )
        await self.runtime.broker.publish(
            SEND_WHATSAPP,
            [
                OutgoingMessage(
                    body=orjson.dumps(request.model_dump(mode="json")),
                    key=ordering_key(tenant.id, customer),
                    headers={"correlation_id": event.correlation_id},
                )
            ],
        )
        return "processed"
