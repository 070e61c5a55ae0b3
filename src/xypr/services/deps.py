"""Shared FastAPI dependencies and request helpers for the HTTP services."""

from __future__ import annotations

import math
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request

from xypr.core.correlation import sane_request_id
from xypr.core.errors import BadRequest, PayloadTooLarge, TooManyRequests
from xypr.runtime import Runtime

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_OFFSET",
    "RuntimeDep",
    "body_too_deep",
    "correlation_id",
    "json_too_deep",
    "limit_webhooks_of_tenant",
    "parse_json",
    "read_body",
    "read_json_body",
    "runtime_of",
]

# Nesting deeper than any real webhook or API body (Meta's and Genesys's stay below 10): deeper documents
# are refused where they are parsed, before they reach code with its own limits (orjson writes at most 254
# levels, Python recursion ~1000).
MAX_JSON_DEPTH = 64
# The largest paging offset a query parameter takes: what every database's OFFSET holds (a larger Python
# int overflows the driver: a 500 instead of a 400).
MAX_OFFSET = 2**31 - 1
_WINDOW_SECONDS = 60.0


def runtime_of(request: Request) -> Runtime:
    """The process runtime, opened by the app's lifespan."""
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_runtime(request: Request) -> Runtime:
    """The process runtime, as a FastAPI dependency."""
    return runtime_of(request)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def correlation_id(request: Request) -> str:
    """The request's correlation id: the one the request-id middleware chose (and answers in
    `X-Request-Id`), so the response, the request's log lines and the events it publishes share it."""
    chosen = getattr(request.state, "request_id", None)
    if isinstance(chosen, str) and chosen:
        return chosen
    return sane_request_id(request.headers.get("x-request-id"))


async def read_body(request: Request, *, limit: int) -> bytes:
    """The raw body (for signatures); 413 over `limit`, never more than `limit` bytes read."""
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
    return b"".join(chunks)


def json_too_deep(document: Any, *, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """True when arrays and objects nest deeper than `max_depth` (iterative: no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def body_too_deep(raw: bytes, document: Any) -> bool:
    """`json_too_deep` for the `document` parsed from `raw`, skipped when `raw` has too few brackets to nest
    that deep (every level opens one; the count is an upper bound, as brackets inside strings count too)."""
    return raw.count(b"{") + raw.count(b"[") > MAX_JSON_DEPTH and json_too_deep(document)


def parse_json(raw: bytes) -> Any:
    """The JSON of a body; `BadRequest` when it is not JSON or nests deeper than `MAX_JSON_DEPTH`."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc
    if json_too_deep(document):
        raise BadRequest(f"body nests deeper than {MAX_JSON_DEPTH} levels")
    return document


async def read_json_body(request: Request, *, limit: int) -> tuple[bytes, Any]:
    """The raw body (for signatures) and its JSON; 413 over `limit`, 400 when not JSON or too deep."""
    raw = await read_body(request, limit=limit)
    return raw, parse_json(raw)


async def limit_webhooks_of_tenant(runtime: Runtime, tenant_id: str) -> None:
    """Count one authenticated webhook of a tenant; `TooManyRequests` past its per-minute budget.

    Applied after the signature, so only the tenant's own traffic spends it (a busy tenant's Genesys, which
    calls from few addresses, is never throttled by an address budget).
    """
    per_minute = runtime.settings.rate_limit_webhooks_per_tenant
    if per_minute <= 0:
        return
    # Counted in this process and shared in batches (backends/cache/batched.py): no cache round trip per webhook,
    # and a cache outage does not take the webhooks down.
    decision = await runtime.limits.admit(f"rl:webhook-tenant:{tenant_id}", limit=per_minute, window=_WINDOW_SECONDS)
    if not decision.allowed:
        seconds = max(1, math.ceil(decision.retry_after))
        raise TooManyRequests(
            f"too many webhooks for this organisation; retry in {seconds} s", headers={"Retry-After": str(seconds)}
        )
