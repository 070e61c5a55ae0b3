"""Bodies and answers of the state API (camelCase on the wire, like its paths and query parameters)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints, WithJsonSchema, field_validator, model_validator

from xypr.core.apimodel import ApiModel, variants
from xypr.services.openapi import component_schema

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
    "MessageStatus",
    "MessageView",
    "StatsView",
]

MESSAGE_STATUSES = ("received", "sent", "delivered", "read", "failed")
MessageStatus = Literal["received", "sent", "delivered", "read", "failed"]

# `pattern` says in the schema what stripping then `min_length` enforce: something besides white space.
Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=r"\S")]
CustomerId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"\S")]


Digits = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{1,32}$")]


class _Wire(ApiModel):
    model_config = ConfigDict(extra="forbid")


Name = Annotated[str, StringConstraints(max_length=200)]


class MappingRequest(_Wire):
    """A customer ↔ conversation mapping to create or update (keyed by the customer's `waId`).

    The setup guide's body (`waId`, `contactName`, `phoneNumberId`, `displayPhoneNumber`) is accepted as
    written: `contactName` is `customerName`, and `phoneNumberId` / `displayPhoneNumber`, when given, must
    be the tenant's WhatsApp number.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "waId": "16505551234",
                    "customerName": "Sheena Nelson",
                    "genesysConversationId": "a8f3c2a4-3c1b-4c4e-8a0e-2b1f0e7d9c11",
                },
                {
                    "waId": "16505551234",
                    "contactName": "Sheena Nelson",
                    "phoneNumberId": "106540352242922",
                    "displayPhoneNumber": "+1 555 0100",
                },
            ]
        }
    )

    wa_id: CustomerId = Field(description="The customer's WhatsApp id (phone digits) or BSUID")
    bsuid: CustomerId | None = None
    customer_name: Name | None = None
    contact_name: Name | None = Field(
        default=None, description="The setup guide's name for `customerName` (which wins when both are given)"
    )
    genesys_conversation_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    phone_number_id: Digits | None = Field(
        default=None, description="The tenant's WhatsApp phone number id (checked, not stored)"
    )
    display_phone_number: Annotated[str, StringConstraints(max_length=40)] | None = Field(
        default=None, description="The tenant's WhatsApp number as shown to customers (informative)"
    )

    @model_validator(mode="after")
    def _one_name(self) -> MappingRequest:
        # The canonical name wins when both are given.
        if self.customer_name is None and self.contact_name is not None:
            self.customer_name = self.contact_name
        return self


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
                    "genesysCustomerId": "16505551234",
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
    wa_id: str = Field(description="The customer's WhatsApp id now (phone digits) or BSUID: where sends go")
    bsuid: str | None
    genesys_customer_id: str = Field(
        description="The id Genesys knows the customer by (`channel.from.id`): the first one they wrote from, "
        "kept when they change number or BSUID"
    )
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


_INT64 = (-(2**63), 2**63 - 1)
_CONTEXT_VALUE_REF = {"$ref": "#/components/schemas/ContextValue"}
# Any JSON value, but integers within 64 bits (a float is not an integer here: `not integer`).
component_schema(
    "ContextValue",
    {
        "anyOf": [
            {"type": "null"},
            {"type": "boolean"},
            {"type": "string"},
            {"type": "integer", "minimum": _INT64[0], "maximum": _INT64[1]},
            {"type": "number", "not": {"type": "integer"}},
            {"type": "array", "items": _CONTEXT_VALUE_REF},
            {"type": "object", "additionalProperties": _CONTEXT_VALUE_REF},
        ]
    },
)
_CONTEXT_SCHEMA = {"type": "object", "additionalProperties": _CONTEXT_VALUE_REF}


def _fits(value: Any) -> bool:
    """Whether every integer in a JSON value fits in 64 bits."""
    if isinstance(value, bool) or not isinstance(value, int | list | dict):
        return True
    if isinstance(value, int):
        return _INT64[0] <= value <= _INT64[1]
    items = value.values() if isinstance(value, dict) else value
    return all(_fits(item) for item in items)


class ContextBody(_Wire):
    """`PUT /state/context/{conversationId}`: the writable keys (Xypr's own facts cannot be overwritten)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"context": {"language": "es", "order": "A-1042", "vip": True}}]}
    )

    context: Annotated[dict[str, Any], WithJsonSchema(_CONTEXT_SCHEMA)] = Field(
        description="A JSON object; integers within 64 bits (how the context is stored and cached)"
    )

    @field_validator("context")
    @classmethod
    def _storable(cls, context: dict[str, Any]) -> dict[str, Any]:
        if not _fits(context):
            raise ValueError("integers must fit in 64 bits")
        return context


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


# What the handler requires beyond the fields' own types: a conversation (`waId` or `conversationId`) and
# the id the direction is tracked by.
_REQUIREMENTS = variants(
    *(
        ({"direction": [direction]}, (conversation, tracked_by))
        for direction, ids in (("inbound", ("wamid", "metaMessageId")), ("outbound", ("genesysMessageId",)))
        for tracked_by in ids
        for conversation in ("waId", "conversationId")
    )
)


def _message_request_schema(schema: dict[str, Any]) -> None:
    _REQUIREMENTS(schema)
    schema.update(
        {
            "examples": [
                {
                    "direction": "inbound",
                    "waId": "16505551234",
                    "wamid": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
                    "kind": "text",
                    "status": "received",
                    "text": "Does it come in another color?",
                },
                {
                    "metaMessageId": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
                    "genesysMessageId": "3c7b2d4e5f60718293a4b5c6d7e8f901",
                    "conversationId": "a8f3c2a4-3c1b-4c4e-8a0e-2b1f0e7d9c11",
                    "direction": "inbound",
                },
            ],
        }
    )


class MessageRequest(_Wire):
    """A message to track: inbound ones by `wamid`, outbound ones by `genesysMessageId`.

    The conversation is named by the customer (`waId`) or by `conversationId` (ours or the Genesys one).
    The setup guide's body (`metaMessageId`, `genesysMessageId`, `conversationId`, `direction`) is
    accepted as written: `metaMessageId` is the `wamid`.
    """

    model_config = ConfigDict(json_schema_extra=_message_request_schema)

    direction: Literal["inbound", "outbound"]
    wa_id: CustomerId | None = Field(
        default=None, description="The customer (conversation) the message belongs to; or give `conversationId`"
    )
    conversation_id: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"\S")] | None
    ) = Field(default=None, description="Our conversation id or the Genesys one (instead of `waId`)")
    wamid: Id | None = None
    meta_message_id: Id | None = Field(
        default=None, description="The setup guide's name for `wamid` (which wins when both are given)"
    )
    genesys_message_id: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"\S")] | None
    ) = None
    kind: Annotated[str, StringConstraints(min_length=1, max_length=32)] = "text"
    status: MessageStatus = "received"
    text: Annotated[str, StringConstraints(max_length=4096)] | None = None
    error: Annotated[str, StringConstraints(max_length=2000)] | None = None

    @model_validator(mode="after")
    def _one_wamid(self) -> MessageRequest:
        # The canonical name wins when both are given.
        if self.wamid is None and self.meta_message_id is not None:
            self.wamid = self.meta_message_id
        return self


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
