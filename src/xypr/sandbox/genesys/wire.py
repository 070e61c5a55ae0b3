"""The Open Messaging inbound request models Genesys validates against (contracts README, "Inbound")."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, model_validator

__all__ = [
    "RECEIPT_REASON_CODES",
    "InboundEvent",
    "InboundMessage",
    "InboundReceipt",
    "InboundStructuredResponse",
]

ReasonCode = Literal[
    "MessageExpired",
    "RateLimited",
    "MessageNotAllowed",
    "GeneralError",
    "UnsupportedMessage",
    "UnknownMessage",
    "InvalidMessageStructure",
    "InvalidDestination",
    "ServerError",
    "MediaTypeNotAllowed",
    "InvalidMediaContentLength",
    "RecipientOptedOut",
]
RECEIPT_REASON_CODES: tuple[str, ...] = get_args(ReasonCode)


def _utc_iso8601(value: str) -> str:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError("must be an ISO-8601 date-time such as 2021-02-01T15:04:05.123Z") from exc
    if moment.utcoffset() != timedelta(0):
        raise ValueError("must be in UTC (suffix Z)")
    return value


def _http_url(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError("must be an absolute http(s) URL")
    return value


UtcTime = Annotated[StrictStr, AfterValidator(_utc_iso8601)]
NonEmpty = Annotated[StrictStr, Field(min_length=1)]


class _Wire(BaseModel):
    # Genesys ignores properties it does not know; the named ones must be right.
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class FromRecipient(_Wire):
    """`channel.from`: the customer."""

    id: NonEmpty
    idType: Literal["Phone", "Email", "Opaque"]
    firstName: StrictStr | None = None
    lastName: StrictStr | None = None
    nickname: StrictStr | None = None


class ToRecipient(_Wire):
    """`channel.to`."""

    id: NonEmpty


class InboundChannel(_Wire):
    """`channel` of an inbound message, event or structured response."""

    from_: FromRecipient = Field(alias="from")
    time: UtcTime
    messageId: StrictStr | None = None
    to: ToRecipient | None = None
    platform: Literal["Open"] | None = None
    type: Literal["Private"] | None = None


class Attachment(_Wire):
    """`content[].attachment`."""

    mediaType: Literal["Image", "Video", "Audio", "File", "Link"]
    url: Annotated[StrictStr, AfterValidator(_http_url)]
    mime: StrictStr | None = None
    filename: StrictStr | None = None
    text: StrictStr | None = None
    sha256: StrictStr | None = None


class AttachmentContent(_Wire):
    """One `content[]` item of an inbound message."""

    contentType: Literal["Attachment"]
    attachment: Attachment


class InboundMessage(_Wire):
    """`POST …/inbound/open/message`."""

    channel: InboundChannel
    text: StrictStr | None = None
    content: list[AttachmentContent] | None = None
    metadata: dict[str, StrictStr] | None = None

    @model_validator(mode="after")
    def _text_or_content(self) -> InboundMessage:
        if not self.text and not self.content:
            raise ValueError("text or content is required")
        return self


class ReceiptReason(_Wire):
    """`reasons[]` of a receipt."""

    code: ReasonCode
    message: StrictStr | None = None


class ReceiptChannel(_Wire):
    """`channel` of a receipt: addressed to the customer."""

    to: ToRecipient
    time: UtcTime
    messageId: StrictStr | None = None


class InboundReceipt(_Wire):
    """`POST …/inbound/open/receipt`: Delivered or Failed (there is no Read)."""

    id: NonEmpty
    channel: ReceiptChannel
    status: Literal["Delivered", "Failed"]
    reasons: list[ReceiptReason] | None = None
    isFinalReceipt: StrictBool | None = None


class Typing(_Wire):
    """`events[].typing`."""

    type: Literal["On"]
    duration: StrictInt | None = None


class InboundEventItem(_Wire):
    """One `events[]` item."""

    eventType: Literal["Typing"]
    typing: Typing | None = None


class InboundEvent(_Wire):
    """`POST …/inbound/open/event`."""

    channel: InboundChannel
    events: Annotated[list[InboundEventItem], Field(min_length=1)]


class ButtonResponse(_Wire):
    """`content[].buttonResponse`."""

    type: Literal["Button", "QuickReply"]
    text: StrictStr
    payload: StrictStr


class ButtonResponseContent(_Wire):
    """One `content[]` item of a structured response."""

    contentType: Literal["ButtonResponse"]
    buttonResponse: ButtonResponse


class InboundStructuredResponse(_Wire):
    """`POST …/inbound/open/structured/response`."""

    channel: InboundChannel
    type: Literal["Structured"]
    content: Annotated[list[ButtonResponseContent], Field(min_length=1)]
    originatingMessageId: StrictStr | None = None
    metadata: dict[str, StrictStr] | None = None
