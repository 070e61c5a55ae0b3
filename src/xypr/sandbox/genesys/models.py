"""Bodies of the Genesys emulator's `/_sandbox` control endpoints."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

__all__ = [
    "AgentMessageRequest",
    "AgentTypingRequest",
    "DisconnectRequest",
    "FaultRequest",
    "IntegrationRegistration",
    "RawWebhookRequest",
    "ResetRequest",
    "TokenTtlRequest",
]


class IntegrationRegistration(BaseModel):
    """Register (upsert) an Open Messaging integration and the OAuth client that uses it."""

    integration_id: str = Field(min_length=1)
    name: str = "Xypr Open Messaging"
    client_id: str = Field(min_length=1)
    client_secret: str = Field(min_length=1)
    webhook_url: str = Field(min_length=1)
    webhook_secret: str = Field(min_length=1)
    org_id: str | None = None


class LatencyRequest(BaseModel):
    """Open Messaging calls are accepted (recorded) at once and answered `seconds` later."""

    seconds: float = Field(ge=0, le=600)


class TokenTtlRequest(BaseModel):
    """Lifetime of tokens issued from now on."""

    seconds: int = Field(ge=1)


class FaultRequest(BaseModel):
    """The next `count` API calls (of one integration, or any) answer `status`; with `seconds`, every call
    does for that long instead (an outage). Faults apply one after the other, in the order given."""

    integration_id: str | None = None
    status: Literal[400, 429, 500, 502, 503, 504]
    count: int = Field(default=1, ge=1)
    seconds: float | None = Field(default=None, gt=0, le=3600)
    retry_after: int | None = Field(default=None, ge=0)


class DisconnectRequest(BaseModel):
    """End a customer's conversation: the next inbound message opens a new conversation id."""

    integration_id: str
    customer_id: str


class AgentMessageRequest(BaseModel):
    """An agent's reply to the customer `to` (the `channel.from.id` Genesys received)."""

    to: str = Field(min_length=1)
    text: str | None = None
    type: Literal["Text", "Structured"] = "Text"
    content: list[dict[str, Any]] = Field(default_factory=list)
    to_id_type: Literal["Phone", "Email", "Opaque"] | None = Field(
        default=None, description="Genesys' documented examples omit `to.idType`; set it to include one."
    )
    nickname: str | None = None
    originating_entity: Literal["Human", "Bot"] = "Human"

    @model_validator(mode="after")
    def _has_something(self) -> AgentMessageRequest:
        if self.text is None and not self.content:
            raise ValueError("text or content is required")
        return self


class AgentTypingRequest(BaseModel):
    """The agent is typing to the customer `to`."""

    to: str = Field(min_length=1)
    duration: int = Field(default=5000, ge=0)


class RawWebhookRequest(BaseModel):
    """Sign and post this body (`raw`: these exact characters) to the integration's webhook."""

    body: Any = None
    raw: str | None = None


class ResetRequest(BaseModel):
    """Reset traffic; with `registry`, forget integrations and tokens too."""

    registry: bool = False
