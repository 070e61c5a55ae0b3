"""The cache interface: keys with TTL, atomic set-if-absent and counters, a sliding-window limiter,
and a pub/sub channel for cross-process invalidation.

Callers prefix every key with the tenant id where the value holds tenant data; the
implementation additionally prefixes everything with the deployment namespace.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

__all__ = ["Cache", "RateDecision"]


@dataclass(frozen=True, slots=True)
class RateDecision:
    """Outcome of one rate-limit hit: allowed or not, and when to try again if not."""

    allowed: bool
    remaining: int
    retry_after: float


class Cache(abc.ABC):
    """A shared key/value cache."""

    @abc.abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The value, or None if absent or expired."""

    @abc.abstractmethod
    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Store `value`, expiring after `ttl` seconds when given."""

    @abc.abstractmethod
    async def set_nx(self, key: str, value: bytes, *, ttl: float | None = None) -> bool:
        """Store only if absent; True when this call stored it (atomic across processes)."""

    @abc.abstractmethod
    async def delete(self, *keys: str) -> None:
        """Remove keys (absent keys are ignored)."""

    @abc.abstractmethod
    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        """Add to an integer counter and return the new value; `ttl` is set when the key is created."""

    @abc.abstractmethod
    async def incr_many(self, amounts: Mapping[str, int], *, ttl: float) -> list[int]:
        """`incr` of several counters in one round trip (an amount of 0 reads one); the new values, in order."""

    @abc.abstractmethod
    async def hit(self, key: str, *, limit: int, window: float) -> RateDecision:
        """Count one event in a sliding window of `window` seconds allowing `limit` events."""

    @abc.abstractmethod
    async def publish(self, channel: str, message: bytes) -> None:
        """Broadcast `message` to every subscriber of `channel` (all processes)."""

    @abc.abstractmethod
    def subscribe(self, channel: str) -> AsyncIterator[bytes]:
        """Messages published to `channel` from now on, until the iterator is closed."""

    @abc.abstractmethod
    async def ping(self) -> bool:
        """True when reachable (for `/ready`)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections."""
