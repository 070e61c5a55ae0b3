"""Validation of `POST /{phone_number_id}/messages` bodies by the Cloud API's published rules and limits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xypr.sandbox.meta.errors import invalid_parameter

__all__ = ["MEDIA_TYPES", "MESSAGE_TYPES", "MarkRead", "Send", "validate_messages_body", "wa_id_of"]

MEDIA_TYPES = frozenset({"image", "audio", "video", "document", "sticker"})
_CAPTIONED = frozenset({"image", "video", "document"})
MESSAGE_TYPES = MEDIA_TYPES | {"text", "interactive", "template", "reaction", "location", "contacts"}
_INTERACTIVE_TYPES = frozenset(
    {
        "button",
        "list",
        "cta_url",
        "flow",
        "product",
        "product_list",
        "catalog_message",
        "location_request_message",
        "address_message",
        "call_permission_request",
    }
)

TEXT_MAX = 4096
CAPTION_MAX = 1024
BUTTONS_MAX = 3
BUTTON_TITLE_MAX = 20
LIST_ROWS_MAX = 10
ROW_TITLE_MAX = 24
ROW_DESCRIPTION_MAX = 72
INTERACTIVE_BODY_MAX = 1024
HEADER_FOOTER_MAX = 60
CALLBACK_DATA_MAX = 512


@dataclass(frozen=True, slots=True)
class Send:
    """A valid message send: its type and recipient (`to` phone number or `recipient` BSUID)."""

    type: str
    to: str | None
    recipient: str | None
    callback_data: str | None

    @property
    def recipient_key(self) -> str:
        """The customer key: digits of `to`, else the BSUID."""
        if self.to is not None:
            return wa_id_of(self.to)
        return self.recipient or ""


@dataclass(frozen=True, slots=True)
class MarkRead:
    """A mark-as-read request, optionally showing the typing indicator."""

    message_id: str
    typing_indicator: bool


def wa_id_of(phone: str) -> str:
    """The WhatsApp id of a phone number as Meta normalises it: its digits."""
    return "".join(ch for ch in phone if ch.isdigit())


def validate_messages_body(body: Any) -> Send | MarkRead:
    """Check a `/messages` body; raise the documented code-100 error naming the first violation."""
    if not isinstance(body, dict):
        raise invalid_parameter("The request body must be a JSON object.")
    if body.get("messaging_product") != "whatsapp":
        raise invalid_parameter("The parameter messaging_product is required and must be 'whatsapp'.")
    if "status" in body:
        return _mark_read(body)
    to = _optional_str(body, "to", "to")
    recipient = _optional_str(body, "recipient", "recipient")
    if not to and not recipient:
        raise invalid_parameter("The parameter to is required.")
    if to is not None and not wa_id_of(to):
        raise invalid_parameter("Param to must be a phone number.")
    recipient_type = body.get("recipient_type", "individual")
    if recipient_type not in ("individual", "group"):
        raise invalid_parameter("Param recipient_type must be one of {individual, group}.")
    # Meta defaults a missing type to text (contracts/meta/send-text-preview-url-request.json has none).
    message_type = body.get("type", "text")
    if message_type not in MESSAGE_TYPES:
        raise invalid_parameter(f"Param type must be one of {{{', '.join(sorted(MESSAGE_TYPES))}}}.")
    content = body.get(message_type)
    if not isinstance(content, dict) and not (message_type == "contacts" and isinstance(content, list)):
        raise invalid_parameter(f"The parameter {message_type} is required.")
    _CHECKS[message_type](message_type, content)
    context = body.get("context")
    if context is not None and not (isinstance(context, dict) and isinstance(context.get("message_id"), str)):
        raise invalid_parameter("Param context['message_id'] must be a string.")
    callback = _optional_str(body, "biz_opaque_callback_data", "biz_opaque_callback_data")
    if callback is not None and len(callback) > CALLBACK_DATA_MAX:
        raise invalid_parameter(f"Param biz_opaque_callback_data must be at most {CALLBACK_DATA_MAX} characters.")
    return Send(type=message_type, to=to, recipient=recipient, callback_data=callback)


def _mark_read(body: dict[str, Any]) -> MarkRead:
    if body.get("status") != "read":
        raise invalid_parameter("Param status must be 'read'.")
    message_id = body.get("message_id")
    if not isinstance(message_id, str) or not message_id:
        raise invalid_parameter("The parameter message_id is required.")
    typing = body.get("typing_indicator")
    if typing is not None and not (isinstance(typing, dict) and typing.get("type") == "text"):
        raise invalid_parameter("Param typing_indicator['type'] must be 'text'.")
    return MarkRead(message_id=message_id, typing_indicator=typing is not None)


def _optional_str(obj: dict[str, Any], key: str, path: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid_parameter(f"Param {path} must be a string.")
    return value


def _required_str(obj: dict[str, Any], key: str, path: str, *, max_len: int | None = None) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise invalid_parameter(f"The parameter {path} is required.")
    _check_len(value, path, max_len)
    return value


def _check_len(value: str, path: str, max_len: int | None) -> None:
    if max_len is not None and len(value) > max_len:
        raise invalid_parameter(f"Param {path} must be at most {max_len} characters long.")


def _check_text(_type: str, text: dict[str, Any]) -> None:
    _required_str(text, "body", "text['body']", max_len=TEXT_MAX)
    if "preview_url" in text and not isinstance(text["preview_url"], bool):
        raise invalid_parameter("Param text['preview_url'] must be a boolean.")


def _check_media(media_type: str, media: dict[str, Any]) -> None:
    has_id, has_link = media.get("id") is not None, media.get("link") is not None
    if has_id == has_link:
        raise invalid_parameter(f"Exactly one of {media_type}['id'] or {media_type}['link'] is required.")
    if has_id:
        _required_str(media, "id", f"{media_type}['id']")
    else:
        # Meta accepts any link here and reports an unreachable one later, in a `failed` status.
        _required_str(media, "link", f"{media_type}['link']")
    caption = _optional_str(media, "caption", f"{media_type}['caption']")
    if caption is not None:
        if media_type not in _CAPTIONED:
            raise invalid_parameter(f"Param {media_type}['caption'] is not allowed for {media_type} messages.")
        _check_len(caption, f"{media_type}['caption']", CAPTION_MAX)
    if media.get("filename") is not None and media_type != "document":
        raise invalid_parameter(f"Param {media_type}['filename'] is only allowed for documents.")


def _check_interactive(_type: str, interactive: dict[str, Any]) -> None:
    kind = interactive.get("type")
    if kind not in _INTERACTIVE_TYPES:
        raise invalid_parameter(
            f"Param interactive['type'] must be one of {{{', '.join(sorted(_INTERACTIVE_TYPES))}}}."
        )
    action = interactive.get("action")
    if not isinstance(action, dict):
        raise invalid_parameter("The parameter interactive['action'] is required.")
    body = interactive.get("body")
    if kind in ("button", "list", "cta_url"):
        if not isinstance(body, dict):
            raise invalid_parameter("The parameter interactive['body'] is required.")
        _required_str(body, "text", "interactive['body']['text']", max_len=INTERACTIVE_BODY_MAX)
    for part in ("header", "footer"):
        block = interactive.get(part)
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            _check_len(block["text"], f"interactive['{part}']['text']", HEADER_FOOTER_MAX)
    if kind == "button":
        _check_buttons(action)
    elif kind == "list":
        _check_list(action)
    elif kind == "cta_url":
        parameters = action.get("parameters")
        if not isinstance(parameters, dict):
            raise invalid_parameter("The parameter interactive['action']['parameters'] is required.")
        _required_str(parameters, "display_text", "interactive['action']['parameters']['display_text']", max_len=20)
        _required_str(parameters, "url", "interactive['action']['parameters']['url']")


def _check_buttons(action: dict[str, Any]) -> None:
    buttons = action.get("buttons")
    if not isinstance(buttons, list) or not buttons:
        raise invalid_parameter("The parameter interactive['action']['buttons'] is required.")
    if len(buttons) > BUTTONS_MAX:
        raise invalid_parameter(f"Param interactive['action']['buttons'] must have at most {BUTTONS_MAX} items.")
    ids: set[str] = set()
    titles: set[str] = set()
    for index, button in enumerate(buttons):
        path = f"interactive['action']['buttons'][{index}]"
        if not isinstance(button, dict) or button.get("type") != "reply" or not isinstance(button.get("reply"), dict):
            raise invalid_parameter(f"Param {path} must be a reply button.")
        reply = button["reply"]
        button_id = _required_str(reply, "id", f"{path}['reply']['id']", max_len=256)
        title = _required_str(reply, "title", f"{path}['reply']['title']", max_len=BUTTON_TITLE_MAX)
        if button_id in ids or title in titles:
            raise invalid_parameter("Reply buttons must have unique ids and titles.")
        ids.add(button_id)
        titles.add(title)


def _check_list(action: dict[str, Any]) -> None:
    _required_str(action, "button", "interactive['action']['button']", max_len=20)
    sections = action.get("sections")
    if not isinstance(sections, list) or not sections:
        raise invalid_parameter("The parameter interactive['action']['sections'] is required.")
    rows_total = 0
    for s_index, section in enumerate(sections):
        path = f"interactive['action']['sections'][{s_index}]"
        if not isinstance(section, dict):
            raise invalid_parameter(f"Param {path} must be an object.")
        if len(sections) > 1:
            _required_str(section, "title", f"{path}['title']", max_len=ROW_TITLE_MAX)
        rows = section.get("rows")
        if not isinstance(rows, list) or not rows:
            raise invalid_parameter(f"The parameter {path}['rows'] is required.")
        for r_index, row in enumerate(rows):
            row_path = f"{path}['rows'][{r_index}]"
            if not isinstance(row, dict):
                raise invalid_parameter(f"Param {row_path} must be an object.")
            _required_str(row, "id", f"{row_path}['id']", max_len=200)
            _required_str(row, "title", f"{row_path}['title']", max_len=ROW_TITLE_MAX)
            description = _optional_str(row, "description", f"{row_path}['description']")
            if description is not None:
                _check_len(description, f"{row_path}['description']", ROW_DESCRIPTION_MAX)
        rows_total += len(rows)
    if rows_total > LIST_ROWS_MAX:
        raise invalid_parameter(f"A list message can have at most {LIST_ROWS_MAX} rows in all its sections.")


def _check_template(_type: str, template: dict[str, Any]) -> None:
    _required_str(template, "name", "template['name']", max_len=512)
    language = template.get("language")
    if not isinstance(language, dict):
        raise invalid_parameter("The parameter template['language'] is required.")
    _required_str(language, "code", "template['language']['code']")
    components = template.get("components")
    if components is not None and not (
        isinstance(components, list) and all(isinstance(c, dict) and "type" in c for c in components)
    ):
        raise invalid_parameter("Param template['components'] must be a list of components with a type.")


def _check_reaction(_type: str, reaction: dict[str, Any]) -> None:
    _required_str(reaction, "message_id", "reaction['message_id']")
    if not isinstance(reaction.get("emoji"), str):  # "" removes a reaction
        raise invalid_parameter("The parameter reaction['emoji'] is required.")


def _check_location(_type: str, location: dict[str, Any]) -> None:
    for key, bound in (("latitude", 90.0), ("longitude", 180.0)):
        value = location.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise invalid_parameter(f"The parameter location['{key}'] is required and must be a number.")
        if abs(value) > bound:
            raise invalid_parameter(f"Param location['{key}'] is out of range.")


def _check_contacts(_type: str, contacts: Any) -> None:
    if not isinstance(contacts, list) or not contacts:
        raise invalid_parameter("The parameter contacts is required.")
    for index, contact in enumerate(contacts):
        name = contact.get("name") if isinstance(contact, dict) else None
        if not isinstance(name, dict):
            raise invalid_parameter(f"The parameter contacts[{index}]['name'] is required.")
        _required_str(name, "formatted_name", f"contacts[{index}]['name']['formatted_name']")


_CHECKS: dict[str, Callable[[str, Any], None]] = {
    "text": _check_text,
    **dict.fromkeys(MEDIA_TYPES, _check_media),
    "interactive": _check_interactive,
    "template": _check_template,
    "reaction": _check_reaction,
    "location": _check_location,
    "contacts": _check_contacts,
}
