"""Genesys Cloud error bodies: `{message, code, status, messageWithParams, contextId, details, errors}`."""

from __future__ import annotations

import uuid
from typing import Any

__all__ = [
    "GenesysError",
    "authentication_required",
    "bad_credentials",
    "bad_request",
    "injected",
    "not_authorized",
    "not_found",
]


class GenesysError(Exception):
    """An error the emulated Genesys Cloud API answers with."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON body, with a fresh `contextId` (Genesys' correlation id)."""
        return {
            "message": self.message,
            "code": self.code,
            "status": self.status,
            "messageWithParams": self.message,
            "messageParams": {},
            "contextId": str(uuid.uuid4()),
            "details": self.details,
            "errors": [],
        }


def bad_request(field: str, problem: str) -> GenesysError:
    """400 naming the offending field."""
    return GenesysError(
        400,
        "bad.request",
        f"The request could not be understood by the server due to malformed syntax. {field}: {problem}",
        details=[{"errorCode": "bad.request", "fieldName": field}],
    )


def authentication_required() -> GenesysError:
    """401 for a request without a bearer token."""
    return GenesysError(
        401, "authentication.required", "No authentication bearer token specified in authorization header."
    )


def bad_credentials() -> GenesysError:
    """401 for an unknown or expired token."""
    return GenesysError(401, "bad.credentials", "Invalid login credentials.")


def not_authorized() -> GenesysError:
    """403 for a token whose client may not use this integration."""
    return GenesysError(403, "not.authorized", "You are not authorized to perform the requested action.")


def not_found(what: str) -> GenesysError:
    """404 for an unknown resource."""
    return GenesysError(404, "not.found", f"{what} not found")


_INJECTED: dict[int, tuple[str, str]] = {
    # A permanent refusal (e.g. a message Genesys will not take): what an operator then finds in the dead letters.
    400: ("bad.request", "The request could not be understood by the server due to malformed syntax."),
    500: (
        "internal.server.error",
        "The server encountered an unexpected condition which prevented it from fulfilling the request.",
    ),
    502: ("bad.gateway", "The server received an invalid response from an upstream server."),
    503: ("service.unavailable", "Service Unavailable"),
    504: ("gateway.timeout", "The server did not receive a timely response from an upstream server."),
}


def injected(status: int, retry_after: int | None) -> GenesysError:
    """An injected fault: the normalized 429 (with `Retry-After`), a 400 or a 5xx."""
    if status == 429:
        seconds = retry_after if retry_after is not None else 1
        return GenesysError(
            429,
            "too.many.requests.retry.after",
            f"Rate limit exceeded the maximum. Retry the request in [{seconds}] seconds",
            headers={"Retry-After": str(seconds)},
        )
    code, message = _INJECTED.get(status, ("internal.server.error", "Unexpected error"))
    return GenesysError(status, code, message)
