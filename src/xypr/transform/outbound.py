"""Open Messaging outbound message → Graph API send bodies (pure: no I/O, no clock, no randomness)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationError

from xypr.genesys.content import (
    Attachment,
    Card,
    CardAction,
    ContentItem,
    DatePicker,
    ListPicker,
    Location,
    NotificationTemplate,
    QuickReply,
    TemplateParameter,
)
from xypr.genesys.models import GenesysOutbound
from xypr.whatsapp.mediatypes import media_kind, mime_of
from xypr.whatsapp.models import is_bsuid

__all__ = [
    "BUTTONS_MAX",
    "BUTTON_TITLE_MAX",
    "CAPTION_MAX",
    "LIST_ROWS_MAX",
    "MAX_TEXT",
    "ROW_TITLE_MAX",
    "AttachmentSource",
    "OutboundPlan",
    "QuickReplyChoice",
    "TemplateButtonParameter",
    "TemplateHeaderMedia",
    "UnsupportedOutbound",
    "is_template_message",
    "mark_read",
    "plan_outbound",
    "recipient",
    "split_text",
    "template_send",
    "typing_indicator",
]

# WhatsApp limits (contracts README, "Send").
MAX_TEXT = 4096
CAPTION_MAX = 1024
INTERACTIVE_BODY_MAX = 1024
HEADER_MAX = 60
BUTTONS_MAX = 3
BUTTON_TITLE_MAX = 20
LIST_ROWS_MAX = 10
ROW_TITLE_MAX = 24
ROW_DESCRIPTION_MAX = 72
SECTION_TITLE_MAX = 24
LIST_BUTTON_MAX = 20
CTA_TEXT_MAX = 20

_URL = re.compile(r"https?://", re.I)
_CHOOSE = "Please choose an option."


class UnsupportedOutbound(ValueError):
    """A Genesys message this bridge cannot turn into a WhatsApp send; `reason` is the receipt reason code."""

    def __init__(self, message: str, reason: str = "UnsupportedMessage") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class QuickReplyChoice:
    """A choice offered as a reply button or list row: the id we gave it, its title, the Genesys payload."""

    id: str
    title: str
    payload: str

    def as_dict(self) -> dict[str, str]:
        """The `Message.details["quick_replies"]` item the inbound path maps answers back with."""
        return {"id": self.id, "title": self.title, "payload": self.payload}


@dataclass(frozen=True, slots=True)
class AttachmentSource:
    """An agent attachment to fetch from Genesys and upload to Meta before send number `part` goes."""

    part: int
    url: str
    mime_type: str
    whatsapp_type: str
    max_bytes: int
    filename: str | None


@dataclass(frozen=True, slots=True)
class OutboundPlan:
    """What one Genesys message becomes: Graph `/messages` bodies in order, plus what they depend on."""

    sends: list[dict[str, Any]]
    quick_replies: list[QuickReplyChoice] = field(default_factory=list)
    attachment: AttachmentSource | None = None
    is_template: bool = False


@dataclass(frozen=True, slots=True)
class TemplateHeaderMedia:
    """A template's media header, sent by link (`image`, `video` or `document`)."""

    type: Literal["image", "video", "document"]
    link: str
    filename: str | None = None


@dataclass(frozen=True, slots=True)
class TemplateButtonParameter:
    """A value for a template button: a quick reply's payload or a dynamic URL's suffix."""

    index: int
    sub_type: Literal["quick_reply", "url"]
    value: str


# -- small pieces --------------------------------------------------------------------------------------


def recipient(to: str, id_type: str | None) -> dict[str, str]:
    """How a send addresses the customer: a BSUID with `recipient`, a phone number with `to`."""
    if id_type == "Opaque" or is_bsuid(to):
        return {"recipient": to}
    return {"to": to}


def _envelope(to: dict[str, str], kind: str, content: Any) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "recipient_type": "individual", **to, "type": kind, kind: content}


def _trim(text: str, limit: int) -> str:
    """`text` on one line within `limit` characters, ending with an ellipsis when it was cut."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _clip(text: str, limit: int) -> str:
    """Multi-line `text` within `limit` characters (line breaks kept)."""
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _unique_titles(titles: Sequence[str], limit: int) -> list[str]:
    # WhatsApp refuses two buttons with the same title, which trimming can produce.
    result: list[str] = []
    for title in titles:
        candidate, number = title, 1
        while candidate in result:
            number += 1
            suffix = f" ({number})"
            candidate = _trim(title, limit - len(suffix)) + suffix
        result.append(candidate)
    return result


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Cut `text` into pieces of at most `limit` characters, on white space where possible, in order."""
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = rest.rfind(" ", 0, limit + 1)
        if cut <= 0:
            cut = rest.rfind("\n", 0, limit + 1)
        if cut <= 0:
            cut = limit
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest or not pieces:
        pieces.append(rest)
    return pieces


def _texts(to: dict[str, str], text: str) -> list[dict[str, Any]]:
    return [
        _envelope(to, "text", {"body": piece, "preview_url": bool(_URL.search(piece))})
        for piece in split_text(text)
        if piece
    ]


def typing_indicator(wamid: str) -> dict[str, Any]:
    """Show "typing…" on the customer's message `wamid` (also marks it read; shown up to 25 s)."""
    return {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": wamid,
        "typing_indicator": {"type": "text"},
    }


def mark_read(wamid: str) -> dict[str, Any]:
    """Mark the customer's message `wamid` (and the earlier ones) as read."""
    return {"messaging_product": "whatsapp", "status": "read", "message_id": wamid}


# -- interactive forms ---------------------------------------------------------------------------------


def _choice_id(message_id: str, number: int) -> str:
    # Deterministic (a Genesys retry produces the same ids) and unique per message.
    return f"qr.{message_id}.{number}"


def _prompt(to: dict[str, str], text: str) -> tuple[list[dict[str, Any]], str]:
    """Texts to send before an interactive message, and its body (WhatsApp: at most 1024 characters)."""
    text = text.strip()
    if not text:
        return [], _CHOOSE
    if len(text) <= INTERACTIVE_BODY_MAX:
        return [], text
    return _texts(to, text), _CHOOSE


def _buttons(
    to: dict[str, str], body: str, choices: list[QuickReplyChoice], *, header: dict[str, Any] | None = None
) -> dict[str, Any]:
    titles = _unique_titles([_trim(c.title, BUTTON_TITLE_MAX) for c in choices], BUTTON_TITLE_MAX)
    interactive: dict[str, Any] = {"type": "button"}
    if header:
        interactive["header"] = header
    interactive["body"] = {"text": body}
    interactive["action"] = {
        "buttons": [{"type": "reply", "reply": {"id": c.id, "title": t}} for c, t in zip(choices, titles, strict=True)]
    }
    return _envelope(to, "interactive", interactive)


@dataclass(frozen=True, slots=True)
class _Row:
    choice: QuickReplyChoice
    description: str | None = None


def _list(
    to: dict[str, str],
    body: str,
    sections: list[tuple[str | None, list[_Row]]],
    *,
    button: str | None = None,
    header: str | None = None,
) -> dict[str, Any]:
    named = len(sections) > 1
    wire_sections = []
    for number, (title, rows) in enumerate(sections, start=1):
        titles = _unique_titles([_trim(row.choice.title, ROW_TITLE_MAX) for row in rows], ROW_TITLE_MAX)
        wire_rows = []
        for row, row_title in zip(rows, titles, strict=True):
            wire_row = {"id": row.choice.id, "title": row_title}
            # A title cut to 24 characters keeps its full wording in the description.
            description = row.description or (row.choice.title if row_title != row.choice.title else None)
            if description:
                wire_row["description"] = _trim(description, ROW_DESCRIPTION_MAX)
            wire_rows.append(wire_row)
        section: dict[str, Any] = {"rows": wire_rows}
        if title or named:
            section["title"] = _trim(title or f"Options {number}", SECTION_TITLE_MAX)
        wire_sections.append(section)
    interactive: dict[str, Any] = {"type": "list"}
    if header:
        interactive["header"] = {"type": "text", "text": _trim(header, HEADER_MAX)}
    interactive["body"] = {"text": body}
    interactive["action"] = {"button": _trim(button or "Choose", LIST_BUTTON_MAX), "sections": wire_sections}
    return _envelope(to, "interactive", interactive)


def _numbered(text: str, options: Sequence[str]) -> str:
    lines = [f"{number}. {option}" for number, option in enumerate(options, start=1)]
    return "\n".join(part for part in (text.strip(), "\n".join(lines)) if part)


def _choices(message_id: str, replies: Sequence[QuickReply], start: int = 0) -> list[QuickReplyChoice]:
    return [
        QuickReplyChoice(_choice_id(message_id, start + n), r.text, r.payload if r.payload is not None else r.text)
        for n, r in enumerate(replies)
    ]


def _quick_replies(message_id: str, to: dict[str, str], text: str, replies: Sequence[QuickReply]) -> OutboundPlan:
    choices = _choices(message_id, replies)
    if len(choices) > LIST_ROWS_MAX:
        # WhatsApp has no interactive form for more than ten choices: a numbered list the customer answers.
        return OutboundPlan(_texts(to, _numbered(text, [c.title for c in choices])))
    before, body = _prompt(to, text)
    if len(choices) <= BUTTONS_MAX:
        return OutboundPlan([*before, _buttons(to, body, choices)], choices)
    rows = [_Row(choice) for choice in choices]
    return OutboundPlan([*before, _list(to, body, [(None, rows)])], choices)


def _action_kind(action: CardAction) -> str | None:
    kind = (action.type or "").lower()
    if kind == "link" or (not kind and action.url and not action.payload):
        return "link" if action.url else None
    return "postback" if action.text or action.payload else None


def _card_sends(
    message_id: str, to: dict[str, str], card: Card, start: int
) -> tuple[list[dict[str, Any]], list[QuickReplyChoice]]:
    title = (card.title or "").strip()
    description = (card.description or "").strip()
    links = [a for a in card.actions if _action_kind(a) == "link"]
    postbacks = [a for a in card.actions if _action_kind(a) == "postback"]
    image_header = (
        {"type": "image", "image": {"link": card.image}} if (card.image or "").startswith("https://") else None
    )
    text = "\n".join(part for part in (f"*{title}*" if title and description else title, description) if part)
    choices = [
        QuickReplyChoice(_choice_id(message_id, start + n), a.text or a.payload or "", a.payload or a.text or "")
        for n, a in enumerate(postbacks)
    ]
    # Link buttons do not fit beside reply buttons or list rows: their URLs go into the body text.
    body = "\n".join([text, *(f"{a.text or a.url}: {a.url}" for a in links)]).strip() or _CHOOSE
    if 1 <= len(choices) <= BUTTONS_MAX:
        return [_buttons(to, _clip(body, INTERACTIVE_BODY_MAX), choices, header=image_header)], choices
    if BUTTONS_MAX < len(choices) <= LIST_ROWS_MAX:
        return [_list(to, _clip(body, INTERACTIVE_BODY_MAX), [(None, [_Row(c) for c in choices])])], choices
    if not choices and len(links) == 1:
        link = links[0]
        interactive: dict[str, Any] = {"type": "cta_url"}
        if image_header:
            interactive["header"] = image_header
        interactive["body"] = {"text": _clip(text or link.text or link.url or "", INTERACTIVE_BODY_MAX)}
        interactive["action"] = {
            "name": "cta_url",
            "parameters": {"display_text": _trim(link.text or "Open", CTA_TEXT_MAX), "url": link.url},
        }
        return [_envelope(to, "interactive", interactive)], []
    # Readable fallback: the card as text, its buttons as a numbered list, its links spelled out.
    options = [a.text or a.payload or "" for a in postbacks]
    lines = [_numbered(text, options), *(f"{a.text or a.url}: {a.url}" for a in links)]
    if card.image:
        lines.append(card.image)
    fallback = "\n".join(line for line in lines if line)
    if not fallback:
        raise UnsupportedOutbound("an empty card (no title, description or actions)", "InvalidMessageStructure")
    return _texts(to, fallback), []


def _list_picker(message_id: str, to: dict[str, str], text: str, picker: ListPicker) -> OutboundPlan:
    prompt = picker.received_message
    sections: list[tuple[str | None, list[_Row]]] = []
    choices: list[QuickReplyChoice] = []
    for section in picker.sections:
        rows = []
        for item in section.items:
            title = (item.title or item.id or "").strip()
            if not title:
                continue
            choice = QuickReplyChoice(_choice_id(message_id, len(choices)), title, item.id or title)
            choices.append(choice)
            rows.append(_Row(choice, item.subtitle))
        if rows:
            sections.append((section.title, rows))
    if not choices:
        raise UnsupportedOutbound("a list picker without items", "InvalidMessageStructure")
    intro = "\n".join(p for p in (prompt.title if prompt else None, prompt.subtitle if prompt else None, text) if p)
    if len(choices) > LIST_ROWS_MAX:
        return OutboundPlan(_texts(to, _numbered(intro, [c.title for c in choices])))
    before, body = _prompt(to, intro)
    header = prompt.header if prompt else None
    button = prompt.button_label if prompt else None
    return OutboundPlan([*before, _list(to, body, sections, button=button, header=header)], choices)


def _slot_title(moment: str) -> str:
    try:
        parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    except ValueError:
        return moment
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%a %d %b %H:%M UTC")


def _date_picker(message_id: str, to: dict[str, str], text: str, picker: DatePicker) -> OutboundPlan:
    intro = "\n".join(p for p in (picker.title, picker.subtitle, text) if p)
    slots = [slot for slot in picker.available_times if slot.date_time]
    if 1 <= len(slots) <= LIST_ROWS_MAX:
        rows = []
        for number, slot in enumerate(slots):
            title = _slot_title(slot.date_time or "")
            minutes = f"{slot.duration // 60} min" if slot.duration else None
            rows.append(_Row(QuickReplyChoice(_choice_id(message_id, number), title, slot.date_time or ""), minutes))
        before, body = _prompt(to, intro)
        return OutboundPlan([*before, _list(to, body, [(None, rows)], button="Pick a time")], [r.choice for r in rows])
    lines = [intro]
    if slots:
        lines.append(_numbered("Available times:", [_slot_title(s.date_time or "") for s in slots]))
    elif picker.date_minimum or picker.date_maximum:
        lines.append(
            f"Please answer with a date between {picker.date_minimum or '…'} and {picker.date_maximum or '…'}."
        )
    if picker.location and (picker.location.address or picker.location.text):
        lines.append(picker.location.address or picker.location.text or "")
    fallback = "\n".join(line for line in lines if line)
    if not fallback:
        raise UnsupportedOutbound("a date picker without title or times", "InvalidMessageStructure")
    return OutboundPlan(_texts(to, fallback))


def _location(to: dict[str, str], text: str, location: Location) -> OutboundPlan:
    if location.latitude is None or location.longitude is None:
        described = "\n".join(p for p in (text, location.text, location.address, location.url) if p)
        if not described:
            raise UnsupportedOutbound("a location without coordinates", "InvalidMessageStructure")
        return OutboundPlan(_texts(to, described))
    place: dict[str, Any] = {"latitude": location.latitude, "longitude": location.longitude}
    if location.text:
        place["name"] = location.text
    if location.address:
        place["address"] = location.address
    sends = [_envelope(to, "location", place)]
    return OutboundPlan([*_texts(to, text), *sends] if text.strip() else sends)


# -- attachments ---------------------------------------------------------------------------------------


def _attachment(to: dict[str, str], text: str, attachment: Attachment) -> OutboundPlan:
    if not attachment.url:
        raise UnsupportedOutbound("the attachment has no URL", "InvalidMessageStructure")
    if (attachment.media_type or "").lower() == "link":
        return OutboundPlan(_texts(to, "\n".join(p for p in (text.strip(), attachment.url) if p)))
    mime = mime_of(attachment.mime, attachment.filename)
    kind = media_kind(mime)
    if mime is None or kind is None:
        raise UnsupportedOutbound(
            f"WhatsApp does not accept {mime or 'attachments of unknown type'} "
            "(images: jpeg/png; audio: aac/amr/mpeg/mp4/ogg; video: mp4/3gpp; stickers: webp; common documents)",
            "MediaTypeNotAllowed",
        )
    if attachment.content_size_bytes is not None and attachment.content_size_bytes > kind.max_bytes:
        raise UnsupportedOutbound(
            f"the attachment has {attachment.content_size_bytes} bytes; WhatsApp takes at most "
            f"{kind.max_bytes} bytes for {mime}",
            "InvalidMediaContentLength",
        )
    caption = text.strip() or (attachment.text or "").strip()
    media: dict[str, Any] = {}
    captioned = bool(caption) and kind.takes_caption and len(caption) <= CAPTION_MAX
    if captioned:
        media["caption"] = caption
    if kind.whatsapp_type == "document" and attachment.filename:
        media["filename"] = attachment.filename
    sends = [_envelope(to, kind.whatsapp_type, media)]
    if caption and not captioned:
        # Too long for a caption, or a type without one: the words follow the file.
        sends += _texts(to, caption)
    source = AttachmentSource(0, attachment.url, mime, kind.whatsapp_type, kind.max_bytes, attachment.filename)
    return OutboundPlan(sends, attachment=source)


# -- templates -----------------------------------------------------------------------------------------


def _text_parameter(parameter: TemplateParameter) -> dict[str, Any]:
    value: dict[str, Any] = {"type": "text", "text": parameter.text}
    # Named placeholders ({{order_id}}) need their name; positional ones ({{1}}) are matched by order.
    if parameter.name and not parameter.name.isdigit():
        value["parameter_name"] = parameter.name
    return value


def template_send(
    to: dict[str, str],
    *,
    name: str,
    language: str,
    header_parameters: Sequence[TemplateParameter] = (),
    header_media: TemplateHeaderMedia | None = None,
    body_parameters: Sequence[TemplateParameter] = (),
    buttons: Sequence[TemplateButtonParameter] = (),
) -> dict[str, Any]:
    """A template send (send-template-*.json): header, body and button components in WhatsApp's order."""
    components: list[dict[str, Any]] = []
    if header_media is not None:
        media: dict[str, Any] = {"link": header_media.link}
        if header_media.type == "document" and header_media.filename:
            media["filename"] = header_media.filename
        components.append({"type": "header", "parameters": [{"type": header_media.type, header_media.type: media}]})
    elif header_parameters:
        components.append({"type": "header", "parameters": [_text_parameter(p) for p in header_parameters]})
    if body_parameters:
        components.append({"type": "body", "parameters": [_text_parameter(p) for p in body_parameters]})
    for button in sorted(buttons, key=lambda b: b.index):
        parameter = (
            {"type": "payload", "payload": button.value}
            if button.sub_type == "quick_reply"
            else {"type": "text", "text": button.value}
        )
        components.append(
            {"type": "button", "sub_type": button.sub_type, "index": str(button.index), "parameters": [parameter]}
        )
    template: dict[str, Any] = {"name": name, "language": {"code": language}}
    if components:
        template["components"] = components
    return _envelope(to, "template", template)


def _header_media(media: Attachment) -> TemplateHeaderMedia:
    if not media.url:
        raise UnsupportedOutbound("the template's media header has no URL", "InvalidMessageStructure")
    declared = (media.media_type or "").lower()
    if declared in ("image", "video"):
        return TemplateHeaderMedia("image" if declared == "image" else "video", media.url)
    kind = media_kind(mime_of(media.mime, media.filename))
    if kind is not None and kind.whatsapp_type in ("image", "video"):
        return TemplateHeaderMedia("image" if kind.whatsapp_type == "image" else "video", media.url)
    return TemplateHeaderMedia("document", media.url, media.filename)


def _notification(to: dict[str, str], template: NotificationTemplate) -> OutboundPlan:
    namespace, _, name = template.id.rpartition("@")
    if namespace.lower() == "cannedresponse":
        raise UnsupportedOutbound("Genesys canned responses are not WhatsApp templates", "InvalidMessageStructure")
    if not name:
        raise UnsupportedOutbound("the template has no name (expected namespace@name)", "InvalidMessageStructure")
    language = (template.language or "").replace("-", "_")
    if not language:
        raise UnsupportedOutbound(f"template {name} has no language", "InvalidMessageStructure")
    header = template.header
    header_media = None
    if header is not None and ((header.type or "").lower() == "media" or header.media is not None):
        if header.media is None:
            raise UnsupportedOutbound("the template's media header has no media", "InvalidMessageStructure")
        header_media = _header_media(header.media)
    buttons: list[TemplateButtonParameter] = []
    for position, button in enumerate(template.buttons):
        index = button.index if button.index is not None else position
        kind = (button.type or "").lower()
        if kind == "quickreply":
            payload = button.payload or (button.parameters[0].text if button.parameters else None)
            if payload is not None:
                buttons.append(TemplateButtonParameter(index, "quick_reply", payload))
        elif kind == "url" and button.parameters:
            # Only a dynamic URL (…/{{1}}) takes a parameter; a static URL button needs no component.
            buttons.append(TemplateButtonParameter(index, "url", button.parameters[0].text))
    send = template_send(
        to,
        name=name,
        language=language,
        header_parameters=header.parameters if header is not None and header_media is None else (),
        header_media=header_media,
        body_parameters=template.body.parameters if template.body else (),
        buttons=buttons,
    )
    return OutboundPlan([send], is_template=True)


# -- the whole message ---------------------------------------------------------------------------------

_KNOWN = frozenset(
    {
        "Attachment",
        "QuickReply",
        "QuickReplyV2",
        "Notification",
        "Card",
        "Carousel",
        "ListPicker",
        "DatePicker",
        "Location",
    }
)


def _items(message: GenesysOutbound) -> list[ContentItem]:
    try:
        return [ContentItem.model_validate(item) for item in message.content]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise UnsupportedOutbound(
            f"malformed content item ({where}: {first['msg']})", "InvalidMessageStructure"
        ) from exc


def is_template_message(message: GenesysOutbound) -> bool:
    """True for a `Notification` (template) message: the only kind allowed outside the 24-hour window."""
    return any(isinstance(item, dict) and item.get("contentType") == "Notification" for item in message.content)


def plan_outbound(message: GenesysOutbound, *, to: str, id_type: str | None) -> OutboundPlan:
    """The WhatsApp form of one Genesys `Text` or `Structured` message; raises `UnsupportedOutbound`."""
    if message.type not in ("Text", "Structured"):
        raise UnsupportedOutbound(f"{message.type} messages are not sent to WhatsApp as messages")
    address = recipient(to, id_type)
    text = message.text or ""
    items = _items(message)
    kinds = [item.content_type for item in items]
    unknown = sorted(set(kinds) - _KNOWN)
    if unknown:
        raise UnsupportedOutbound(f"content of type {', '.join(unknown)} cannot be sent to WhatsApp")

    def first(kind: str) -> ContentItem:
        return next(item for item in items if item.content_type == kind)

    if "Notification" in kinds:
        template = first("Notification").template
        if template is None:
            raise UnsupportedOutbound("a Notification item without a template", "InvalidMessageStructure")
        return _notification(address, template)
    if "Attachment" in kinds:
        if len(items) > 1:
            raise UnsupportedOutbound("only one attachment per message is allowed", "InvalidMessageStructure")
        attachment = items[0].attachment
        if attachment is None:
            raise UnsupportedOutbound("an Attachment item without an attachment", "InvalidMessageStructure")
        return _attachment(address, text, attachment)
    if "QuickReply" in kinds or "QuickReplyV2" in kinds:
        replies: list[QuickReply] = []
        title = text
        for item in items:
            if item.quick_reply is not None:
                replies.append(item.quick_reply)
            elif item.quick_reply_v2 is not None:
                replies.extend(item.quick_reply_v2.actions)
                title = title or (item.quick_reply_v2.title or "")
        if not replies:
            raise UnsupportedOutbound("quick replies without choices", "InvalidMessageStructure")
        return _quick_replies(message.id, address, title, replies)
    if "Card" in kinds or "Carousel" in kinds:
        cards = [
            c for item in items for c in ([item.card] if item.card else item.carousel.cards if item.carousel else [])
        ]
        if not cards:
            raise UnsupportedOutbound("a card or carousel without cards", "InvalidMessageStructure")
        sends = _texts(address, text) if text.strip() else []
        choices: list[QuickReplyChoice] = []
        # A carousel becomes one message per card, in order: WhatsApp has no free-form carousel.
        for card in cards:
            card_sends, card_choices = _card_sends(message.id, address, card, len(choices))
            sends += card_sends
            choices += card_choices
        return OutboundPlan(sends, choices)
    if "ListPicker" in kinds:
        picker = first("ListPicker").list_picker
        if picker is None:
            raise UnsupportedOutbound("a ListPicker item without a list picker", "InvalidMessageStructure")
        return _list_picker(message.id, address, text, picker)
    if "DatePicker" in kinds:
        date_picker = first("DatePicker").date_picker
        if date_picker is None:
            raise UnsupportedOutbound("a DatePicker item without a date picker", "InvalidMessageStructure")
        return _date_picker(message.id, address, text, date_picker)
    if "Location" in kinds:
        location = first("Location").location
        if location is None:
            raise UnsupportedOutbound("a Location item without a location", "InvalidMessageStructure")
        return _location(address, text, location)
    if not text.strip():
        raise UnsupportedOutbound("a message with neither text nor content", "InvalidMessageStructure")
    return OutboundPlan(_texts(address, text))
