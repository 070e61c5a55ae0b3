"""Open Messaging outbound message → Graph API send bodies (pure)."""

from __future__ import annotations

import re
from typing import Any

from xypr.genesys.models import GenesysOutbound

__all__ = ["MAX_TEXT", "UnsupportedOutbound", "split_text", "to_whatsapp_sends"]

MAX_TEXT = 4096
_URL = re.compile(r"https?://", re.I)


class UnsupportedOutbound(ValueError):
    """A Genesys message this bridge cannot turn into a WhatsApp send (becomes a Failed receipt)."""


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


def _recipient(to: str, id_type: str | None) -> dict[str, str]:
    # A BSUID (opaque id) is addressed with `recipient`; a phone number with `to`.
    if id_type == "Opaque" or "." in to:
        return {"recipient": to}
    return {"to": to}


def to_whatsapp_sends(message: GenesysOutbound, *, to: str, id_type: str | None) -> list[dict[str, Any]]:
    """The Graph `/messages` bodies for one Genesys outbound message, in sending order."""
    if message.type != "Text" or not (message.text or "").strip():
        kinds = message.type if message.type != "Text" else "Text without text"
        raise UnsupportedOutbound(f"{kinds} messages are not supported yet")
    if message.content:
        raise UnsupportedOutbound("attachments are not supported yet")
    sends = []
    for piece in split_text(message.text or ""):
        sends.append(
            {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                **_recipient(to, id_type),
                "type": "text",
                "text": {"body": piece, "preview_url": bool(_URL.search(piece))},
            }
        )
    return sends
