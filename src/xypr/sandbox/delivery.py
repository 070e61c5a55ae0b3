"""Webhook delivery as the emulated platforms do it: POST a signed raw body, retry with backoff, bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from xypr.core.retry import RetryPolicy

__all__ = ["Delivery", "deliver", "retry_on_non_2xx", "retry_on_timeout_429_5xx"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """What happened to one webhook: the last HTTP status (None if never answered) and tries made."""

    status: int | None
    attempts: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the receiver answered 2xx."""
        return self.status is not None and 200 <= self.status < 300

    def as_dict(self) -> dict[str, object]:
        """The JSON form shown by the sandbox views."""
        return {"webhook_status": self.status, "attempts": self.attempts, "error": self.error}


def retry_on_non_2xx(status: int | None) -> bool:
    """Meta redelivers on any failure: no answer or a non-2xx answer."""
    return status is None or not 200 <= status < 300


def retry_on_timeout_429_5xx(status: int | None) -> bool:
    """Genesys retries only on timeout / connection failure, 429 and 5xx."""
    return status is None or status == 429 or status >= 500


async def deliver(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    policy: RetryPolicy,
    should_retry: Callable[[int | None], bool],
    request_timeout: float = 10.0,
) -> Delivery:
    """POST `body` to `url` until it succeeds, the answer is final, or `policy` is exhausted."""
    attempt = 0
    status: int | None = None
    error: str | None = None
    while True:
        attempt += 1
        try:
            response = await client.post(url, content=body, headers=dict(headers), timeout=request_timeout)
        except httpx.HTTPError as exc:
            status, error = None, f"{type(exc).__name__}: {exc}"
        else:
            status, error = response.status_code, None
        if not should_retry(status) or policy.exhausted(attempt):
            return Delivery(status=status, attempts=attempt, error=error)
        await asyncio.sleep(policy.delay(attempt))
