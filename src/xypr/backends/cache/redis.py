"""The Redis cache: shared by every `xypr` process, atomic through SET NX and Lua scripts."""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import cast

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from xypr.backends.cache.base import Cache, RateDecision
from xypr.core.coalesce import Coalescer

__all__ = ["RedisCache"]

# EXISTS and INCRBY in one script, so the TTL is set exactly once, by whichever caller created the key.
_INCR_SCRIPT = """
local created = redis.call('EXISTS', KEYS[1]) == 0
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if created and tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value
"""

# The same for several keys at once (ARGV: one amount per key, then the TTL), so a batch costs one round trip.
_INCR_MANY_SCRIPT = """
local ttl = tonumber(ARGV[#KEYS + 1])
local values = {}
for i, key in ipairs(KEYS) do
  local created = redis.call('EXISTS', key) == 0
  values[i] = redis.call('INCRBY', key, ARGV[i])
  if created and ttl > 0 then
    redis.call('PEXPIRE', key, ttl)
  end
end
return values
"""

# A sorted set of hit timestamps (microseconds, scored and named uniquely). The server clock is used
# so that processes on different machines agree on the window. Denied hits are not recorded, so a
# client hammering a closed window does not push its own reopening further away.
_HIT_SCRIPT = """
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
if count < limit then
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('PEXPIRE', key, math.ceil(window / 1000))
  return {1, limit - count - 1, 0}
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
local retry = window
if oldest[2] then
  retry = tonumber(oldest[2]) + window - now
end
return {0, 0, retry}
"""


def _ttl_ms(ttl: float | None) -> int | None:
    """A TTL in whole milliseconds (at least 1), None for no expiry."""
    if ttl is None:
        return None
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    return max(1, math.ceil(ttl * 1000))


class RedisCache(Cache):
    """`Cache` on Redis; every key and channel is prefixed `<namespace>:`."""

    def __init__(self, url: str, *, namespace: str) -> None:
        if not namespace:
            raise ValueError("a Redis cache needs a non-empty namespace")
        self._prefix = f"{namespace}:"
        # Idle pub/sub connections are checked now and then, so a dead one is noticed and replaced.
        self._redis = aioredis.Redis.from_url(url, health_check_interval=30)
        self._incr = self._redis.register_script(_INCR_SCRIPT)
        self._incr_many = self._redis.register_script(_INCR_MANY_SCRIPT)
        self._hit = self._redis.register_script(_HIT_SCRIPT)
        self._deletes: Coalescer[tuple[str, ...], None] = Coalescer(self._delete_together)
        self._pubsubs: set[aioredis.client.PubSub] = set()
        self._closed = False

    def _key(self, key: str) -> str:
        return self._prefix + key

    async def get(self, key: str) -> bytes | None:
        """The value, or None if absent or expired."""
        # The client is built without decode_responses, so values come back as bytes.
        return cast("bytes | None", await self._redis.get(self._key(key)))

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Store `value`, expiring after `ttl` seconds when given."""
        await self._redis.set(self._key(key), value, px=_ttl_ms(ttl))

    async def set_nx(self, key: str, value: bytes, *, ttl: float | None = None) -> bool:
        """Store only if absent; True when this call stored it."""
        stored = await self._redis.set(self._key(key), value, px=_ttl_ms(ttl), nx=True)
        return bool(stored)

    async def delete(self, *keys: str) -> None:
        """Remove keys (absent keys are ignored). The workers drop cached contexts after every message: the
        deletes a process asks for while one is in flight go together in the next DEL (`xypr.core.coalesce`)."""
        if keys:
            await self._deletes(tuple(self._key(key) for key in keys))

    async def _delete_together(self, batches: list[tuple[str, ...]]) -> list[None]:
        await self._redis.delete(*dict.fromkeys(key for batch in batches for key in batch))
        return [None] * len(batches)

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        """Add to an integer counter and return the new value; `ttl` is set when the key is created."""
        try:
            value = await self._incr(keys=[self._key(key)], args=[amount, _ttl_ms(ttl) or 0])
        except ResponseError as exc:
            raise ValueError(f"cache key {key!r} does not hold an integer") from exc
        return int(value)

    async def incr_many(self, amounts: Mapping[str, int], *, ttl: float) -> list[int]:
        """`incr` of several counters in one script call (an amount of 0 reads one); the new values, in order."""
        if not amounts:
            return []
        keys = [self._key(key) for key in amounts]
        try:
            values = await self._incr_many(keys=keys, args=[*amounts.values(), _ttl_ms(ttl) or 0])
        except ResponseError as exc:
            raise ValueError(f"one of the cache keys {list(amounts)!r} does not hold an integer") from exc
        return [int(value) for value in values]

    async def hit(self, key: str, *, limit: int, window: float) -> RateDecision:
        """Count one event in a sliding window of `window` seconds allowing `limit` events."""
        if window <= 0:
            raise ValueError("window must be positive")
        window_us = max(1, math.ceil(window * 1_000_000))
        allowed, remaining, retry_us = await self._hit(
            keys=[self._key(key)], args=[max(0, limit), window_us, uuid.uuid4().hex]
        )
        return RateDecision(allowed=bool(allowed), remaining=int(remaining), retry_after=int(retry_us) / 1_000_000)

    async def publish(self, channel: str, message: bytes) -> None:
        """Broadcast `message` to every subscriber of `channel` in every process."""
        await self._redis.publish(self._key(channel), message)

    async def subscribe(self, channel: str) -> AsyncIterator[bytes]:
        """Messages published to `channel` once iteration has started, until the iterator is closed.

        Each subscription holds its own connection; `close()` ends every open subscription.
        """
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self._pubsubs.add(pubsub)
        try:
            await pubsub.subscribe(self._key(channel))
            while not self._closed:
                try:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                except (RedisConnectionError, OSError):
                    # close() cuts the connection under us: that is the end of the stream, not an error.
                    if self._closed:
                        return
                    raise
                if message is not None and message["type"] == "message":
                    yield message["data"]
        finally:
            self._pubsubs.discard(pubsub)
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def ping(self) -> bool:
        """True when Redis answers within two seconds."""
        try:
            async with asyncio.timeout(2):
                return bool(await self._redis.ping())
        except (RedisError, OSError, TimeoutError):
            return False

    async def close(self) -> None:
        """End open subscriptions and close the connection pool."""
        self._closed = True
        for pubsub in list(self._pubsubs):
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
        await self._redis.aclose()
