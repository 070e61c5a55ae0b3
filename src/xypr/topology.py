"""The one place that declares the queue topology of the pipeline (ARCHITECTURE §1)."""

from __future__ import annotations

from typing import Final

__all__ = ["INBOUND_WHATSAPP", "OUTBOUND_GENESYS", "QUEUES", "SEND_GENESYS", "SEND_WHATSAPP"]

INBOUND_WHATSAPP: Final = "inbound.whatsapp"
"""Meta webhook events (one message or status each), keyed by tenant and customer."""
SEND_GENESYS: Final = "send.genesys"
"""Open Messaging requests ready for genesys-api (messages, receipts, events)."""
OUTBOUND_GENESYS: Final = "outbound.genesys"
"""Genesys outbound webhook events, keyed by tenant and customer."""
SEND_WHATSAPP: Final = "send.whatsapp"
"""Graph API requests ready for whatsapp-api."""

QUEUES: Final = (INBOUND_WHATSAPP, SEND_GENESYS, OUTBOUND_GENESYS, SEND_WHATSAPP)
