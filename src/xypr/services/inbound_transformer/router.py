"""inbound-transformer HTTP: the pure WhatsApp → Genesys transform, for tools (nothing is sent or stored).

The body is the setup guide's simplified WhatsApp message (`messageId`, `from`, `contactName`,
`timestamp`, `type`, `content`); the answer is the Open Messaging request the bridge would make for it,
built by the same function the inbound worker uses (`xypr.transform.inbound.to_genesys_inbound`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BeforeValidator, ConfigDict, Field, StringConstraints, WithJsonSchema, field_validator

from xypr.auth.principal import CurrentPrincipal
from xypr.core.apimodel import ApiModel, integral
from xypr.services.openapi import error_responses
from xypr.transform.inbound import InboundFacts, StoredMedia, to_genesys_inbound
from xypr.whatsapp.models import WaContact, WaInboundMessage, WaProfile, is_bsuid

__all__ = ["InboundContent", "InboundTransform", "InboundTransformRequest", "router"]

router = APIRouter(tags=["inbound transform"])

_FIRST_SECOND = -62135596800  # 0001-01-01T00:00:00Z
_LAST_SECOND = 253402300799  # 9999-12-31T23:59:59Z
_TIMESTAMP_SCHEMA = {
    "anyOf": [
        {"type": "integer", "minimum": 0, "maximum": _LAST_SECOND},
        {"type": "string", "pattern": "^[0-9]{1,11}$"},
        {"type": "string", "format": "date-time"},
    ]
}
_OPEN_MESSAGING = "/api/v2/conversations/messages/{integrationId}"
_PATHS = {"message": "/inbound/open/message", "structured": "/inbound/open/structured/response"}
Short = Annotated[str, StringConstraints(max_length=1024)]


class InboundContent(ApiModel):
    """What the message carries; which fields matter depends on `type`.

    text: `text`. image, audio, video, document, sticker: `url` (where Genesys fetches the media — in the
    pipeline, our copy of it), `mimeType`, optional `caption`, `filename`, `sha256`. location:
    `latitude`, `longitude`, optional `name`, `address`. A media message without `url` becomes the note
    the agent gets when a media could not be retrieved, as in the pipeline.
    """

    model_config = ConfigDict(extra="forbid")

    text: Annotated[str, StringConstraints(max_length=4096)] | None = None
    url: Annotated[str, StringConstraints(max_length=2000)] | None = None
    mime_type: Annotated[str, StringConstraints(max_length=200)] | None = None
    caption: Short | None = None
    filename: Annotated[str, StringConstraints(max_length=240)] | None = None
    sha256: Annotated[str, StringConstraints(max_length=128)] | None = None
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    name: Short | None = None
    address: Short | None = None


class InboundTransformRequest(ApiModel):
    """A customer's WhatsApp message, in the setup guide's simplified form."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "messageId": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
                    "from": "16505551234",
                    "contactName": "Sheena Nelson",
                    "timestamp": "1763805490",
                    "type": "text",
                    "content": {"text": "Does it come in another color?"},
                },
                {
                    "messageId": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQ0RkM2QjE4QkQ5NUE0RUQ2MEQA",
                    "from": "16505551234",
                    "contactName": "Sheena Nelson",
                    "timestamp": "2026-11-22T09:58:10Z",
                    "type": "image",
                    "content": {"url": "https://media.example.com/photo.jpg", "mimeType": "image/jpeg",
                                "caption": "This one"},
                },
            ]
        },
    )  # fmt: skip

    message_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] = Field(
        description="The WhatsApp message id (wamid)"
    )
    from_: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)] = Field(
        alias="from", description="The customer: phone digits (wa_id) or a BSUID (`US.…`)"
    )
    contact_name: Annotated[str, StringConstraints(max_length=200)] | None = Field(
        default=None, description="The customer's WhatsApp profile name"
    )
    timestamp: Annotated[int | str, BeforeValidator(integral), WithJsonSchema(_TIMESTAMP_SCHEMA)] = Field(
        description="When the customer sent it: Unix seconds (as Meta sends it, number or string) or RFC 3339"
    )
    type: Literal["text", "image", "audio", "video", "document", "sticker", "location"] = "text"
    content: InboundContent | Annotated[str, StringConstraints(max_length=4096)] = Field(
        default_factory=InboundContent, description="What the message carries (a string: the text)"
    )

    @field_validator("timestamp")
    @classmethod
    def _unix_seconds(cls, value: int | str) -> int:
        if isinstance(value, str) and not value.isdigit():
            try:
                seconds = int(datetime.fromisoformat(value.upper()).timestamp())
            except (ValueError, OverflowError) as exc:
                raise ValueError("Unix seconds or an RFC 3339 time") from exc
            if not _FIRST_SECOND <= seconds <= _LAST_SECOND:
                raise ValueError("a time between the years 1 and 9999")
            return seconds
        seconds = int(value)
        if not 0 <= seconds <= _LAST_SECOND:
            raise ValueError("Unix seconds: from 0 to 253402300799 (the end of the year 9999)")
        return seconds


class InboundTransform(ApiModel):
    """The Open Messaging request a WhatsApp message becomes."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "kind": "message",
                    "endpoint": "/api/v2/conversations/messages/{integrationId}/inbound/open/message",
                    "message": {
                        "channel": {
                            "messageId": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
                            "from": {"id": "16505551234", "idType": "Phone", "nickname": "Sheena Nelson",
                                     "firstName": "Sheena", "lastName": "Nelson"},
                            "time": "2025-11-22T09:58:10.000Z",
                        },
                        "text": "Does it come in another color?",
                    },
                }
            ]
        }
    )  # fmt: skip

    kind: Literal["message", "structured"] = Field(description="structured: an answer to a quick reply we offered")
    endpoint: str = Field(description="The Open Messaging endpoint it goes to (under the tenant's API host)")
    message: dict[str, Any] = Field(description="The Open Messaging body (Genesys's own wire format)")


def _whatsapp_message(request: InboundTransformRequest) -> tuple[WaInboundMessage, StoredMedia | None]:
    """The guide's simplified message as the WhatsApp webhook item it stands for (and its media, if given)."""
    content = request.content if isinstance(request.content, InboundContent) else InboundContent(text=request.content)
    # `from` is the phone number; a BSUID (it has a dot, `US.…`) goes in `from_user_id`, as Meta sends it.
    sender = {"from_user_id": request.from_} if is_bsuid(request.from_) else {"from": request.from_}
    item: dict[str, Any] = {"id": request.message_id, "timestamp": str(request.timestamp), "type": request.type}
    item.update(sender)
    stored = None
    if request.type == "text":
        item["text"] = {"body": content.text or ""}
    elif request.type == "location":
        item["location"] = {
            "latitude": content.latitude, "longitude": content.longitude, "name": content.name,
            "address": content.address,
        }  # fmt: skip
    else:
        item[request.type] = {"id": request.message_id, "mime_type": content.mime_type, "caption": content.caption,
                              "filename": content.filename}  # fmt: skip
        if content.url:
            stored = StoredMedia(
                url=content.url, mime_type=content.mime_type or "application/octet-stream", sha256=content.sha256,
                filename=content.filename,
            )  # fmt: skip
    return WaInboundMessage.model_validate(item), stored


@router.post(
    "/transform/inbound",
    response_model=InboundTransform,
    summary="WhatsApp message → Genesys Open Messaging request (no side effects)",
    responses=error_responses(400, 401, 403, 413),
)
async def transform_inbound(request: InboundTransformRequest, _principal: CurrentPrincipal) -> InboundTransform:
    """The Open Messaging request the bridge would make for this customer message; nothing is sent or stored."""
    message, stored = _whatsapp_message(request)
    contact = WaContact(profile=WaProfile(name=request.contact_name)) if request.contact_name else None
    inbound = to_genesys_inbound(message, contact, InboundFacts(media=stored))
    return InboundTransform(
        kind=inbound.kind, endpoint=f"{_OPEN_MESSAGING}{_PATHS[inbound.kind]}", message=inbound.body
    )
