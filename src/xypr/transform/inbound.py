"""Meta webhook message → Open Messaging inbound request (pure: the worker looks things up and passes them in)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from xypr.whatsapp.models import (
    WaButton,
    WaContact,
    WaContactCard,
    WaContext,
    WaFlowReply,
    WaInboundMessage,
    WaInteractive,
    WaInteractiveType,
    WaLocation,
    WaMessageContent,
    WaOrder,
    WaProfile,
    WaReaction,
    WaReferral,
    WaSystemType,
    customer_id_type,
)

__all__ = [
    "MEDIA_TYPES",
    "QUOTE_MAX_CHARS",
    "GenesysInbound",
    "InboundFacts",
    "QuickReply",
    "ReferencedMessage",
    "StoredMedia",
    "customer_party",
    "genesys_time",
    "maps_link",
    "media_noun",
    "message_facts",
    "message_summary",
    "quote",
    "referenced_wamid",
    "to_genesys_inbound",
]

MEDIA_TYPES = frozenset({"image", "audio", "video", "document", "sticker"})
# Long quotes would push the customer's own words out of the agent's view.
QUOTE_MAX_CHARS = 100

_MEDIA_TYPE = {"image": "Image", "sticker": "Image", "video": "Video", "audio": "Audio", "document": "File"}


@dataclass(frozen=True, slots=True)
class QuickReply:
    """A choice we offered in an outbound message (`Message.details["quick_replies"]`)."""

    id: str
    title: str
    payload: str
    type: Literal["QuickReply", "Button"] = "QuickReply"


@dataclass(frozen=True, slots=True)
class ReferencedMessage:
    """A tracked message this one points at (reply, reaction, edit, revoke, button answer)."""

    text: str | None
    genesys_message_id: str | None = None
    quick_replies: tuple[QuickReply, ...] = ()


@dataclass(frozen=True, slots=True)
class StoredMedia:
    """Media copied into our object store, with a URL Genesys can fetch."""

    url: str
    mime_type: str
    filename: str | None = None
    sha256: str | None = None


@dataclass(frozen=True, slots=True)
class InboundFacts:
    """What the worker found out for one message; every field may be unknown."""

    referenced: ReferencedMessage | None = None
    media: StoredMedia | None = None
    # Why the media could not be copied, when it could not (shown to the agent in the note).
    media_problem: str | None = None
    # The customer's stored name, for webhooks without a `contacts` block (system messages).
    customer_name: str | None = None
    # The id Genesys knows the customer by (`Conversation.genesys_customer_id`), when not the message's
    # sender: Genesys threads on it, so a customer who changed number or BSUID stays in their conversation.
    customer_id: str | None = None


@dataclass(frozen=True, slots=True)
class GenesysInbound:
    """One Open Messaging inbound call: `message` (`…/inbound/open/message`) or `structured` (a button answer)."""

    kind: Literal["message", "structured"]
    body: dict[str, Any] = field(default_factory=dict)


def genesys_time(unix_seconds: str | float) -> str:
    """Meta's Unix-seconds timestamp as the ISO-8601 UTC form Genesys requires (`…T…:…:….000Z`)."""
    moment = datetime.fromtimestamp(float(unix_seconds), tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def customer_party(
    message: WaInboundMessage, contact: WaContact | None, customer_id: str | None = None
) -> dict[str, Any]:
    """`channel.from` for a customer: `customer_id`, the id Genesys knows the customer by, when given;
    else the message's sender (the phone number when known, else the BSUID). A phone number is told as
    `Phone`, a BSUID as `Opaque`."""
    key = customer_id or message.customer_key
    if key is None:
        raise ValueError("message has neither `from` nor `from_user_id`")
    party: dict[str, Any] = {"id": key, "idType": customer_id_type(key)}
    name = contact.profile.name if contact and contact.profile else None
    username = contact.profile.username if contact and contact.profile else None
    if name:
        party["nickname"] = name
        first, _, last = name.strip().partition(" ")
        party["firstName"] = first
        if last.strip():
            party["lastName"] = last.strip()
    elif username:
        party["nickname"] = username
    return party


def referenced_wamid(message: WaInboundMessage) -> str | None:
    """The wamid this message points at: reacted to, edited, deleted, or replied to."""
    if message.type == "reaction" and message.reaction:
        return message.reaction.message_id
    if message.type == "edit" and message.edit:
        return message.edit.original_message_id
    if message.type == "revoke" and message.revoke:
        return message.revoke.original_message_id
    return message.context.id if message.context else None


def quote(text: str | None) -> str | None:
    """A message's text as a one-line quote, cut at `QUOTE_MAX_CHARS`."""
    if not text:
        return None
    flat = " ".join(text.split())
    if not flat:
        return None
    if len(flat) > QUOTE_MAX_CHARS:
        cut = flat[: QUOTE_MAX_CHARS - 1]
        if flat[QUOTE_MAX_CHARS - 1] != " " and " " in cut[QUOTE_MAX_CHARS // 2 :]:
            cut = cut[: cut.rfind(" ")]  # end on a whole word when one is near
        flat = cut.rstrip() + "…"
    return f'"{flat}"'


def maps_link(latitude: float, longitude: float) -> str:
    """A Google Maps link to a point (the documented `maps/search` URL form)."""
    return f"https://www.google.com/maps/search/?api=1&query={latitude},{longitude}"


def media_noun(kind: str, *, voice: bool = False) -> str:
    """How the agent is told about a media message: `an image`, `a voice message`, …"""
    if kind == "audio":
        return "a voice message" if voice else "an audio file"
    return {"image": "an image", "video": "a video", "document": "a document", "sticker": "a sticker"}.get(
        kind, f"a {kind} file"
    )


def message_summary(message: WaMessageContent) -> str | None:
    """A short text of what the message says, kept in state so later replies and reactions can quote it."""
    media = message.media
    if media is not None:
        if media.caption:
            return media.caption
        if message.type == "document" and media.filename:
            return f"[document: {media.filename}]"
        return "[" + media_noun(message.type, voice=bool(media.voice)).split(" ", 1)[1] + "]"
    if message.type == "text" and message.text:
        return message.text.body
    if message.type == "location" and message.location:
        place = message.location.name or message.location.address
        return f"📍 {place}" if place else "📍 location"
    if message.type == "contacts" and message.contacts:
        return "👤 " + ", ".join(_card_name(card) for card in message.contacts)
    if message.type == "interactive" and message.interactive:
        choice = message.interactive.button_reply or message.interactive.list_reply
        if choice:
            return choice.title or choice.id
    if message.type == "button" and message.button:
        return message.button.text or message.button.payload
    if message.type == "order" and message.order:
        return f"🛒 order of {len(message.order.product_items)} item(s)"
    if isinstance(message, WaInboundMessage) and message.type == "edit" and message.edit and message.edit.message:
        return message_summary(message.edit.message)
    return None


def message_facts(message: WaInboundMessage) -> dict[str, Any] | None:
    """What the agent widget shows of a customer message beyond its summary: the message it replies to,
    a location's coordinates, a reaction's target and emoji (kept in `messages.details`)."""
    facts: dict[str, Any] = {}
    if message.type == "reaction" and message.reaction and message.reaction.message_id:
        facts["reaction"] = {"messageId": message.reaction.message_id, "emoji": message.reaction.emoji or ""}
    elif message.context and message.context.id:
        facts["replyTo"] = message.context.id
    place = message.location if message.type == "location" else None
    if place is not None and place.latitude is not None and place.longitude is not None:
        facts["location"] = {
            "latitude": place.latitude,
            "longitude": place.longitude,
            "name": place.name,
            "address": place.address,
        }
    return facts or None


def to_genesys_inbound(
    message: WaInboundMessage, contact: WaContact | None, facts: InboundFacts | None = None
) -> GenesysInbound:
    """The Open Messaging request for one WhatsApp message: a structured button answer or a message."""
    facts = facts or InboundFacts()
    if contact is None and facts.customer_name:
        contact = WaContact(profile=WaProfile(name=facts.customer_name))
    channel = {
        "messageId": message.id,
        "from": customer_party(message, contact, facts.customer_id),
        "time": genesys_time(message.timestamp),
    }
    answer = _quick_reply_answer(message, facts.referenced)
    if answer is not None:
        body: dict[str, Any] = {
            "channel": channel,
            "type": "Structured",
            "content": [
                {
                    "contentType": "ButtonResponse",
                    "buttonResponse": {"type": answer.type, "text": answer.title, "payload": answer.payload},
                }
            ],
        }
        if facts.referenced and facts.referenced.genesys_message_id:
            body["originatingMessageId"] = facts.referenced.genesys_message_id
        return GenesysInbound("structured", body)

    lines = list(_preamble(message, facts))
    content_lines, attachment = _content(message, facts)
    lines.extend(content_lines)
    body = {"channel": channel}
    text = "\n".join(lines)
    if text:
        body["text"] = text
    if attachment is not None:
        body["content"] = [{"contentType": "Attachment", "attachment": attachment}]
    if "text" not in body and "content" not in body:
        # Genesys refuses a message with neither; the agent must still see that something arrived.
        body["text"] = f"[The customer sent a {message.type} message with no content.]"
    return GenesysInbound("message", body)


# -- the parts of a message --------------------------------------------------------------------------------------------


def _quick_reply_answer(message: WaInboundMessage, referenced: ReferencedMessage | None) -> QuickReply | None:
    """The quick reply of ours the customer chose, when this message answers one we sent."""
    if referenced is None or not referenced.quick_replies:
        return None
    chosen: set[str] = set()
    by_payload = False
    if message.type == "interactive" and message.interactive:
        choice = message.interactive.button_reply or message.interactive.list_reply
        if choice is not None:
            chosen.add(choice.id)
    elif message.type == "button" and message.button and message.button.payload:
        # Template quick-reply buttons echo the payload we set when sending the template.
        chosen.add(message.button.payload)
        by_payload = True
    for offered in referenced.quick_replies:
        if offered.id in chosen or (by_payload and offered.payload in chosen):
            return offered
    return None


def _preamble(message: WaInboundMessage, facts: InboundFacts) -> Iterator[str]:
    """Lines that put the message in context: forwarding, the ad clicked, the product, the message replied to."""
    context = message.context
    if context and context.frequently_forwarded:
        yield "[Forwarded many times]"
    elif context and context.forwarded:
        yield "[Forwarded]"
    if message.referral:
        yield _referral_line(message.referral)
    if context and context.referred_product and context.referred_product.product_retailer_id:
        product = context.referred_product
        catalog = f" (catalog {product.catalog_id})" if product.catalog_id else ""
        yield f"🛍 About product {product.product_retailer_id}{catalog}"
    if message.type not in ("reaction", "edit", "revoke") and _replies(context):
        quoted = quote(facts.referenced.text) if facts.referenced else None
        if quoted:
            yield f"↪ Replying to: {quoted}"


def _replies(context: WaContext | None) -> bool:
    return bool(context and context.id)


def _referral_line(referral: WaReferral) -> str:
    source = referral.source_type or "ad"
    article = "an" if source[:1].lower() in "aeiou" else "a"
    parts = [f"📣 Came from {article} {source}"]
    details = []
    if referral.headline:
        details.append(f'"{referral.headline}"')
    if referral.body:
        details.append(referral.body)
    text = parts[0] + (": " + " — ".join(details) if details else "")
    if referral.source_url:
        text += f" ({referral.source_url})"
    return text


def _content(message: WaInboundMessage, facts: InboundFacts) -> tuple[list[str], dict[str, Any] | None]:
    """The message's own lines, and its attachment when it has one."""
    kind = message.type
    if kind in MEDIA_TYPES:
        return _media_content(message, facts)
    if kind == "text":
        return ([message.text.body] if message.text and message.text.body else []), None
    if kind == "location" and message.location:
        return _location_lines(message.location), None
    if kind == "contacts" and message.contacts:
        return _contacts_lines(message.contacts), None
    if kind == "interactive" and message.interactive:
        return _interactive_lines(message.interactive), None
    if kind == "button" and message.button:
        return [_button_line(message.button)], None
    if kind == "reaction" and message.reaction:
        return [_reaction_line(message.reaction, facts)], None
    if kind == "order" and message.order:
        return _order_lines(message.order), None
    if kind == "system":
        return [_system_line(message, facts)], None
    if kind == "edit":
        return _edit_lines(message, facts), None
    if kind == "revoke":
        quoted = quote(facts.referenced.text) if facts.referenced else None
        return [f"🗑 The customer deleted a message: {quoted}" if quoted else "🗑 The customer deleted a message."], None
    if kind == "request_welcome":
        return ["[The customer opened the chat.]"], None
    return [_unsupported_line(message)], None


def _media_content(message: WaInboundMessage, facts: InboundFacts) -> tuple[list[str], dict[str, Any] | None]:
    media = message.media
    caption = media.caption if media and media.caption else None
    stored = facts.media
    if media is None or stored is None:
        noun = media_noun(message.type, voice=bool(media and media.voice))
        problem = f" ({facts.media_problem})" if facts.media_problem else ""
        note = f"[The customer sent {noun} that could not be retrieved from WhatsApp{problem}.]"
        return [note, *([caption] if caption else [])], None
    attachment: dict[str, Any] = {"mediaType": _MEDIA_TYPE[message.type], "url": stored.url, "mime": stored.mime_type}
    if stored.filename:
        attachment["filename"] = stored.filename
    if caption:
        attachment["text"] = caption
    if stored.sha256:
        attachment["sha256"] = stored.sha256
    return ([caption] if caption else []), attachment


def _location_lines(location: WaLocation) -> list[str]:
    lines = [f"📍 Location: {location.name}" if location.name else "📍 Location"]
    if location.address:
        lines.append(location.address)
    if location.url:
        lines.append(location.url)
    if location.latitude is not None and location.longitude is not None:
        lines.append(f"{location.latitude}, {location.longitude}")
        lines.append(maps_link(location.latitude, location.longitude))
    return lines


def _card_name(card: WaContactCard) -> str:
    name = card.name
    if name is None:
        return "(no name)"
    if name.formatted_name:
        return name.formatted_name
    parts = [name.prefix, name.first_name, name.middle_name, name.last_name, name.suffix]
    return " ".join(part for part in parts if part) or "(no name)"


def _labelled(label: str, kind: str | None) -> str:
    return f"{label} ({kind})" if kind else label


def _contacts_lines(cards: list[WaContactCard]) -> list[str]:
    lines: list[str] = []
    for index, card in enumerate(cards):
        if index:
            lines.append("")
        lines.append(f"👤 Contact: {_card_name(card)}")
        if card.org:
            organisation = ", ".join(part for part in (card.org.company, card.org.department, card.org.title) if part)
            if organisation:
                lines.append(f"Organisation: {organisation}")
        for phone in card.phones:
            if phone.phone or phone.wa_id:
                on_whatsapp = " · on WhatsApp" if phone.wa_id else ""
                lines.append(f"{_labelled('Phone', phone.type)}: {phone.phone or '+' + str(phone.wa_id)}{on_whatsapp}")
        lines.extend(f"{_labelled('Email', email.type)}: {email.email}" for email in card.emails if email.email)
        lines.extend(f"{_labelled('Web', url.type)}: {url.url}" for url in card.urls if url.url)
        for address in card.addresses:
            where = ", ".join(
                part for part in (address.street, address.city, address.state, address.zip, address.country) if part
            )
            if where:
                lines.append(f"{_labelled('Address', address.type)}: {where}")
        if card.birthday:
            lines.append(f"Birthday: {card.birthday}")
    return lines


def _interactive_lines(interactive: WaInteractive) -> list[str]:
    choice = interactive.button_reply or interactive.list_reply
    if interactive.type in (WaInteractiveType.BUTTON_REPLY, WaInteractiveType.LIST_REPLY) and choice is not None:
        title = choice.title or choice.id
        return [f"Selected: {title} — {choice.description}" if choice.description else f"Selected: {title}"]
    if interactive.type is WaInteractiveType.NFM_REPLY and interactive.nfm_reply is not None:
        return _flow_lines(interactive.nfm_reply)
    return [f"[The customer answered with an interactive {interactive.type} reply, which cannot be shown here.]"]


def _flow_lines(reply: WaFlowReply) -> list[str]:
    header = "📋 Address" if reply.name == "address_message" else "📋 Form answers"
    if reply.name and reply.name not in ("flow", "address_message"):
        header += f" ({reply.name})"
    try:
        answers = json.loads(reply.response_json) if reply.response_json else None
    except ValueError:
        answers = None
    if not isinstance(answers, dict):
        raw = (reply.response_json or reply.body or "").strip()
        return [header, raw[:1000]] if raw else [header]
    return [header, *(f"{key}: {value}" for key, value in _flatten(answers))]


def _flatten(answers: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for key, value in answers.items():
        if key == "flow_token":
            continue  # our own correlation token, meaningless to the agent
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flatten(value, prefix=f"{name}.")
        elif isinstance(value, list):
            yield name, ", ".join(_scalar(item) for item in value)
        else:
            yield name, _scalar(value)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _button_line(button: WaButton) -> str:
    text = button.text or button.payload or ""
    if button.payload and button.payload != text:
        return f"Selected: {text} (payload: {button.payload})"
    return f"Selected: {text}"


def _reaction_line(reaction: WaReaction, facts: InboundFacts) -> str:
    quoted = quote(facts.referenced.text) if facts.referenced else None
    if reaction.emoji:
        return f"Reacted {reaction.emoji} to: {quoted}" if quoted else f"Reacted {reaction.emoji} to a message"
    return f"Removed their reaction to: {quoted}" if quoted else "Removed their reaction to a message"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def _order_lines(order: WaOrder) -> list[str]:
    catalog = f" from catalog {order.catalog_id}" if order.catalog_id else ""
    lines = [f"🛒 Order{catalog}:"]
    if order.text:
        lines.append(order.text)
    currencies = set()
    total = 0.0
    priced = True
    for item in order.product_items:
        line = f"• {_number(item.quantity)} x {item.product_retailer_id}"
        if item.item_price is not None:
            line += f" — {_number(item.item_price)} {item.currency or ''}".rstrip() + " each"
            total += item.item_price * item.quantity
            currencies.add(item.currency)
        else:
            priced = False
        lines.append(line)
    if order.product_items and priced and len(currencies) == 1:
        (currency,) = currencies
        lines.append(f"Total: {_number(total)} {currency or ''}".rstrip())
    return lines


def _system_line(message: WaInboundMessage, facts: InboundFacts) -> str:
    system = message.system
    before = message.customer_key or facts.customer_id
    if system and system.type is WaSystemType.USER_CHANGED_NUMBER and (system.wa_id or system.user_id):
        new = system.wa_id or system.user_id
        old = f" from {before}" if before else ""
        return f"[The customer changed their WhatsApp number{old} to {new}. Their new messages come from {new}.]"
    if system and system.type is WaSystemType.USER_CHANGED_USER_ID and system.user_id:
        # No phone number in this notice: the customer's WhatsApp user id (BSUID) is all that changed.
        previous = system.previous_user_id or before
        changed = f"changed from {previous} to {system.user_id}" if previous else f"changed to {system.user_id}"
        return f"[The customer's WhatsApp user id {changed}.]"
    if system and system.body:
        return f"[WhatsApp: {system.body}]"
    return "[WhatsApp sent a system notice about this customer.]"


def _edit_lines(message: WaInboundMessage, facts: InboundFacts) -> list[str]:
    new = message_summary(message.edit.message) if message.edit and message.edit.message else None
    quoted = quote(facts.referenced.text) if facts.referenced else None
    lines = ["✏️ The customer edited a message."]
    if quoted:
        lines.append(f"Before: {quoted}")
    lines.append(f"Now: {new}" if new else "Now: (no text)")
    return lines


def _unsupported_line(message: WaInboundMessage) -> str:
    error = message.errors[0] if message.errors else None
    reason = ""
    if error is not None:
        title = (error.title or error.message or "").rstrip(". ")
        details = (error.explanation or "").rstrip(". ")
        reason = " — ".join(part for part in (title, details if details != title else "") if part)
    if message.type in ("unsupported", "unknown"):
        what = "[The customer sent a message that WhatsApp cannot deliver to this channel"
    else:
        what = f"[The customer sent a {message.type} message, which cannot be shown here"
    return f"{what} ({reason}).]" if reason else f"{what}.]"
