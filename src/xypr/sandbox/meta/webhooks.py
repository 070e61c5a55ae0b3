"""Meta webhook bodies (shaped like contracts/meta/webhook-*.json) and their `X-Hub-Signature-256`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Customer",
    "NumberMetadata",
    "encode_body",
    "envelope",
    "inbound_message",
    "new_wamid",
    "sign",
    "sign_sha1",
    "status_update",
]


@dataclass(frozen=True, slots=True)
class NumberMetadata:
    """What a webhook says about the business number it concerns."""

    waba_id: str
    phone_number_id: str
    display_phone_number: str


@dataclass(frozen=True, slots=True)
class Customer:
    """The WhatsApp user: phone (`wa_id`) and/or, from 2026, business-scoped user id and username."""

    name: str
    wa_id: str | None
    user_id: str | None = None
    username: str | None = None

    def contact(self) -> dict[str, Any]:
        """The `value.contacts[]` item."""
        profile: dict[str, Any] = {"name": self.name}
        if self.username:
            profile["username"] = self.username
        contact: dict[str, Any] = {"profile": profile}
        if self.wa_id:
            contact["wa_id"] = self.wa_id
        if self.user_id:
            contact["user_id"] = self.user_id
        return contact

    def sender(self) -> dict[str, Any]:
        """The `from` / `from_user_id` keys of a message."""
        sender: dict[str, Any] = {}
        if self.wa_id:
            sender["from"] = self.wa_id
        if self.user_id:
            sender["from_user_id"] = self.user_id
        return sender


def new_wamid(wa_id: str) -> str:
    """A WhatsApp message id in Meta's format: `wamid.` + base64 of a small protobuf-like record."""
    phone = (wa_id or "0").encode()[:60]
    raw = (
        b"\x1c\x18" + bytes([len(phone)]) + phone + b"\x15\x02\x00\x12\x18\x14" + secrets.token_hex(10).upper().encode()
    )
    return "wamid." + base64.b64encode(raw + b"\x00").decode()


def envelope(number: NumberMetadata, value: dict[str, Any]) -> dict[str, Any]:
    """Wrap one change `value` (contacts/messages/statuses/errors) in the WABA envelope."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": number.waba_id,
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": number.display_phone_number,
                                "phone_number_id": number.phone_number_id,
                            },
                            **value,
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def inbound_message(
    number: NumberMetadata,
    customer: Customer,
    *,
    wamid: str,
    timestamp: int,
    message_type: str,
    content: dict[str, Any],
    context_id: str | None = None,
) -> dict[str, Any]:
    """A customer's message as Meta posts it (webhook-text.json, webhook-image.json, …)."""
    message: dict[str, Any] = {}
    if context_id:
        message["context"] = {"from": number.display_phone_number, "id": context_id}
    message.update(customer.sender())
    message.update({"id": wamid, "timestamp": str(timestamp), "type": message_type, message_type: content})
    return envelope(number, {"contacts": [customer.contact()], "messages": [message]})


def status_update(
    number: NumberMetadata,
    *,
    wamid: str,
    status: str,
    timestamp: int,
    recipient: dict[str, str],
    conversation: dict[str, Any] | None,
    pricing: dict[str, Any] | None,
    callback_data: str | None,
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A `statuses[]` webhook (webhook-status-sent/delivered/failed.json)."""
    item: dict[str, Any] = {"id": wamid, "status": status, "timestamp": str(timestamp), **recipient}
    if conversation is not None:
        item["conversation"] = conversation
    if pricing is not None:
        item["pricing"] = pricing
    if callback_data is not None:
        item["biz_opaque_callback_data"] = callback_data
    if errors:
        item["errors"] = errors
    return envelope(number, {"statuses": [item]})


def encode_body(payload: Any) -> bytes:
    """Serialise like Meta: compact JSON with non-ASCII escaped, so only the raw bytes verify."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode()


def sign(app_secret: str, raw_body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256(app secret, raw body)>`."""
    return "sha256=" + hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()


def sign_sha1(app_secret: str, raw_body: bytes) -> str:
    """`sha1=<hex HMAC-SHA1>`: the legacy `X-Hub-Signature` Meta still sends beside the SHA-256 one."""
    return "sha1=" + hmac.new(app_secret.encode(), raw_body, hashlib.sha1).hexdigest()
