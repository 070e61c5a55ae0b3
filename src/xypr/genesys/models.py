"""Open Messaging wire models: the outbound webhook body (Genesys → us) and its parts."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

__all__ = ["GenesysChannel", "GenesysOutbound", "GenesysParty"]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class GenesysParty(_Wire):
    id: str
    id_type: str | None = Field(default=None, alias="idType")
    # The captured fixtures spell `nickName`; the schema says `nickname`: accept both.
    nickname: str | None = Field(default=None, validation_alias=AliasChoices("nickname", "nickName"))


class GenesysChannel(_Wire):
    id: str
    platform: str | None = None
    type: str | None = None
    to: GenesysParty
    from_: GenesysParty | None = Field(default=None, alias="from")
    time: str | None = None
    message_id: str | None = Field(default=None, alias="messageId")


class GenesysOutbound(_Wire):
    """The body Genesys POSTs to our webhook for an agent's message, event or receipt."""

    id: str
    channel: GenesysChannel
    direction: str | None = None
    type: str
    text: str | None = None
    content: list[dict[str, Any]] = Field(default_factory=list)
    events: list[dict[str, Any]] = Field(default_factory=list)
    status: str | None = None
    originating_entity: str | None = Field(default=None, alias="originatingEntity")
