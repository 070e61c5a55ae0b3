"""Bodies of the Meta emulator's `/_sandbox` control endpoints."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

__all__ = [
    "ClockRequest",
    "CustomerMessageRequest",
    "FaultRequest",
    "MediaJsonRequest",
    "NumberRegistration",
    "RawWebhookRequest",
    "ResetRequest",
    "StatusSequenceRequest",
    "TemplateRequest",
]


class NumberRegistration(BaseModel):
    """Register (upsert) a business number; `verify` runs Meta's webhook verification handshake."""

    phone_number_id: str = Field(min_length=1)
    display_phone_number: str = Field(min_length=1)
    waba_id: str = Field(min_length=1)
    access_token: str = Field(min_length=1)
    app_secret: str = Field(min_length=1)
    verify_token: str = ""
    webhook_url: str = Field(min_length=1)
    verified_name: str = "Xypr Sandbox"
    webhook_version: str = Field(default="v23.0", pattern=r"^v\d+\.\d+$")
    verify: bool = False


class ClockRequest(BaseModel):
    """Shift the emulator's clock: set the total offset, or advance it."""

    offset_seconds: float | None = None
    advance_seconds: float | None = None


class FaultRequest(BaseModel):
    """The next `count` sends of a number fail with `code` (`status` mode: accepted, then `failed`)."""

    phone_number_id: str
    code: int
    count: int = Field(default=1, ge=1)
    http_status: int | None = Field(default=None, ge=400, le=599)
    mode: Literal["response", "status"] = "response"


class MediaJsonRequest(BaseModel):
    """Create customer-side media from base64 bytes (the multipart form takes `phone_number_id`, `file`)."""

    phone_number_id: str
    data_base64: str
    mime_type: str = "image/jpeg"
    filename: str | None = None


class CustomerMessageRequest(BaseModel):
    """A message the customer sends to a business number."""

    phone_number_id: str
    type: Literal[
        "text", "image", "audio", "video", "document", "sticker", "interactive", "button", "reaction", "location"
    ] = "text"
    text: str | None = None
    name: str = "Sandbox Customer"
    media_id: str | None = None
    caption: str | None = None
    filename: str | None = None
    voice: bool = False
    context_id: str | None = None
    content: dict[str, Any] | None = Field(
        default=None, description="The type's object verbatim, for interactive / button / reaction / location."
    )
    user_id: str | None = Field(default=None, description="Business-scoped user id (BSUID), 2026 payloads.")
    username: str | None = None
    hide_phone: bool = Field(default=False, description="Omit `from` / `wa_id`, as for users with a username.")

    @model_validator(mode="after")
    def _needs_content(self) -> CustomerMessageRequest:
        if self.type == "text" and self.text is None:
            raise ValueError("text is required for a text message")
        if self.type in ("image", "audio", "video", "document", "sticker") and not self.media_id:
            raise ValueError(f"media_id is required for a {self.type} message")
        if self.type in ("interactive", "button", "reaction", "location") and self.content is None:
            raise ValueError(f"content is required for a {self.type} message")
        if self.hide_phone and not self.user_id:
            raise ValueError("hide_phone needs a user_id")
        return self


class RawWebhookRequest(BaseModel):
    """Sign and post this body (`raw`: these exact characters) to a number's webhook."""

    phone_number_id: str
    body: Any = None
    raw: str | None = None


class TemplateRequest(BaseModel):
    """Add an approved template to a WABA."""

    waba_id: str
    name: str
    language: str = "en_US"
    category: Literal["UTILITY", "MARKETING", "AUTHENTICATION"] = "UTILITY"
    components: list[dict[str, Any]] = Field(default_factory=list)
    status: Literal["APPROVED", "PENDING", "REJECTED", "PAUSED", "DISABLED"] = "APPROVED"


class StatusSequenceRequest(BaseModel):
    """Which status webhooks follow an accepted send, in order (Meta: sent, delivered, read)."""

    sequence: list[Literal["sent", "delivered", "read", "played"]] = Field(max_length=4)


class ResetRequest(BaseModel):
    """Reset traffic; with `registry`, forget numbers and templates too."""

    registry: bool = False
