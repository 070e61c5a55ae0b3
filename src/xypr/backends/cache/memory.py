"""The in-process cache of the embedded mode: one process, one event loop, same semantics as Redis."""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from xypr.backends.cache.base import Cache, RateDecision
from xypr.core.logging import get_logger

__all__ = ["MemoryCache"]

log = get_logger(__name__)

_Kind = Literal["value", "window"]


@dataclass(slots=True)
class _Value:
    data: bytes
    expires_at: float | None


@dataclass(slots=True)
class _Window:
    seconds: float
    hits: deque[float] = field(default_factory=deque)

    def trim(self, now: float) -> None:
        # Same boundary as the Redis script: a hit exactly `seconds` old has left the window.
        while self.hits and self.hits[0] <= now - self.seconds:
            self.hits.popleft()


def _check_ttl(ttl: float | None) -> None:
    if ttl is not None and ttl <= 0:
        raise ValueError("ttl must be positive")


class MemoryCache(Cache):
    """`Cache` in this process's memory; not shared with other processes, so embedded mode only.

    Every method runs without awaiting in between, so each one is atomic on its event loop.
    Expired keys are dropped when read and, through a deadline heap, on every write; memory stays
    proportional to the live keys.
    """

    def __init__(self, *, subscriber_buffer: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._values: dict[str, _Value] = {}
        self._windows: dict[str, _Window] = {}
        # (deadline, kind, key); entries go stale when a key is rewritten and are skipped when popped.
        self._deadlines: list[tuple[float, _Kind, str]] = []
        self._channels: dict[str, set[asyncio.Queue[bytes | None]]] = {}
        self._subscriber_buffer = subscriber_buffer
        self._clock = clock

    def _live(self, key: str, now: float) -> _Value | None:
        value = self._values.get(key)
        if value is not None and value.expires_at is not None and value.expires_at <= now:
            del self._values[key]
            return None
        return value

    def _store(self, key: str, data: bytes, ttl: float | None, now: float) -> None:
        expires_at = None if ttl is None else now + ttl
        self._values[key] = _Value(data, expires_at)
        if expires_at is not None:
            heapq.heappush(self._deadlines, (expires_at, "value", key))

    def _purge(self, now: float) -> None:
        """Drop everything whose deadline has passed; called on each write."""
        while self._deadlines and self._deadlines[0][0] <= now:
            _, kind, key = heapq.heappop(self._deadlines)
            if kind == "value":
                self._live(key, now)
            else:
                window = self._windows.get(key)
                if window is not None:
                    window.trim(now)
                    if not window.hits:
                        del self._windows[key]
        # Rewriting a key with a TTL leaves its old deadline behind; rebuild before those dominate.
        if len(self._deadlines) > 2 * (len(self._values) + len(self._windows)) + 1024:
            self._deadlines = [
                (value.expires_at, "value", key) for key, value in self._values.items() if value.expires_at is not None
            ]
            self._deadlines += [
                (window.hits[-1] + window.seconds, "window", key)
                for key, window in self._windows.items()
                if window.hits
            ]
            heapq.heapify(self._deadlines)

    async def get(self, key: str) -> bytes | None:
        """The value, or None if absent or expired."""
        value = self._live(key, self._clock())
        return None if value is None else value.data

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Store `value`, expiring after `ttl` seconds when given."""
        _check_ttl(ttl)
        now = self._clock()
        self._purge(now)
        self._store(key, bytes(value), ttl, now)

    async def set_nx(self, key: str, value: bytes, *, ttl: float | None = None) -> bool:
        """Store only if absent; True when this call stored it."""
        _check_ttl(ttl)
        now = self._clock()
        self._purge(now)
        if self._live(key, now) is not None:
            return False
        self._store(key, bytes(value), ttl, now)
        return True

    async def delete(self, *keys: str) -> None:
        """Remove keys (absent keys are ignored)."""
        # Rate windows share the key space, as they do in Redis: deleting one resets the limiter.
        for key in keys:
            self._values.pop(key, None)
            self._windows.pop(key, None)

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        """Add to an integer counter and return the new value; `ttl` is set when the key is created."""
        _check_ttl(ttl)
        now = self._clock()
        self._purge(now)
        current = self._live(key, now)
        if current is None:
            self._store(key, str(amount).encode(), ttl, now)
            return amount
        try:
            total = int(current.data) + amount
        except ValueError as exc:
            raise ValueError(f"cache key {key!r} does not hold an integer") from exc
        current.data = str(total).encode()  # the TTL of an existing counter is kept, as INCRBY does
        return total

    async def incr_many(self, amounts: Mapping[str, int], *, ttl: float) -> list[int]:
        """`incr` of several counters (an amount of 0 reads one); the new values, in order."""
        return [await self.incr(key, amount, ttl=ttl) for key, amount in amounts.items()]

    async def hit(self, key: str, *, limit: int, window: float) -> RateDecision:
        """Count one event in a sliding window of `window` seconds allowing `limit` events."""
        if window <= 0:
            raise ValueError("window must be positive")
        now = self._clock()
        self._purge(now)
        state = self._windows.get(key)
        if state is None:
            state = _Window(window)
        state.seconds = window
        state.trim(now)
        if len(state.hits) < limit:
            state.hits.append(now)
            self._windows[key] = state
            heapq.heappush(self._deadlines, (now + window, "window", key))
            return RateDecision(allowed=True, remaining=limit - len(state.hits), retry_after=0.0)
        retry_after = state.hits[0] + window - now if state.hits else window
        return RateDecision(allowed=False, remaining=0, retry_after=max(0.0, retry_after))

    async def publish(self, channel: str, message: bytes) -> None:
        """Hand `message` to every subscriber of `channel` in this process."""
        for queue in list(self._channels.get(channel, ())):
            if queue.full():
                # A subscriber that stopped reading must not grow memory without bound.
                queue.get_nowait()
                log.warning("cache_subscriber_overflow", channel=channel, dropped=1)
            queue.put_nowait(bytes(message))

    async def subscribe(self, channel: str) -> AsyncIterator[bytes]:
        """Messages published to `channel` once iteration has started, until closed (or `close()`)."""
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=self._subscriber_buffer)
        self._channels.setdefault(channel, set()).add(queue)
        try:
            while (message := await queue.get()) is not None:
                yield message
        finally:
            subscribers = self._channels.get(channel)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._channels[channel]

    async def ping(self) -> bool:
        """Always reachable."""
        return True

    async def close(self) -> None:
        """End every subscription and drop all keys."""
        for subscribers in self._channels.values():
            for queue in subscribers:
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(None)
        self._channels.clear()
        self._values.clear()
        self._windows.clear()
        self._deadlines.clear()
