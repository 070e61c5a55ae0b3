"""Open Messaging `content[]` items of outbound messages (the Genesys message model, camelCase on the wire)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from xypr.core.wire import WireEnum

__all__ = [
    "Attachment",
    "AvailableTime",
    "Card",
    "CardAction",
    "CardActionType",
    "Carousel",
    "ContentItem",
    "DatePicker",
    "ListPicker",
    "ListPickerItem",
    "ListPickerSection",
    "Location",
    "MediaType",
    "NotificationTemplate",
    "QuickReply",
    "QuickReplyV2",
    "ReplyMessage",
    "TemplateBody",
    "TemplateButton",
    "TemplateButtonType",
    "TemplateHeader",
    "TemplateHeaderType",
    "TemplateParameter",
]


class _Wire(BaseModel):
    # Genesys adds properties over time; unknown ones are kept and never a reason to fail.
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class MediaType(WireEnum):
    """An attachment's `mediaType`."""

    IMAGE = "Image"
    VIDEO = "Video"
    AUDIO = "Audio"
    FILE = "File"
    LINK = "Link"
    UNKNOWN = "unknown"


class CardActionType(WireEnum):
    """A card button's `type`."""

    POSTBACK = "Postback"
    LINK = "Link"
    UNKNOWN = "unknown"


class TemplateHeaderType(WireEnum):
    """A template header's `type`."""

    TEXT = "Text"
    MEDIA = "Media"
    UNKNOWN = "unknown"


class TemplateButtonType(WireEnum):
    """A template button's `type`."""

    QUICK_REPLY = "QuickReply"
    URL = "Url"
    PHONE_NUMBER = "PhoneNumber"
    UNKNOWN = "unknown"


class Attachment(_Wire):
    """`attachment`: a file the agent sent (`mediaType` Image, Video, Audio, File or Link)."""

    id: str | None = None
    media_type: MediaType | None = Field(default=None, alias="mediaType")
    url: str | None = None
    mime: str | None = None
    filename: str | None = None
    text: str | None = None
    sha256: str | None = None
    content_size_bytes: int | None = Field(default=None, alias="contentSizeBytes")


class QuickReply(_Wire):
    """`quickReply`: one answer the customer can tap; `text` is also the answer's text."""

    text: str
    payload: str | None = None
    image: str | None = None
    action: str | None = None


class QuickReplyV2(_Wire):
    """`quickReplyV2`: a titled group of quick replies."""

    title: str | None = None
    actions: list[QuickReply] = Field(default_factory=list)


class CardAction(_Wire):
    """A card button: `Postback` (answers `payload`) or `Link` (opens `url`)."""

    type: CardActionType | None = None
    text: str | None = None
    payload: str | None = None
    url: str | None = None


class Card(_Wire):
    """`card`: a title, a description, an image and buttons."""

    title: str | None = None
    description: str | None = None
    image: str | None = None
    video: str | None = None
    default_action: CardAction | None = Field(default=None, alias="defaultAction")
    actions: list[CardAction] = Field(default_factory=list)


class Carousel(_Wire):
    """`carousel`: several cards side by side."""

    cards: list[Card] = Field(default_factory=list)


class ListPickerItem(_Wire):
    """One choice of a list picker."""

    id: str | None = None
    title: str | None = None
    subtitle: str | None = None
    image_url: str | None = Field(default=None, alias="imageUrl")


class ListPickerSection(_Wire):
    """A titled group of list picker choices."""

    title: str | None = None
    multiple_selection: bool | None = Field(default=None, alias="multipleSelection")
    items: list[ListPickerItem] = Field(default_factory=list)


class ReplyMessage(_Wire):
    """`receivedMessage` / `replyMessage` of a list picker: the prompt texts."""

    header: str | None = None
    title: str | None = None
    subtitle: str | None = None
    button_label: str | None = Field(default=None, alias="buttonLabel")
    image_url: str | None = Field(default=None, alias="imageUrl")


class ListPicker(_Wire):
    """`listPicker`: sections of choices behind a button."""

    id: str | None = None
    sections: list[ListPickerSection] = Field(default_factory=list)
    reply_message: ReplyMessage | None = Field(default=None, alias="replyMessage")
    received_message: ReplyMessage | None = Field(default=None, alias="receivedMessage")


class AvailableTime(_Wire):
    """One time slot a date picker offers (`dateTime` ISO-8601, `duration` in seconds)."""

    date_time: str | None = Field(default=None, alias="dateTime")
    duration: int | None = None


class Location(_Wire):
    """`location`: a place (or the location of a date picker's event)."""

    url: str | None = None
    address: str | None = None
    text: str | None = None
    latitude: float | None = None
    longitude: float | None = None


class DatePicker(_Wire):
    """`datePicker`: a calendar with available times."""

    id: str | None = None
    title: str | None = None
    subtitle: str | None = None
    image_url: str | None = Field(default=None, alias="imageUrl")
    date_minimum: str | None = Field(default=None, alias="dateMinimum")
    date_maximum: str | None = Field(default=None, alias="dateMaximum")
    location: Location | None = None
    available_times: list[AvailableTime] = Field(default_factory=list, alias="availableTimes")


class TemplateParameter(_Wire):
    """A template placeholder value (`name` is the placeholder, `text` its value)."""

    name: str | None = None
    text: str


class TemplateHeader(_Wire):
    """A template header: `Text` (with parameters) or `Media` (an attachment)."""

    type: TemplateHeaderType | None = None
    text: str | None = None
    media: Attachment | None = None
    parameters: list[TemplateParameter] = Field(default_factory=list)


class TemplateBody(_Wire):
    """A template body (its `text` is informative; WhatsApp renders the approved text)."""

    text: str | None = None
    parameters: list[TemplateParameter] = Field(default_factory=list)


class TemplateButton(_Wire):
    """A template button: `QuickReply` (with a `payload`), `Url` (with parameters) or `PhoneNumber`."""

    type: TemplateButtonType | None = None
    text: str | None = None
    index: int | None = None
    phone_number: str | None = Field(default=None, alias="phoneNumber")
    url: str | None = None
    payload: str | None = None
    parameters: list[TemplateParameter] = Field(default_factory=list)


class NotificationTemplate(_Wire):
    """`template` of a `Notification` item; `id` is `namespace@name` for WhatsApp templates."""

    id: str
    language: str | None = None
    header: TemplateHeader | None = None
    body: TemplateBody | None = None
    buttons: list[TemplateButton] = Field(default_factory=list)
    footer: dict[str, object] | None = None


class ContentItem(_Wire):
    """One `content[]` item; `contentType` says which of the other fields is set."""

    content_type: str = Field(alias="contentType")
    attachment: Attachment | None = None
    quick_reply: QuickReply | None = Field(default=None, alias="quickReply")
    quick_reply_v2: QuickReplyV2 | None = Field(default=None, alias="quickReplyV2")
    template: NotificationTemplate | None = None
    card: Card | None = None
    carousel: Carousel | None = None
    list_picker: ListPicker | None = Field(default=None, alias="listPicker")
    date_picker: DatePicker | None = Field(default=None, alias="datePicker")
    location: Location | None = None
