"""Meta webhook wire models (both payload eras: phone `wa_id`/`from` and BSUID `user_id`/`from_user_id`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "WaContact",
    "WaInboundMessage",
    "WaMetadata",
    "WaProfile",
    "WaStatus",
    "WaText",
    "WebhookChange",
    "WebhookEntry",
    "WebhookPayload",
    "WebhookValue",
]


class _Wire(BaseModel):
    # Meta adds fields over time; unknown ones are kept, never a reason to fail.
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class WaMetadata(_Wire):
    display_phone_number: str | None = None
    phone_number_id: str


class WaProfile(_Wire):
    name: str | None = None
    username: str | None = None


class WaContact(_Wire):
    wa_id: str | None = None
    user_id: str | None = None
    profile: WaProfile | None = None


class WaText(_Wire):
    body: str


class WaInboundMessage(_Wire):
    """One `value.messages[]` item."""

    id: str
    from_: str | None = Field(default=None, alias="from")
    from_user_id: str | None = None
    timestamp: str
    type: str
    text: WaText | None = None
    context: dict[str, Any] | None = None

    @property
    def customer_key(self) -> str | None:
        """The customer's id: the phone `wa_id` when present, else the BSUID."""
        return self.from_ or self.from_user_id


class WaStatus(_Wire):
    """One `value.statuses[]` item."""

    id: str
    status: str
    timestamp: str
    recipient_id: str | None = None
    recipient_user_id: str | None = None
    errors: list[dict[str, Any]] = Field(default_factory=list)
    biz_opaque_callback_data: str | None = None


class WebhookValue(_Wire):
    """`entry[].changes[].value`; items stay raw here and are validated one by one downstream."""

    messaging_product: str | None = None
    metadata: WaMetadata
    contacts: list[dict[str, Any]] = Field(default_factory=list)
    messages: list[dict[str, Any]] = Field(default_factory=list)
    statuses: list[dict[str, Any]] = Field(default_factory=list)
    errors: list[dict[str, Any]] = Field(default_factory=list)


class WebhookChange(_Wire):
    field: str
    value: dict[str, Any]


class WebhookEntry(_Wire):
    id: str
    changes: list[WebhookChange] = Field(default_factory=list)


class WebhookPayload(_Wire):
    """The whole POST body of a Meta webhook."""

    object: str
    entry: list[WebhookEntry] = Field(default_factory=list)
