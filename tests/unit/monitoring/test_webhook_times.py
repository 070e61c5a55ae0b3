"""The last-webhook time is written at most once a second per tenant and direction, read back to the second."""

from __future__ import annotations

import pytest

from xypr.backends.cache.memory import MemoryCache
from xypr.monitoring import webhooks
from xypr.monitoring.webhooks import RESOLUTION_SECONDS, last_webhooks, note_webhook


class CountingCache(MemoryCache):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        self.writes += 1
        await super().set(key, value, ttl=ttl)


async def test_a_burst_of_webhooks_writes_the_time_once_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(webhooks.time, "monotonic", lambda: clock[0])
    cache = CountingCache()
    for _ in range(100):
        await note_webhook(cache, ["t-burst"], "whatsapp")
    assert cache.writes == 1
    await note_webhook(cache, ["t-burst"], "genesys")  # the other direction has its own time
    assert cache.writes == 2
    clock[0] += RESOLUTION_SECONDS
    await note_webhook(cache, ["t-burst", "t-other"], "whatsapp")
    assert cache.writes == 4
    seen = await last_webhooks(cache, "t-burst")
    assert seen["whatsapp"] is not None
    assert seen["genesys"] is not None
