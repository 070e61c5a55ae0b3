"""Shared FastAPI dependencies and request helpers for the HTTP services."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request

from xypr.core.errors import BadRequest, PayloadTooLarge
from xypr.runtime import Runtime

__all__ = ["RuntimeDep", "correlation_id", "read_json_body"]


async def get_runtime(request: Request) -> Runtime:
    """The process runtime, opened by the app's lifespan."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def correlation_id(request: Request) -> str:
    """The request's correlation id: the caller's `X-Request-Id` when sane, else a new one."""
    given = request.headers.get("x-request-id", "")
    if 8 <= len(given) <= 64 and given.replace("-", "").isalnum():
        return given
    return uuid.uuid4().hex


async def read_json_body(request: Request, *, limit: int) -> tuple[bytes, Any]:
    """The raw body (for signatures) and its JSON; 413 over `limit`, 400 when not JSON."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body larger than {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        return raw, orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc
