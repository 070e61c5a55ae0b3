"""One correlation id per request, from the webhook to the upstream call.

The outermost middleware picks it (the caller's sane `X-Request-Id`, else a new one); the response
carries it, every log line of the request is bound to it as `request_id`, the events the request
publishes carry it as `correlation_id`, the stages bind it to their log lines, and the upstream JSON
calls made while handling those events send it as `X-Request-Id`.
"""

from __future__ import annotations

import uuid

import structlog

__all__ = ["HEADER", "current_correlation_id", "sane_request_id", "upstream_headers"]

HEADER = "X-Request-Id"


def sane_request_id(given: str | None) -> str:
    """The caller's id when it is 8-64 letters, digits and dashes (safe in logs and headers), else a new one."""
    if given and 8 <= len(given) <= 64 and given.replace("-", "").isascii() and given.replace("-", "").isalnum():
        return given
    return uuid.uuid4().hex


def current_correlation_id() -> str | None:
    """The id bound to the running task: the event's `correlation_id` in a stage, else the request's id."""
    bound = structlog.contextvars.get_contextvars()
    value = bound.get("correlation_id") or bound.get("request_id")
    return str(value) if value else None


def upstream_headers() -> dict[str, str]:
    """`X-Request-Id` for an upstream call, when one is bound (so Meta's or Genesys's logs can be matched)."""
    correlation = current_correlation_id()
    return {HEADER: correlation} if correlation else {}
