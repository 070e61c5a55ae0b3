"""Bodies and answers of the state API (camelCase on the wire, like its paths and query parameters)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

__all__ = [
    "MESSAGE_STATUSES",
    "ContextBody",
    "ContextView",
    "ConversationView",
    "MappingRequest",
    "MappingView",
    "MediaView",
    "MessagePage",
    "MessageRequest",
    "MessageView",
    "StatsView",
]

MESSAGE_STATUSES = ("received", "sent", "delivered", "read", "failed")

Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
CustomerId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class MappingRequest(_Wire):
    """A customer ↔ conversation mapping to create or update (keyed by the customer's `waId`)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "waId": "16505551234",
                    "customerName": "Sheena Nelson",
                    "genesysConversationId": "a8f3c2a4-3c1b-4c4e-8a0e-2b1f0e7d9c11",
                }
            ]
        }
    )

    wa_id: CustomerId = Field(description="The customer's WhatsApp id (phone digits) or BSUID")
    bsuid: CustomerId | None = None
    customer_name: Annotated[str, StringConstraints(max_length=200)] | None = None
    genesys_conversation_id: Annotated[str, StringConstraints(max_length=64)] | None = None


class MappingView(_Wire):
    """A customer's conversation: our id, the Genesys conversation id, the 24-hour window."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "conversationId": "4b1e2c8f-0e49-4c0c-9a55-31b1f83a7d20",
                    "waId": "16505551234",
                    "bsuid": None,
                    "customerName": "Sheena Nelson",
                    "genesysConversationId": "a8f3c2a4-3c1b-4c4e-8a0e-2b1f0e7d9c11",
                    "lastCustomerMessageAt": "2026-11-22T09:58:10Z",
                    "windowOpen": True,
                    "createdAt": "2026-11-22T09:58:11Z",
                    "updatedAt": "2026-11-22T09:58:12Z",
                }
            ]
        },
    )

    conversation_id: str
    wa_id: str
    bsuid: str | None
    customer_name: str | None
    genesys_conversation_id: str | None
    last_customer_message_at: datetime | None
    window_open: bool = Field(description="The customer wrote in the last 24 h: free-form messages may be sent")
    created_at: datetime
    updated_at: datetime


class ConversationView(MappingView):
    """A conversation with a summary of its tracked messages."""

    message_count: int
    last_message_at: datetime | None


class ContextBody(_Wire):
    """`PUT /state/context/{conversationId}`: the writable keys (Xypr's own facts cannot be overwritten)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"context": {"language": "es", "order": "A-1042", "vip": True}}]}
    )

    context: dict[str, Any]


class ContextView(_Wire):
    """A conversation's context: the stored keys plus the facts Xypr maintains."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "conversationId": "4b1e2c8f-0e49-4c0c-9a55-31b1f83a7d20",
                    "context": {
                        "language": "es",
                        "conversation_id": "4b1e2c8f-0e49-4c0c-9a55-31b1f83a7d20",
                        "customer_id": "16505551234",
                        "customer_name": "Sheena Nelson",
                    },
                }
            ]
        },
    )

    conversation_id: str
    context: dict[str, Any]


class MessageRequest(_Wire):
    """A message to track: inbound ones by `wamid`, outbound ones by `genesysMessageId`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "direction": "inbound",
                    "waId": "16505551234",
                    "wamid": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
                    "kind": "text",
                    "status": "received",
                    "text": "Does it come in another color?",
                }
            ]
        }
    )

    direction: Literal["inbound", "outbound"]
    wa_id: CustomerId = Field(description="The customer (conversation) the message belongs to")
    wamid: Id | None = None
    genesys_message_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)] | None = (
        None
    )
    kind: Annotated[str, StringConstraints(min_length=1, max_length=32)] = "text"
    status: Literal["received", "sent", "delivered", "read", "failed"] = "received"
    text: Annotated[str, StringConstraints(max_length=4096)] | None = None
    error: Annotated[str, StringConstraints(max_length=2000)] | None = None


class MessageView(_Wire):
    """A tracked message."""

    model_config = ConfigDict(extra="ignore")

    id: str
    conversation_id: str | None
    direction: str
    wamid: str | None
    genesys_message_id: str | None
    kind: str
    status: str
    text: str | None
    error: str | None
    created_at: datetime
    updated_at: datetime


class MessagePage(_Wire):
    """One page of tracked messages, newest first, with the total."""

    model_config = ConfigDict(extra="ignore")

    items: list[MessageView]
    total: int
    limit: int
    offset: int


class MediaView(_Wire):
    """A WhatsApp media id and where its copy in our object store can be fetched."""

    model_config = ConfigDict(extra="ignore")

    media_id: str
    wamid: str
    mime_type: str
    sha256: str
    size: int
    filename: str | None
    created_at: datetime
    url: str = Field(description="Fetches the copy without other credentials until it expires")
    url_expires_in: int = Field(description="Seconds the url stays valid")


class StatsView(_Wire):
    """Counts for one tenant, or for the whole platform (Xypr admins without `tenantId`)."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "scope": "tenant",
                    "tenantId": "0b6f3c1e-8d4a-4c55-9a51-2f1f6f0e9b7d",
                    "conversations": 12,
                    "messages": {"inbound": {"sent": 40, "failed": 1}, "outbound": {"sent": 35, "read": 20}},
                    "messagesLastDay": {"inbound": 7, "outbound": 5},
                    "media": 3,
                    "parkedEvents": 0,
                    "tenants": None,
                }
            ]
        },
    )

    scope: Literal["tenant", "platform"]
    tenant_id: str | None
    conversations: int
    messages: dict[str, dict[str, int]] = Field(description="Tracked messages by direction, then by status")
    messages_last_day: dict[str, int] = Field(description="Messages tracked in the last 24 h by direction")
    media: int
    parked_events: int
    tenants: dict[str, int] | None = Field(default=None, description="Platform scope: tenants by status")
