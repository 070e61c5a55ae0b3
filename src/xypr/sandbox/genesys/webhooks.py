"""Genesys outbound webhook bodies (captured-openmessaging-outbound-*.json, typing event) and their signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = ["encode_body", "genesys_time", "new_message_id", "outbound_message", "outbound_typing", "sign"]


def new_message_id() -> str:
    """A Genesys message id: 32 lowercase hex digits."""
    return uuid.uuid4().hex


def genesys_time(moment: datetime | None = None) -> str:
    """ISO-8601 UTC with milliseconds and `Z`, as Genesys writes times."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _channel(integration_id: str, nickname: str, to_id: str, to_id_type: str | None, message_id: str) -> dict[str, Any]:
    to: dict[str, Any] = {"id": to_id}
    if to_id_type:
        to["idType"] = to_id_type
    return {
        "id": integration_id,
        "platform": "Open",
        "type": "Private",
        "to": to,
        "from": {"nickname": nickname, "id": integration_id, "idType": "Opaque"},
        "time": genesys_time(),
        "messageId": message_id,
    }


def outbound_message(
    *,
    integration_id: str,
    nickname: str,
    to_id: str,
    to_id_type: str | None,
    message_type: str,
    text: str | None,
    content: list[dict[str, Any]],
    originating_entity: str = "Human",
) -> dict[str, Any]:
    """An agent's (or bot's) message to the customer."""
    message_id = new_message_id()
    body: dict[str, Any] = {
        "id": message_id,
        "channel": _channel(integration_id, nickname, to_id, to_id_type, message_id),
        "direction": "Outbound",
        "originatingEntity": originating_entity,
        "type": message_type,
    }
    if text is not None:
        body["text"] = text
    body.update({"content": content, "reasons": [], "relatedMessages": []})
    return body


def outbound_typing(
    *, integration_id: str, nickname: str, to_id: str, to_id_type: str | None, duration_ms: int
) -> dict[str, Any]:
    """The agent is typing (outbound-event-typing.json)."""
    message_id = new_message_id()
    return {
        "id": message_id,
        "channel": _channel(integration_id, nickname, to_id, to_id_type, message_id),
        "type": "Event",
        "events": [{"eventType": "Typing", "typing": {"type": "On", "duration": duration_ms}}],
        "direction": "Outbound",
    }


def encode_body(payload: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return orjson.dumps(payload)


def sign(secret: str, raw_body: bytes) -> str:
    """`sha256=<BASE64 HMAC-SHA256(webhook secret, raw body)>` (base64, not hex)."""
    digest = hmac.new(secret.encode(), raw_body, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode()
