"""`Message.details`: the facts kept on a tracked message for later, typed; stored as a JSON object.

Every key the code writes is declared here. Keys this version does not know (rows written by another
version) load as extra attributes and are written back unchanged. A declared key whose stored value
does not fit its type is dropped on load, as the readers always skipped malformed values.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import JSON
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from xypr.core.logging import get_logger

__all__ = [
    "KeptAttachment",
    "MessageDetails",
    "MessageDetailsType",
    "OfferedChoice",
    "Place",
    "Reaction",
    "WidgetAttachment",
    "stored_details",
]

log = get_logger(__name__)


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)


class Reaction(_Part):
    """A reaction: the wamid it reacts to and its emoji (empty: the reaction was removed)."""

    message_id: str = Field(alias="messageId")
    emoji: str | None = None


class Place(_Part):
    """A shared location."""

    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None


class OfferedChoice(_Part):
    """A quick reply or button an agent message offered: the inbound path maps an answer's id back to it."""

    id: str
    title: str | None = None
    payload: str | None = None
    type: str | None = None


class KeptAttachment(_Part):
    """An agent's attachment as kept in the object store by the outbound path."""

    object_key: str
    bytes: int


class WidgetAttachment(_Part):
    """A file an agent sent from the widget, as kept in the object store."""

    object_key: str = Field(alias="objectKey")
    mime: str
    filename: str


class MessageDetails(_Part):
    """What a tracked message keeps beyond its columns (`messages.details`)."""

    # Customer messages (inbound).
    reply_to: str | None = Field(default=None, alias="replyTo")  # also agent replies from the widget
    reaction: Reaction | None = None  # also agent reactions from the widget
    location: Place | None = None
    media_id: str | None = None  # WhatsApp's media id: our copy is the `media` row of that id
    media_copied: bool | None = None
    structured: bool | None = None  # sent to Genesys as a structured answer (button, list reply)
    customer_id: str | None = None  # an identity change: the id Genesys was told the notice under
    # Agent messages (outbound).
    quick_replies: tuple[OfferedChoice, ...] | None = None
    wamids: tuple[str, ...] | None = None  # every part's wamid (a split text); `Message.wamid` is the first
    media: tuple[KeptAttachment, ...] | WidgetAttachment | None = None
    requested_by: str | None = None  # the user who sent it from Xypr (widget, template API)

    @field_validator("quick_replies", mode="before")
    @classmethod
    def _choices_with_an_id(cls, value: Any) -> Any:
        """Entries without an id were never answerable: skipped, the others kept."""
        if isinstance(value, list | tuple):
            return [each for each in value if not isinstance(each, dict) or each.get("id")]
        return value

    def merged(self, update: MessageDetails) -> MessageDetails:
        """These details with the keys `update` sets replaced."""
        return MessageDetails.model_validate({**self.stored(), **update.stored()})

    def stored(self) -> dict[str, Any]:
        """The JSON object kept in the database (unset keys left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    @classmethod
    def load(cls, value: Any) -> MessageDetails | None:
        """The details of a stored JSON object; None for none. Malformed declared keys are dropped."""
        if value is None:
            return None
        if not isinstance(value, dict):
            log.warning("state.details_not_an_object", kind=type(value).__name__)
            return None
        try:
            return cls.model_validate(value)
        except ValidationError as exc:
            bad = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
            log.warning("state.details_malformed", keys=sorted(bad))
            return cls.model_validate({key: each for key, each in value.items() if key not in bad})


def stored_details(details: MessageDetails | None) -> dict[str, Any] | None:
    """The JSON object to store for `details` (None for none)."""
    return None if details is None else details.stored()


class MessageDetailsType(TypeDecorator[MessageDetails]):
    """The `messages.details` column: a JSON object in the database, `MessageDetails` in Python."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: MessageDetails | None, dialect: Dialect) -> dict[str, Any] | None:
        """Store the model as its JSON object."""
        return stored_details(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> MessageDetails | None:
        """Load the JSON object as the model."""
        return MessageDetails.load(value)
