"""When each tenant's last signed webhook arrived, per direction (for the dashboard's webhook helper)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from xypr.backends.cache.base import Cache
from xypr.core.logging import get_logger

__all__ = ["DIRECTIONS", "last_webhooks", "note_webhook"]

log = get_logger(__name__)

DIRECTIONS = ("whatsapp", "genesys")
_KEEP_SECONDS = 30 * 86400.0
# The time is shown to the second: a process writes it at most once a second per tenant and direction, so a
# busy tenant's webhooks do not each pay a cache round trip for it.
RESOLUTION_SECONDS = 1.0


class _Written:
    """When this process last wrote each (tenant, direction) time (monotonic clock)."""

    def __init__(self) -> None:
        self._at: dict[tuple[str, str], float] = {}

    def due(self, tenant_id: str, direction: str, now: float) -> bool:
        last = self._at.get((tenant_id, direction))
        return last is None or now - last >= RESOLUTION_SECONDS

    def mark(self, tenant_id: str, direction: str, now: float) -> None:
        if len(self._at) > 10_000:  # a bound, not a cache policy: forgetting only costs one more write
            self._at.clear()
        self._at[(tenant_id, direction)] = now


_written = _Written()


def _key(tenant_id: str, direction: str) -> str:
    return f"{tenant_id}:last-webhook:{direction}"


async def note_webhook(cache: Cache, tenant_ids: Iterable[str], direction: str) -> None:
    """Remember now as the last signed webhook of these tenants (to the second); a cache failure never fails
    the webhook."""
    now = str(time.time()).encode()
    tick = time.monotonic()
    try:
        for tenant_id in set(tenant_ids):
            if _written.due(tenant_id, direction, tick):
                await cache.set(_key(tenant_id, direction), now, ttl=_KEEP_SECONDS)
                _written.mark(tenant_id, direction, tick)
    except Exception as exc:
        log.warning("webhook.note_failed", direction=direction, error_type=type(exc).__name__)


async def last_webhooks(cache: Cache, tenant_id: str) -> dict[str, float | None]:
    """Unix time of the tenant's last signed webhook per direction (None: none in the last 30 days)."""
    found: dict[str, float | None] = {}
    for direction in DIRECTIONS:
        raw = await cache.get(_key(tenant_id, direction))
        found[direction] = float(raw) if raw else None
    return found
