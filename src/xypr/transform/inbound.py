"""Meta webhook message → Open Messaging inbound message (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from xypr.whatsapp.models import WaContact, WaInboundMessage

__all__ = ["customer_party", "genesys_time", "to_genesys_message"]


def genesys_time(unix_seconds: str | float) -> str:
    """Meta's Unix-seconds timestamp as the ISO-8601 UTC form Genesys requires (`…T…:…:….000Z`)."""
    moment = datetime.fromtimestamp(float(unix_seconds), tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def customer_party(message: WaInboundMessage, contact: WaContact | None) -> dict[str, Any]:
    """`channel.from` for a customer: the phone number when known, else the BSUID as an opaque id."""
    key = message.customer_key
    if key is None:
        raise ValueError("message has neither `from` nor `from_user_id`")
    party: dict[str, Any] = {"id": key, "idType": "Phone" if message.from_ else "Opaque"}
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


def _unsupported_note(message: WaInboundMessage) -> str:
    return f"[The customer sent a {message.type} message, which this bridge cannot show yet.]"


def to_genesys_message(message: WaInboundMessage, contact: WaContact | None) -> dict[str, Any]:
    """The body of `POST …/inbound/open/message` for one WhatsApp message."""
    text = message.text.body if message.type == "text" and message.text else _unsupported_note(message)
    return {
        "channel": {
            "messageId": message.id,
            "from": customer_party(message, contact),
            "time": genesys_time(message.timestamp),
        },
        "text": text,
    }
