"""Graph API errors as Meta answers them: `{"error": {message, type, code, error_data?, fbtrace_id}}`."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ERROR_HREF",
    "GraphError",
    "documented_error",
    "invalid_parameter",
    "invalid_token",
    "status_error",
    "unknown_object",
]

ERROR_HREF = "/documentation/business-messaging/whatsapp/support/error-codes"


@dataclass(frozen=True, slots=True)
class _Documented:
    message: str
    title: str
    details: str | None = None
    type: str = "OAuthException"
    subcode: int | None = None
    http_status: int = 400
    is_transient: bool | None = None


# Bodies from contracts/meta/error-*.json where one exists; the others from Meta's error-code reference.
_DOCUMENTED: dict[int, _Documented] = {
    2: _Documented(
        "An unexpected error occurred. Please retry your request",
        "Service temporarily unavailable",
        type="GraphMethodException",
        http_status=500,
        is_transient=True,
    ),
    4: _Documented("Application request limit reached", "Too many calls", subcode=2446079, is_transient=True),
    100: _Documented("(#100) Invalid parameter", "Invalid parameter", "Invalid parameter"),
    190: _Documented(
        "Error validating access token: Session has expired",
        "Access token has expired",
        subcode=463,
        http_status=401,
    ),
    80007: _Documented(
        "Business request limit reached for WhatsApp Business Account",
        "Rate limit issues",
        subcode=2446079,
        is_transient=True,
    ),
    130429: _Documented(
        "(#130429) Rate limit hit",
        "Rate limit hit",
        "Cloud API message throughput has been reached.",
        subcode=2494055,
    ),
    131000: _Documented(
        "(#131000) Something went wrong",
        "Something went wrong",
        "Message failed to send due to an unknown error.",
        http_status=500,
    ),
    131026: _Documented(
        "(#131026) Message undeliverable",
        "Message undeliverable",
        "Message failed to send because of an unknown error with the recipient's WhatsApp account.",
    ),
    131047: _Documented(
        "(#131047) Re-engagement message",
        "Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
    ),
    131053: _Documented(
        "(#131053) Media upload error",
        "Media upload error",
        "Unable to upload the media used in the message.",
    ),
    131056: _Documented(
        "(#131056) (Business Account, Consumer Account) pair rate limit hit",
        "(Business Account, Consumer Account) pair rate limit hit",
        "Message failed to send because there were too many messages sent from this phone number to the "
        "same phone number in a short period of time.",
    ),
}


def _fbtrace_id() -> str:
    return "A" + secrets.token_urlsafe(16)[:22]


class GraphError(Exception):
    """An error the emulated Graph API answers with, keyed (as Meta says) on `code`."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        http_status: int = 400,
        type_: str = "OAuthException",
        subcode: int | None = None,
        details: str | None = None,
        is_transient: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status
        self.type = type_
        self.subcode = subcode
        self.details = details
        self.is_transient = is_transient

    def body(self) -> dict[str, Any]:
        """The JSON body Meta would answer, with a fresh `fbtrace_id`."""
        error: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.details is not None:
            error["error_data"] = {"messaging_product": "whatsapp", "details": self.details}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        if self.is_transient is not None:
            error["is_transient"] = self.is_transient
        error["fbtrace_id"] = _fbtrace_id()
        return {"error": error}


def documented_error(code: int, *, http_status: int | None = None, details: str | None = None) -> GraphError:
    """The documented synchronous error for `code` (a generic one for codes not catalogued here)."""
    doc = _DOCUMENTED.get(code) or _Documented(f"(#{code}) Error {code}", f"Error {code}", f"Error {code}")
    return GraphError(
        code,
        doc.message,
        http_status=http_status or doc.http_status,
        type_=doc.type,
        subcode=doc.subcode,
        details=details or doc.details,
        is_transient=doc.is_transient,
    )


def status_error(code: int) -> dict[str, Any]:
    """The `errors[]` item of a `failed` status webhook for `code` (shape of webhook-status-failed.json)."""
    doc = _DOCUMENTED.get(code) or _Documented(f"Error {code}", f"Error {code}", f"Error {code}")
    return {
        "code": code,
        "title": doc.title,
        "message": doc.title,
        "error_data": {"details": doc.details or doc.title},
        "href": ERROR_HREF,
    }


def invalid_parameter(details: str) -> GraphError:
    """Code 100, as in contracts/meta/error-100-invalid-parameter-mm-api.json."""
    return GraphError(100, "(#100) Invalid parameter", details=details)


def invalid_token() -> GraphError:
    """Code 190 for a missing or wrong access token (HTTP 401)."""
    return GraphError(190, "Invalid OAuth access token - Cannot parse access token", http_status=401)


def unknown_object(object_id: str, method: str) -> GraphError:
    """Graph's answer for an id that does not exist (or is not visible to the token)."""
    return GraphError(
        100,
        f"Unsupported {method} request. Object with ID '{object_id}' does not exist, cannot be loaded due "
        "to missing permissions, or does not support this operation. Please read the Graph API "
        "documentation at https://developers.facebook.com/docs/graph-api",
        type_="GraphMethodException",
        subcode=33,
    )
