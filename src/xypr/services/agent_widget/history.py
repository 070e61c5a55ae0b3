"""The conversation as the agent sees it: bubbles with ticks, quotes, reactions and media (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from xypr.backends.db.base import as_utc
from xypr.state.details import MessageDetails, Place
from xypr.state.models import Message
from xypr.transform.inbound import maps_link

__all__ = ["Bubble", "Location", "MediaView", "bubbles", "failure_reason"]

_MEDIA_KINDS: Final = frozenset({"image", "video", "audio", "document", "sticker"})
# The receipt reasons the pipeline writes in `messages.error` ("<Reason>: <Meta's text>"), in words.
_REASONS: Final = {
    "MessageExpired": "the 24-hour window is closed",
    "InvalidDestination": "the number cannot receive WhatsApp messages",
    "RecipientOptedOut": "the customer opted out",
    "MediaTypeNotAllowed": "WhatsApp does not accept this media type",
    "InvalidMediaContentLength": "the media is too large",
    "InvalidMessageStructure": "WhatsApp refused the message's form",
    "UnsupportedMessage": "WhatsApp has no form for this message",
    "RateLimited": "too many messages; WhatsApp asked to slow down",
    "ServerError": "WhatsApp or Xypr was unavailable",
    "GeneralError": "WhatsApp refused the message",
}


@dataclass(frozen=True, slots=True)
class MediaView:
    """A media item: its kind, a URL of our copy (None when it could not be copied) and its name."""

    kind: str
    url: str | None
    mime_type: str | None = None
    filename: str | None = None


@dataclass(frozen=True, slots=True)
class Location:
    """A shared location and its map link."""

    label: str
    url: str


@dataclass(slots=True)
class Bubble:
    """One message in the thread."""

    id: str
    direction: str  # "in" (the customer) | "out" (the business)
    kind: str
    text: str | None
    at: datetime
    wamid: str | None = None
    status: str | None = None  # agent messages: received (pending) | sent | delivered | read | failed
    failure: str | None = None
    media: MediaView | None = None
    location: Location | None = None
    quote: str | None = None
    reactions: dict[str, str] = field(default_factory=dict)  # who ("customer" | "agent") → emoji
    note: str | None = None  # a reaction to a message not in view

    @property
    def tick(self) -> str:
        """The tick's class: pending, sent, delivered, read or failed."""
        return "pending" if self.status in (None, "received") else str(self.status)


def failure_reason(error: str | None) -> str | None:
    """`"InvalidDestination: (131026) Message undeliverable"` → words an agent understands, with Meta's text."""
    if not error:
        return None
    reason, _, detail = error.partition(":")
    words = _REASONS.get(reason.strip())
    if words is None:
        return error.strip()
    return f"{words[0].upper()}{words[1:]} — {detail.strip()}" if detail.strip() else words[0].upper() + words[1:]


def _location(place: Place | None) -> Location | None:
    if place is None:
        return None
    label = place.name or place.address or f"{place.latitude:.5f}, {place.longitude:.5f}"
    return Location(label, maps_link(place.latitude, place.longitude))


def _reaction(details: MessageDetails) -> tuple[str, str] | None:
    reaction = details.reaction
    if reaction is None or not reaction.message_id:
        return None
    return reaction.message_id, reaction.emoji or ""


def bubbles(rows: Sequence[Message], media: Mapping[str, MediaView]) -> list[Bubble]:
    """The thread, oldest first: reactions folded onto the message they react to, replies quoting theirs.

    `rows` are the conversation's tracked messages oldest first; `media` our copies by wamid."""
    by_wamid: dict[str, Bubble] = {}
    thread: list[Bubble] = []
    reactions: list[tuple[str, str, str, Bubble]] = []
    for row in rows:
        details = row.details or MessageDetails()
        direction = "in" if row.direction == "inbound" else "out"
        bubble = Bubble(
            id=row.id,
            direction=direction,
            kind=row.kind,
            text=row.text,
            at=as_utc(row.created_at),
            wamid=row.wamid,
            status=row.status if direction == "out" else None,
            failure=failure_reason(row.error) if row.status == "failed" else None,
        )
        if row.kind in _MEDIA_KINDS:
            bubble.media = (row.wamid and media.get(row.wamid)) or MediaView(row.kind, None)
            if bubble.text and bubble.text.startswith("[") and bubble.text.endswith("]"):
                bubble.text = None  # "[image]" was only a stand-in for quotes; the media shows itself
        if row.kind == "location":
            bubble.location = _location(details.location)
        reaction = _reaction(details)
        if row.kind == "reaction" and reaction is not None:
            reactions.append((reaction[0], reaction[1], "customer" if direction == "in" else "agent", bubble))
            continue
        if details.reply_to is not None:
            quoted = by_wamid.get(details.reply_to)
            bubble.quote = (quoted.text or (quoted.media.kind if quoted.media else None)) if quoted else None
        for wamid in [row.wamid, *(details.wamids or ())]:
            if wamid is not None:
                by_wamid[wamid] = bubble
        thread.append(bubble)
    for target, emoji, who, bubble in reactions:
        reacted = by_wamid.get(target)
        if reacted is None:
            if emoji:
                bubble.note = emoji
                thread.append(bubble)
            continue
        if emoji:
            reacted.reactions[who] = emoji
        else:  # an empty emoji removes the reaction
            reacted.reactions.pop(who, None)
    thread.sort(key=lambda b: b.at)
    return thread
