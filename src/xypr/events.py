"""Pipeline events: the Pydantic bodies that travel through the broker between services."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from xypr.backends.broker.base import OutgoingMessage

__all__ = [
    "GenesysRequest",
    "InboundWhatsAppEvent",
    "MediaUpload",
    "OutboundGenesysEvent",
    "QueuedEvent",
    "WhatsAppRequest",
    "ordering_key",
]


class QueuedEvent(BaseModel):
    """What every pipeline event carries; `to_outgoing` is how it goes on a queue."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str
    accepted_at: float = Field(description="Unix time the webhook accepted the event (latency metrics)")
    correlation_id: str

    def to_outgoing(self, *, customer: str) -> OutgoingMessage:
        """The one way an event goes on the queue: keyed by its tenant's customer (the conversation's order),
        carrying its correlation id as a header."""
        return OutgoingMessage(
            body=orjson.dumps(self.model_dump(mode="json")),
            key=ordering_key(self.tenant_id, customer),
            headers={"correlation_id": self.correlation_id},
        )


def ordering_key(tenant_id: str, customer: str) -> str:
    """The broker key of a conversation: one tenant's one customer."""
    return f"{tenant_id}:{customer}"


class InboundWhatsAppEvent(QueuedEvent):
    """One item of a Meta webhook (`inbound.whatsapp`)."""

    kind: Literal["message", "status", "error"]
    waba_id: str
    phone_number_id: str
    contact: dict[str, Any] | None = None
    item: dict[str, Any]


class GenesysRequest(QueuedEvent):
    """An Open Messaging inbound call for genesys-api (`send.genesys`)."""

    kind: Literal["message", "receipt", "event", "structured"]
    body: dict[str, Any]
    message_id: str | None = Field(default=None, description="our tracking row, when the call delivers one")
    conversation_id: str | None = None
    dedupe_key: str | None = Field(default=None, description="once-only key for receipts and events")
    # Set only in process, by the transformer that tracked the message a moment ago and hands the request on
    # in place: the row is new (unsent) and this is its conversation's Genesys id (None: none yet), so the
    # sender need not read them back. Never queued: a queued or replayed request reads the row.
    just_tracked: bool = Field(default=False, exclude=True)
    genesys_conversation_id: str | None = Field(default=None, exclude=True)


class OutboundGenesysEvent(QueuedEvent):
    """One Genesys outbound webhook body (`outbound.genesys`)."""

    body: dict[str, Any]


class MediaUpload(BaseModel):
    """An agent attachment kept in the object store, uploaded to Meta before body number `part` is sent."""

    model_config = ConfigDict(frozen=True)

    part: int = Field(ge=0)
    object_key: str
    mime_type: str
    filename: str | None = None


class WhatsAppRequest(QueuedEvent):
    """A Graph API send for whatsapp-api (`send.whatsapp`)."""

    kind: Literal["message", "mark_read", "typing"]
    bodies: list[dict[str, Any]] = Field(description="Graph `/messages` bodies, sent in this order")
    message_id: str | None = None
    genesys_message_id: str | None = None
    customer_id: str
    customer_id_type: str = "Phone"
    media: list[MediaUpload] = Field(default_factory=list, description="uploads whose media id a body needs")
    # Set by the outbound transformer when it hands the request over in place for a row it created a moment
    # before: unsent, none of its parts tried yet, these its stored details. Never queued: a queued or
    # replayed request reads the row and looks for earlier attempts of each part.
    just_tracked: bool = Field(default=False, exclude=True)
    tracked_details: dict[str, Any] | None = Field(default=None, exclude=True)
