"""The one HTTP client factory: pooled connections, explicit timeouts, no redirects to surprise us."""

from __future__ import annotations

import httpx

__all__ = ["create_http_client"]


def create_http_client(*, timeout: float = 10.0, max_connections: int = 200) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` tuned for many concurrent upstream calls."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        follow_redirects=False,
        headers={"User-Agent": "xypr/0.1"},
    )
