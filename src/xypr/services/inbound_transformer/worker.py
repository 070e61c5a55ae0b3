"""inbound-transformer worker: one Meta webhook item → state + an Open Messaging request."""

from __future__ import annotations

from xypr.core.errors import PermanentError
from xypr.core.logging import get_logger
from xypr.events import GenesysRequest, InboundWhatsAppEvent
from xypr.runtime import Runtime
from xypr.services.genesys_api.worker import GenesysApi
from xypr.services.inbound_transformer.messages import handle_message
from xypr.services.inbound_transformer.statuses import handle_status
from xypr.services.inbound_transformer.value_errors import report_value_error
from xypr.stage import Handoff, Stage
from xypr.topology import INBOUND_WHATSAPP

__all__ = ["InboundTransformer"]

log = get_logger(__name__)


class InboundTransformer(Stage[InboundWhatsAppEvent]):
    """Consumes `inbound.whatsapp`; customer messages go to Genesys from here (`XYPR_DIRECT_SEND`) or through
    `send.genesys`, receipts always through `send.genesys`."""

    name = "inbound-transformer"
    queue = INBOUND_WHATSAPP
    event_type = InboundWhatsAppEvent

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.to_genesys: Handoff[GenesysRequest] = Handoff(
            GenesysApi(runtime), runtime.broker, direct=runtime.settings.direct_send
        )

    async def handle(self, event: InboundWhatsAppEvent) -> str:
        """Transform and track one item; a redelivered wamid that already reached Genesys is dropped."""
        tenant = await self.runtime.tenants.by_id(event.tenant_id)
        if tenant is None:
            raise PermanentError(f"tenant {event.tenant_id} no longer exists")
        if event.kind == "message":
            return await handle_message(self.runtime, tenant, event, self.to_genesys)
        if event.kind == "status":
            return await handle_status(self.runtime, tenant, event)
        return report_value_error(tenant, event)
