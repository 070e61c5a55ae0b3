"""Open Messaging outbound webhook signature: `sha256=<BASE64 HMAC-SHA256(secret, raw body)>`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

__all__ = ["sign", "verify", "well_formed"]


def sign(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` header value Genesys would send for `body`."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """True when `header` signs the exact raw `body` (constant-time; base64, not hex)."""
    if not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode())


_SHAPE = re.compile(r"sha256=[A-Za-z0-9+/]{43}=")


def well_formed(header: str) -> bool:
    """True when `header` has the shape of a Genesys signature (base64 of 32 bytes)."""
    return _SHAPE.fullmatch(header.strip()) is not None
