"""Open Messaging wire models: the outbound webhook body (Genesys → us) and its parts."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from xypr.core.wire import WireEnum

__all__ = [
    "GenesysChannel",
    "GenesysChannelType",
    "GenesysDirection",
    "GenesysIdType",
    "GenesysMessageType",
    "GenesysOutbound",
    "GenesysParty",
    "GenesysReceiptStatus",
]


class GenesysMessageType(WireEnum):
    """An Open Messaging message's `type`; a type Genesys adds later parses as `UNKNOWN` and keeps its name."""

    TEXT = "Text"
    STRUCTURED = "Structured"
    RECEIPT = "Receipt"
    EVENT = "Event"
    UNKNOWN = "unknown"


class GenesysIdType(WireEnum):
    """How Open Messaging names a party (`idType`); anything new parses as `UNKNOWN` and keeps its name."""

    PHONE = "Phone"
    EMAIL = "Email"
    OPAQUE = "Opaque"
    UNKNOWN = "unknown"


class GenesysDirection(WireEnum):
    """Which way an Open Messaging message goes: `Outbound` is Genesys' (the agent's), `Inbound` ours."""

    INBOUND = "Inbound"
    OUTBOUND = "Outbound"
    UNKNOWN = "unknown"


class GenesysChannelType(WireEnum):
    """An Open Messaging channel's `type`: `Private` for a one-to-one conversation."""

    PRIVATE = "Private"
    PUBLIC = "Public"
    UNKNOWN = "unknown"


class GenesysReceiptStatus(WireEnum):
    """A receipt's `status`."""

    SENT = "Sent"
    DELIVERED = "Delivered"
    READ = "Read"
    FAILED = "Failed"
    PUBLISHED = "Published"
    REMOVED = "Removed"
    UNKNOWN = "unknown"


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class GenesysParty(_Wire):
    id: str
    id_type: GenesysIdType | None = Field(default=None, alias="idType")
    # The captured fixtures spell `nickName`; the schema says `nickname`: accept both.
    nickname: str | None = Field(default=None, validation_alias=AliasChoices("nickname", "nickName"))


class GenesysChannel(_Wire):
    id: str
    platform: str | None = None
    type: GenesysChannelType | None = None
    to: GenesysParty
    from_: GenesysParty | None = Field(default=None, alias="from")
    time: str | None = None
    message_id: str | None = Field(default=None, alias="messageId")


class GenesysOutbound(_Wire):
    """The body Genesys POSTs to our webhook for an agent's message, event or receipt."""

    id: str
    channel: GenesysChannel
    direction: GenesysDirection | None = None
    type: GenesysMessageType
    text: str | None = None
    content: list[dict[str, Any]] = Field(default_factory=list)
    events: list[dict[str, Any]] = Field(default_factory=list)
    status: GenesysReceiptStatus | None = None
    originating_entity: str | None = Field(default=None, alias="originatingEntity")
