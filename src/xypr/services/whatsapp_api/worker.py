"""whatsapp-api worker: Graph API sends, once each; permanent failures become Failed receipts."""

from __future__ import annotations

from xypr.core.errors import PermanentError, TransientError
from xypr.core.logging import get_logger
from xypr.events import WhatsAppRequest
from xypr.runtime import Runtime
from xypr.services.receipts import publish_failed_receipt
from xypr.stage import Stage
from xypr.state.service import SETTLED, get_message
from xypr.topology import SEND_WHATSAPP
from xypr.whatsapp.client import TokenExpired
from xypr.whatsapp.errors import receipt_reason

__all__ = ["WhatsAppApi"]

log = get_logger(__name__)

PART_TTL_SECONDS = 7 * 24 * 3600.0


class WhatsAppApi(Stage[WhatsAppRequest]):
    """Consumes `send.whatsapp`."""

    name = "whatsapp-api"
    queue = SEND_WHATSAPP
    event_type = WhatsAppRequest

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def handle(self, event: WhatsAppRequest) -> str:
        """Send every part of one agent message in order; parts already accepted are not sent again."""
        tenant = await self.runtime.tenants.by_id(event.tenant_id)
        if tenant is None:
            raise PermanentError(f"tenant {event.tenant_id} no longer exists")
        if event.message_id:
            async with self.runtime.database.session() as session:
                tracked = await get_message(session, tenant_id=tenant.id, message_id=event.message_id)
            if tracked is not None and tracked.status in SETTLED:
                return "duplicate"
        wamids: list[str] = []
        for index, body in enumerate(event.bodies):
            part_key = f"{tenant.id}:wa-part:{event.message_id or event.correlation_id}:{index}"
            done = await self.runtime.cache.get(part_key)
            if done is not None:
                wamids.append(done.decode())
                continue
            answer = await self.runtime.graph.send_message(tenant, body)
            wamid = str((answer.get("messages") or [{}])[0].get("id", ""))
            await self.runtime.cache.set(part_key, wamid.encode(), ttl=PART_TTL_SECONDS)
            wamids.append(wamid)
        if event.message_id:
            async with self.runtime.database.session() as session:
                tracked = await get_message(session, tenant_id=tenant.id, message_id=event.message_id)
                if tracked is not None:
                    tracked.status = "sent"
                    tracked.wamid = wamids[0] if wamids else None
        log.info("whatsapp.sent", tenant_id=tenant.id, genesys_message_id=event.genesys_message_id, wamids=wamids)
        return "processed"

    async def on_transient(self, event: WhatsAppRequest, error: TransientError) -> None:
        """On Meta 190 (token expired) read the tenant again: an operator may have rotated the token."""
        if isinstance(error, TokenExpired):
            self.runtime.tenants.invalidate()

    async def on_permanent(self, event: WhatsAppRequest, error: PermanentError) -> bool:
        """Tell the agent with a Failed receipt; nothing to dead-letter, the outcome is final."""
        await self._fail(event, error.reason, error.message)
        return False

    async def on_exhausted(self, event: WhatsAppRequest, error: Exception) -> None:
        """Retries ran out: the agent learns it now; the event also goes to the dead letters for replay."""
        code = error.upstream_code if isinstance(error, TransientError) else None
        reason = receipt_reason(code) if code is not None else "ServerError"
        await self._fail(event, reason, f"WhatsApp did not accept the message after retries: {error}")

    async def _fail(self, event: WhatsAppRequest, reason: str, message: str) -> None:
        if event.message_id:
            async with self.runtime.database.session() as session:
                tracked = await get_message(session, tenant_id=event.tenant_id, message_id=event.message_id)
                if tracked is not None:
                    tracked.status = "failed"
                    tracked.error = f"{reason}: {message}"[:2000]
        if event.genesys_message_id:
            await publish_failed_receipt(
                self.runtime.broker,
                tenant_id=event.tenant_id,
                genesys_message_id=event.genesys_message_id,
                customer_id=event.customer_id,
                customer_id_type=event.customer_id_type,
                reason=reason,
                message=message,
                correlation_id=event.correlation_id,
            )
