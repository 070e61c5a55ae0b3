"""Meta error codes: which are worth retrying, and which Genesys receipt reason each one becomes."""

from __future__ import annotations

from typing import Any, Final

__all__ = ["PERMANENT_CODES", "TOKEN_EXPIRED", "TRANSIENT_CODES", "describe", "receipt_reason"]

TRANSIENT_CODES: Final = frozenset({1, 2, 4, 80007, 130429, 131000, 131016, 131056, 131057})
TOKEN_EXPIRED: Final = 190
PAIR_RATE_LIMIT: Final = 131056
PERMANENT_CODES: Final = frozenset(
    {100, 131008, 131009, 131026, 131047, 131050, 131051, 131052, 131053, *range(132000, 132017)}
)

_REASONS: Final = {
    131047: "MessageExpired",
    130429: "RateLimited",
    131056: "RateLimited",
    80007: "RateLimited",
    4: "RateLimited",
    131026: "InvalidDestination",
    131050: "RecipientOptedOut",
    131051: "UnsupportedMessage",
    131052: "MediaTypeNotAllowed",
    131053: "MediaTypeNotAllowed",
    100: "InvalidMessageStructure",
    131008: "InvalidMessageStructure",
    131009: "InvalidMessageStructure",
    131000: "ServerError",
    131057: "ServerError",
    1: "ServerError",
    2: "ServerError",
}


def receipt_reason(code: int | None, message: str = "") -> str:
    """The Genesys receipt reason code for a Meta error code."""
    if code == 131053 and ("size" in message.lower() or "large" in message.lower()):
        return "InvalidMediaContentLength"
    return _REASONS.get(code or 0, "GeneralError")


def describe(error: dict[str, Any]) -> str:
    """A readable one-line description of a Meta error object (title/message plus details)."""
    text = str(error.get("message") or error.get("title") or "WhatsApp error")
    details = (error.get("error_data") or {}).get("details")
    code = error.get("code")
    parts = [f"({code}) {text}" if code is not None else text]
    if details and details != text:
        parts.append(str(details))
    return ": ".join(parts)
