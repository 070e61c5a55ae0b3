"""Publishing a `Failed` receipt for an agent message: the one way a WhatsApp failure reaches Genesys."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from xypr.backends.broker.base import Broker
from xypr.events import GenesysRequest
from xypr.topology import SEND_GENESYS
from xypr.transform.receipts import failed_receipt

__all__ = ["publish_failed_receipt"]


async def publish_failed_receipt(
    broker: Broker,
    *,
    tenant_id: str,
    genesys_message_id: str,
    customer_id: str,
    customer_id_type: str,
    reason: str,
    message: str,
    correlation_id: str,
) -> None:
    """Queue a `Failed` receipt for genesys-api (sent once per Genesys message)."""
    now = datetime.now(UTC)
    body = failed_receipt(
        genesys_message_id=genesys_message_id,
        customer_id=customer_id,
        customer_id_type=customer_id_type,
        reason=reason,
        message=message,
        time=now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
    )
    request = GenesysRequest(
        tenant_id=tenant_id,
        kind="receipt",
        body=body,
        accepted_at=time.time(),
        correlation_id=correlation_id,
        dedupe_key=f"receipt:{genesys_message_id}:Failed",
    )
    await broker.publish(SEND_GENESYS, [request.to_outgoing(customer=customer_id)])
