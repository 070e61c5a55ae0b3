"""Rate limits counted in this process and shared through the cache in batches: no cache round trip per event.

Each process admits or refuses from its own view of a key's count in the current fixed window: the shared total
at its last exchange with the cache plus what it admitted since. A background task hands the local increments
to the cache and reads the shared totals back every `interval` seconds, in one call for all keys; a process that
has admitted `slack_of(limit)` events of a key since its last exchange exchanges before admitting more. So in
one window the processes together admit at most `limit + (processes - 1) * slack_of(limit)` events (2 % of the
limit per extra process). Windows are aligned on the wall clock (minute `k` is the same window everywhere), so
as with any fixed window a sender may spend one budget at the end of a window and the next at its start.

A cache outage never refuses an event the local count would admit: counting goes on in each process, which then
limits the key alone, and the counts are handed over when the cache answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from xypr.backends.cache.base import Cache, RateDecision
from xypr.core.logging import get_logger

__all__ = ["EXCHANGE_INTERVAL_SECONDS", "BatchedLimiter", "slack_of"]

log = get_logger(__name__)

EXCHANGE_INTERVAL_SECONDS = 0.25
# One exchange waits at most this long for the cache; a slower one counts as an outage.
_EXCHANGE_TIMEOUT_SECONDS = 2.0
_SLACK_SHARE = 50


def slack_of(limit: int) -> int:
    """How many events of a key one process admits between two exchanges at most: 2 % of the limit, at least 1."""
    return max(1, limit // _SLACK_SHARE)


@dataclass(slots=True)
class _Count:
    """This process's view of one key in its current window."""

    window: float
    window_id: int
    shared: int = 0  # the shared total at the last exchange (this process's part included)
    pending: int = 0  # counted here since, not handed over yet
    wanted: bool = True  # used since the last exchange: refreshed at the next one

    @property
    def spent(self) -> int:
        return self.shared + self.pending


class BatchedLimiter:
    """Per-key event budgets per fixed window, shared by every process through `cache` in batches.

    The background exchange starts with the first counted event and stops when no key is left to follow;
    `close()` stops it for good after a last exchange.
    """

    def __init__(
        self, cache: Cache, *, interval: float = EXCHANGE_INTERVAL_SECONDS, clock: Callable[[], float] = time.time
    ) -> None:
        self._cache = cache
        self._interval = interval
        self._clock = clock
        self._counts: dict[str, _Count] = {}
        self._flight: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._healthy = True
        self._closed = False

    def check(self, key: str, *, limit: int, window: float) -> RateDecision:
        """Whether `key` has events left in the current window, without counting one (no await, no cache call)."""
        count = self._current(key, window)
        if count is None:
            return RateDecision(allowed=True, remaining=limit, retry_after=0.0)
        count.wanted = True
        return self._decision(count, limit)

    async def admit(self, key: str, *, limit: int, window: float) -> RateDecision:
        """Count one event of `key` unless its `limit` events of the current window are spent."""
        count = await self._room(key, limit=limit, window=window)
        decision = self._decision(count, limit)
        if decision.allowed:
            count.pending += 1
            return RateDecision(allowed=True, remaining=decision.remaining - 1, retry_after=0.0)
        return decision

    async def count(self, key: str, *, limit: int, window: float) -> None:
        """Count one event of `key` whatever its budget (for events that happened anyway, like a refusal)."""
        count = await self._room(key, limit=limit, window=window)
        count.pending += 1

    async def flush(self) -> None:
        """Hand this process's counts to the cache and take the shared totals back, in one call for all keys."""
        if self._flight is not None:  # one exchange at a time: join the one under way
            await asyncio.shield(self._flight)
            return
        flight = asyncio.get_running_loop().create_future()
        self._flight = flight
        try:
            await self._exchange()
        finally:
            self._flight = None
            flight.set_result(None)

    async def close(self) -> None:
        """Stop the background exchange, then hand over what is left (when the cache answered last time)."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._healthy:
            await self.flush()

    def _current(self, key: str, window: float) -> _Count | None:
        """The key's count if it has one in the current window."""
        count = self._counts.get(key)
        if count is None or count.window != window or count.window_id != math.floor(self._clock() / window):
            return None
        return count

    def _view(self, key: str, window: float) -> _Count:
        """The key's count in the current window (a fresh one when the window turned), marked as wanted."""
        count = self._current(key, window)
        if count is None:
            count = _Count(window, math.floor(self._clock() / window))
            self._counts[key] = count
        count.wanted = True
        return count

    def _decision(self, count: _Count, limit: int) -> RateDecision:
        if count.spent < limit:
            return RateDecision(allowed=True, remaining=limit - count.spent, retry_after=0.0)
        window_end = (count.window_id + 1) * count.window
        return RateDecision(allowed=False, remaining=0, retry_after=max(0.0, window_end - self._clock()))

    async def _room(self, key: str, *, limit: int, window: float) -> _Count:
        """The key's count, exchanged first when this process has used up its slack since the last exchange."""
        self._start()
        count = self._view(key, window)
        while count.pending >= slack_of(limit) and self._healthy:
            await self.flush()
            count = self._view(key, window)
        return count

    def _start(self) -> None:
        if self._task is None and not self._closed:
            # In an empty context: the task outlives the request that starts it, and must not log under its id.
            self._task = asyncio.get_running_loop().create_task(
                self._exchange_now_and_then(), name="rate-limit-exchange", context=contextvars.Context()
            )

    async def _exchange_now_and_then(self) -> None:
        try:
            while True:
                await asyncio.sleep(self._interval)
                await self.flush()
                if not self._counts:  # nothing to follow: an idle process does not wake up for nothing
                    return
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    async def _exchange(self) -> None:
        now = self._clock()
        batch: dict[str, tuple[_Count, int, int]] = {}  # cache key -> (count, window id, amount handed over)
        for key, count in list(self._counts.items()):
            window_id = math.floor(now / count.window)
            if count.window_id != window_id:  # not used since its window ended: nobody reads that total any more
                del self._counts[key]
            elif count.wanted or count.pending:
                batch[f"{key}:{window_id}"] = (count, window_id, count.pending)
        if not batch:
            return
        amounts = {cache_key: taken for cache_key, (_, _, taken) in batch.items()}
        ttl = 2 * max(count.window for count, _, _ in batch.values())
        try:
            async with asyncio.timeout(_EXCHANGE_TIMEOUT_SECONDS):
                totals = await self._cache.incr_many(amounts, ttl=ttl)
        except Exception as exc:  # a cache outage must not stop the counting: the counts wait for the next exchange
            if self._healthy:
                log.warning("rate_limit.exchange_failed", error_type=type(exc).__name__, keys=len(amounts))
            self._healthy = False
            return
        if not self._healthy:
            log.info("rate_limit.exchange_restored", keys=len(amounts))
        self._healthy = True
        for (count, window_id, taken), total in zip(batch.values(), totals, strict=True):
            if count.window_id == window_id:  # else the window turned during the exchange and the count restarted
                count.pending -= taken  # what was counted during the exchange is handed over next time
                count.shared = total
                count.wanted = False
