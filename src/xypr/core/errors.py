"""One error hierarchy: every error the API answers carries an HTTP status and a stable code."""

from __future__ import annotations

__all__ = [
    "BackendUnavailable",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "PermanentError",
    "ServiceUnavailable",
    "TooManyRequests",
    "TransientError",
    "Unauthorized",
    "UnsupportedMediaType",
    "XyprError",
]


class XyprError(Exception):
    """Base of every error Xypr raises on purpose."""

    status_code: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, field: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        # Response headers the answer needs (`Retry-After`, `WWW-Authenticate`).
        self.headers = headers or {}

    def to_body(self) -> dict[str, object]:
        """The JSON error body answered to clients."""
        error: dict[str, object] = {"code": self.code, "message": self.message}
        if self.field:
            error["field"] = self.field
        return {"error": error}


class BadRequest(XyprError):
    status_code = 400
    code = "bad_request"


class Unauthorized(XyprError):
    status_code = 401
    code = "unauthorized"


class Forbidden(XyprError):
    status_code = 403
    code = "forbidden"


class NotFound(XyprError):
    status_code = 404
    code = "not_found"


class Conflict(XyprError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(XyprError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(XyprError):
    status_code = 415
    code = "unsupported_media_type"


class TooManyRequests(XyprError):
    status_code = 429
    code = "rate_limited"


class ServiceUnavailable(XyprError):
    status_code = 503
    code = "service_unavailable"


class BackendUnavailable(ServiceUnavailable):
    """The database, cache or broker cannot be reached right now: the caller should retry shortly."""

    code = "backend_unavailable"
    retry_after_seconds = 5

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": str(self.retry_after_seconds)})


class TransientError(XyprError):
    """A failure worth retrying (network, 5xx, 429, Meta transient codes)."""

    code = "transient"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        growth: float = 2.0,
        upstream_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.upstream_code = upstream_code
        # Backoff growth per try; Meta's pair rate limit (131056) asks for 4^n seconds.
        self.growth = growth


class PermanentError(XyprError):
    """A failure that retrying cannot fix; carries a Genesys receipt reason code."""

    code = "permanent"

    def __init__(self, message: str, *, reason: str = "GeneralError", upstream_code: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.upstream_code = upstream_code
