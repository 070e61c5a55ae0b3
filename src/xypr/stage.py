"""Runs one pipeline stage on a queue: per-conversation order, retries up to a horizon, then dead letters.

A stage is a handler of one event. Deliveries of one ordering key are handled one after the other
(the *portal lock*), different keys concurrently. Transient failures are retried here, in place,
so a conversation's later messages wait behind its earlier one instead of overtaking it.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import structlog
from pydantic import BaseModel, ValidationError

from xypr.backends.broker.base import Broker, Consumer, Delivery
from xypr.backends.unavailable import is_transient
from xypr.core.errors import PermanentError, TransientError
from xypr.core.logging import get_logger
from xypr.core.metrics import EVENTS, STAGE_LATENCY
from xypr.core.retry import RetryPolicy

__all__ = ["KeyedLocks", "Stage", "attempts_of", "exhausted_error", "run_stage"]

log = get_logger(__name__)

E = TypeVar("E", bound=BaseModel)


class KeyedLocks:
    """One FIFO lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def run(self, key: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` while holding the lock of `key`; waiters run in arrival order."""
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                await work()
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class Stage(abc.ABC, Generic[E]):
    """One step of the pipeline: consume `queue`, parse into `event_type`, `handle` it."""

    name: str
    queue: str
    event_type: type[E]

    @abc.abstractmethod
    async def handle(self, event: E) -> str:
        """Do the work; return an outcome label (`processed`, `duplicate`, …); raise to retry or fail."""

    async def on_permanent(self, event: E, error: PermanentError) -> bool:
        """Report a permanent failure; return True when the event should also be dead-lettered."""
        return True

    async def on_exhausted(self, event: E, error: Exception) -> None:
        """Called when retries ran out, just before the event is dead-lettered."""

    async def on_transient(self, event: E, error: TransientError) -> None:
        """Called before each retry (e.g. to drop a cached credential)."""


# The dead-letter error of an event whose retries ran out ends with how many attempts were made.
_ATTEMPTS = re.compile(r" \(after (\d+) attempts\)$")


def exhausted_error(exc: Exception, attempts: int) -> str:
    """The dead-letter error of an event that failed `attempts` times."""
    return f"{type(exc).__name__}: {exc}"[:1950] + f" (after {attempts} attempts)"


def attempts_of(error: str) -> int:
    """How many times a dead-lettered event was tried: the count `exhausted_error` wrote, else once."""
    found = _ATTEMPTS.search(error)
    return int(found.group(1)) if found else 1


async def _process(stage: Stage[Any], delivery: Delivery, policy: RetryPolicy, stopping: asyncio.Event) -> None:
    if stopping.is_set():
        # Its turn came after the process began to stop: hand it back untouched, first in line.
        await delivery.release()
        return
    try:
        event = stage.event_type.model_validate_json(delivery.body)
    except ValidationError as exc:
        EVENTS.labels(stage.name, "dead_lettered").inc()
        log.error("event.malformed", stage=stage.name, error=str(exc)[:500])
        await delivery.dead_letter(f"malformed event: {exc}"[:2000])
        return
    bound = {"stage": stage.name, "key": delivery.key, "correlation_id": getattr(event, "correlation_id", None)}
    with structlog.contextvars.bound_contextvars(**bound):
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                outcome = await stage.handle(event)
            except PermanentError as exc:
                EVENTS.labels(stage.name, "failed").inc()
                log.warning("event.failed", error=exc.message, reason=exc.reason)
                if await stage.on_permanent(event, exc):
                    EVENTS.labels(stage.name, "dead_lettered").inc()
                    await delivery.dead_letter(exc.message)
                else:
                    await delivery.ack()
                return
            except Exception as exc:  # transient until the horizon; a bug gets the bounded tries
                transient = is_transient(exc)
                if not transient:
                    log.exception("event.error", attempt=attempt)
                if policy.exhausted(attempt, elapsed=time.monotonic() - started, transient=transient):
                    EVENTS.labels(stage.name, "dead_lettered").inc()
                    log.error("event.dead_lettered", attempt=attempt, error=str(exc)[:500])
                    await stage.on_exhausted(event, exc)
                    await delivery.dead_letter(exhausted_error(exc, attempt))
                    return
                retry_after = exc.retry_after if isinstance(exc, TransientError) else None
                growth = exc.growth if isinstance(exc, TransientError) else 2.0
                wait = policy.delay(attempt, retry_after=retry_after, growth=growth)
                if policy.horizon is not None and transient:
                    # The last try lands on the horizon rather than a whole backoff step after it.
                    wait = max(0.0, min(wait, policy.horizon - (time.monotonic() - started)))
                EVENTS.labels(stage.name, "retried").inc()
                log.info("event.retry", attempt=attempt, wait=round(wait, 3), error=str(exc)[:300])
                if isinstance(exc, TransientError):
                    await stage.on_transient(event, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=wait)
                if stopping.is_set():
                    # Between tries nothing is in flight: give it back for the next process to retry.
                    log.info("event.released", attempt=attempt)
                    await delivery.release()
                    return
                continue
            EVENTS.labels(stage.name, outcome).inc()
            accepted_at = getattr(event, "accepted_at", None)
            if accepted_at is not None:
                STAGE_LATENCY.labels(stage.name).observe(max(0.0, time.time() - accepted_at))
            await delivery.ack()
            return


class _StageConsumer(Consumer):
    """The broker's consumer, plus telling the stage's handlers that the process is stopping."""

    def __init__(self, consumer: Consumer, stopping: asyncio.Event) -> None:
        self._consumer = consumer
        self._stopping = stopping

    async def stop(self, *, grace: float = 0.0) -> None:
        """Handlers between tries give their delivery back at once; those sending get `grace` seconds."""
        self._stopping.set()
        await self._consumer.stop(grace=grace)


async def run_stage(stage: Stage[Any], *, broker: Broker, policy: RetryPolicy, prefetch: int) -> Consumer:
    """Start consuming `stage.queue`; the returned consumer stops it (gracefully, given a grace period)."""
    locks = KeyedLocks()
    stopping = asyncio.Event()

    async def on_delivery(delivery: Delivery) -> None:
        try:
            await locks.run(delivery.key, lambda: _process(stage, delivery, policy, stopping))
        except asyncio.CancelledError:
            await asyncio.shield(delivery.release())
            raise

    return _StageConsumer(await broker.consume(stage.queue, on_delivery, prefetch=prefetch), stopping)
