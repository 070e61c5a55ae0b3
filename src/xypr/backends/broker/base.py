"""The broker interface: durable publish (confirmed) and ordered, at-least-once consumption.

Contract shared by both implementations (RabbitMQ and the embedded SQLite queue):

- `publish` returns only once every message is durable (publisher confirm / committed row);
  otherwise it raises `BrokerUnavailable`, so a webhook can answer 503 and the sender retries.
- Messages with the same `key` travel through the same partition and are delivered to one
  consumer at a time, in publish order. Different keys may be delivered concurrently.
- A delivery stays owned until `ack()` or `dead_letter()`; if the consumer dies first it is
  delivered again (at-least-once). `delivery_count` counts earlier deliveries.
- `dead_letter(error)` moves the message, with the error, to the dead-letter store, from which
  `dead_letters()` lists and `replay()` publishes it again to its original queue;
  `store_dead_letter(...)` puts there a message that is no longer a delivery (a parked event).
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

__all__ = [
    "DELIVERY_LIMIT",
    "Broker",
    "BrokerUnavailable",
    "Consumer",
    "DeadLetter",
    "Delivery",
    "Handler",
    "OutgoingMessage",
]


DELIVERY_LIMIT: Final = 20
"""Deliveries that were never settled (consumer gone, released) after which a message is dead-lettered."""


class BrokerUnavailable(Exception):
    """The broker could not take the message durably (down, refused, confirm timed out)."""


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message to publish; `key` orders it (same key, same order)."""

    body: bytes
    key: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that could not be processed, with its last error."""

    id: str
    queue: str
    key: str
    body: bytes
    headers: Mapping[str, str]
    error: str
    dead_at: datetime


class Delivery(abc.ABC):
    """One delivered message; settle it exactly once with `ack` or `dead_letter`."""

    queue: str
    body: bytes
    key: str
    headers: Mapping[str, str]
    delivery_count: int

    @property
    def owned(self) -> bool:
        """Still this consumer's to settle: False once its consumer stopped or its channel closed (the broker
        has taken it back and delivers it again, perhaps elsewhere)."""
        return True

    @abc.abstractmethod
    async def ack(self) -> None:
        """Done: remove the message for good."""

    @abc.abstractmethod
    async def dead_letter(self, error: str) -> None:
        """Give up: store the message with `error` in the dead-letter store, then drop it here."""

    @abc.abstractmethod
    async def release(self) -> None:
        """Hand the message back untouched (shutdown); it is delivered again, in order."""


Handler = Callable[[Delivery], Awaitable[None]]


class Consumer(abc.ABC):
    """A running subscription; `stop` stops taking new deliveries and lets running ones finish."""

    @abc.abstractmethod
    async def stop(self, *, grace: float = 0.0) -> None:
        """Stop taking deliveries, give running handlers up to `grace` seconds to settle theirs, then
        cancel the rest; unsettled deliveries return to the queue (in order, for redelivery)."""


class Broker(abc.ABC):
    """A durable, partitioned message broker."""

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open connections and declare the topology of every queue in `xypr.topology.QUEUES`."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close connections."""

    @abc.abstractmethod
    async def publish(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        """Publish durably; returns after all are confirmed, else raises `BrokerUnavailable`."""

    @abc.abstractmethod
    async def consume(self, queue: str, handler: Handler, *, prefetch: int) -> Consumer:
        """Deliver messages of `queue` to `handler`, at most `prefetch` unsettled at once."""

    @abc.abstractmethod
    async def store_dead_letter(
        self, *, queue: str, key: str, body: bytes, headers: Mapping[str, str], error: str
    ) -> None:
        """Store a message of `queue` that is no longer a delivery (a parked event) as a dead letter with
        `error`, durably (confirmed / committed) before returning; else raise `BrokerUnavailable`."""

    @abc.abstractmethod
    async def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        """The dead-lettered messages, oldest first."""

    @abc.abstractmethod
    async def replay(self, dead_letter_id: str) -> bool:
        """Publish a dead letter again to its original queue and remove it; False if unknown."""

    @abc.abstractmethod
    async def discard(self, dead_letter_id: str) -> bool:
        """Remove a dead letter for good (an operator decided it must not be processed); False if unknown."""

    async def oldest_age(self, queue: str) -> float | None:
        """Seconds the oldest message waiting in `queue` has waited; None when the broker cannot tell."""
        return None

    @abc.abstractmethod
    async def depth(self, queue: str) -> int:
        """Messages waiting in `queue` (all partitions), for metrics and tests."""

    @abc.abstractmethod
    async def ping(self) -> bool:
        """True when the broker is reachable (for `/ready`)."""
