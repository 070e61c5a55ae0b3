"""`X-Hub-Signature-256` of Meta webhooks: `sha256=<hex HMAC-SHA256(app secret, raw body)>`."""

from __future__ import annotations

import hashlib
import hmac
import re

__all__ = ["sign", "verify", "well_formed"]


def sign(app_secret: str, body: bytes) -> str:
    """The header value Meta would send for `body`."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def verify(app_secret: str, body: bytes, header: str | None) -> bool:
    """True when `header` is the signature of the exact raw `body` (constant-time compare)."""
    if not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(sign(app_secret, body).encode(), header.strip().encode())


_SHAPE = re.compile(r"sha256=[0-9a-fA-F]{64}")


def well_formed(header: str) -> bool:
    """True when `header` has the shape of a Meta signature (checked before the body is even read)."""
    return _SHAPE.fullmatch(header.strip()) is not None
