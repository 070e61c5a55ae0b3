"""Per-number send throughput, shared by every worker process (Meta: 80 messages/s per number by default)."""

from __future__ import annotations

import asyncio
from typing import Any

from xypr.backends.cache.base import Cache

__all__ = ["THROUGHPUT_SETTING", "throughput_key", "throughput_limit", "wait_for_send_slot"]

THROUGHPUT_SETTING = "throughput_per_second"
# Longest single pause: a denied sender looks again at least this often.
_MAX_PAUSE = 1.0


def throughput_limit(tenant_settings: dict[str, Any], default: int) -> int:
    """Messages per second a tenant's number may send: its `throughput_per_second` setting, else `default`."""
    value = tenant_settings.get(THROUGHPUT_SETTING)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    return default


def throughput_key(tenant_id: str, phone_number_id: str) -> str:
    """The shared sliding-window key of one business number (prefixed by its tenant)."""
    return f"{tenant_id}:wa-throughput:{phone_number_id}"


async def wait_for_send_slot(cache: Cache, *, tenant_id: str, phone_number_id: str, per_second: int) -> float:
    """Wait until the number may send one more message within `per_second` a second; returns seconds waited.

    The window lives in the shared cache (Redis in production), so every process sending for the number
    counts against the same limit. The caller holds the conversation's turn while it waits, so a later
    message of the conversation cannot overtake this one.
    """
    key = throughput_key(tenant_id, phone_number_id)
    waited = 0.0
    while True:
        decision = await cache.hit(key, limit=per_second, window=1.0)
        if decision.allowed:
            return waited
        pause = min(max(decision.retry_after, 0.001), _MAX_PAUSE)
        await asyncio.sleep(pause)
        waited += pause
