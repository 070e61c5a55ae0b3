"""OpenAPI documentation helpers: the JSON error body every API answers, and the usual error responses."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["ErrorBody", "ErrorDetail", "error_responses"]


class ErrorDetail(BaseModel):
    """What went wrong: a stable code, a message for people, the offending field when there is one."""

    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer of the API."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"error": {"code": "not_found", "message": "no tenant 0b6f3c1e-…"}}]}
    )

    error: ErrorDetail


_DESCRIPTIONS = {
    400: "Invalid request (the message names the field)",
    401: "No valid credentials (bearer token or session cookie)",
    403: "The caller's role may not do this",
    404: "Not found in the caller's tenant (other tenants' data is never visible)",
    409: "Conflicts with the current state (e.g. an identifier another tenant owns)",
    413: "Body too large",
    502: "Genesys or Meta refused or failed (the message says what it answered)",
    503: "A dependency is unavailable; retry later",
}


def error_responses(
    *codes: int, also: dict[int | str, dict[str, Any]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entry documenting these error statuses with the common error body (plus `also`)."""
    documented: dict[int | str, dict[str, Any]] = dict(also or {})
    documented.update({code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]} for code in codes})
    return documented
