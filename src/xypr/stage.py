"""Runs one pipeline stage on a queue: per-conversation order, retries up to a horizon, then dead letters.

A stage is a handler of one event. Deliveries of one ordering key are handled one after the other
(the *portal lock*), different keys concurrently. Transient failures are retried here, in place,
so a conversation's later messages wait behind its earlier one instead of overtaking it; an event
still failing after `Parking.after` seconds is parked (`xypr.retry_parking`) and its delivery acknowledged,
later deliveries of its key join it there, and the stage's drainer retries them in order.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog
from pydantic import ValidationError

from xypr.backends.broker.base import Broker, Consumer, Delivery
from xypr.backends.unavailable import is_transient
from xypr.core.errors import PermanentError, TransientError
from xypr.core.logging import get_logger
from xypr.core.metrics import EVENTS, STAGE_LATENCY
from xypr.core.retry import RetryPolicy
from xypr.events import QueuedEvent
from xypr.retry_parking import ParkedEvent, ParkingStore

__all__ = ["Handoff", "HandoffFailed", "KeyedLocks", "Parking", "Stage", "attempts_of", "exhausted_error", "run_stage"]

log = get_logger(__name__)

E = TypeVar("E", bound=QueuedEvent)
R = TypeVar("R", bound=QueuedEvent)


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


class HandoffFailed(Exception):
    """The next stage, run in place by a `Handoff`, failed with `cause` (not permanently): the calling stage
    retries its own event, and once retries run out the request is dead-lettered in the next stage's queue."""

    def __init__(self, handoff: Handoff[Any], request: QueuedEvent, customer: str, cause: Exception) -> None:
        super().__init__(f"{handoff.stage.name}: {type(cause).__name__}: {cause}")
        self.handoff = handoff
        self.request = request
        self.customer = customer
        self.cause = cause


class Handoff(Generic[R]):
    """How a stage passes a request on to the next stage: queued for it (two hops), or, `direct`, handled
    here at once by that stage's own handler (one hop: no second publish, consume and parking lookup).

    Direct, the calling stage keeps the conversation's order (its key lock is held) and its retries cover
    the call: a transient failure is raised as `HandoffFailed`, so the caller tries its own (idempotent)
    event again, parks it, and at the end of its retries lets the next stage report the failure
    (`on_exhausted`) and dead-letters the request in the next stage's queue, as that stage would have.
    A permanent failure is reported and dead-lettered here, and the calling event is done.
    """

    def __init__(self, stage: Stage[R], broker: Broker, *, direct: bool) -> None:
        self.stage = stage
        self.broker = broker
        self.direct = direct

    async def __call__(self, request: R, *, customer: str) -> None:
        """Hand `request` (of the conversation of `customer`) on."""
        if not self.direct:
            await self.broker.publish(self.stage.queue, [request.to_outgoing(customer=customer)])
            return
        stage = self.stage
        try:
            outcome = await stage.handle(request)
        except PermanentError as exc:
            EVENTS.labels(stage.name, "failed").inc()
            log.warning("event.failed", error=exc.message, reason=exc.reason, handed_to=stage.name)
            if await stage.on_permanent(request, exc):
                EVENTS.labels(stage.name, "dead_lettered").inc()
                await self.dead_letter(request, customer, exc.message)
            return
        except Exception as exc:
            if isinstance(exc, TransientError):
                await stage.on_transient(request, exc)
            raise HandoffFailed(self, request, customer, exc) from exc
        EVENTS.labels(stage.name, outcome).inc()
        _observe_latency(stage, request)

    async def dead_letter(self, request: R, customer: str, error: str) -> None:
        """Store `request` as a dead letter of the next stage's queue (replayable there)."""
        outgoing = request.to_outgoing(customer=customer)
        await self.broker.store_dead_letter(
            queue=self.stage.queue, key=outgoing.key, body=outgoing.body, headers=outgoing.headers, error=error
        )


def _cause(exc: Exception) -> Exception:
    """What failed: the next stage's error for a failed handoff, else `exc` itself."""
    return exc.cause if isinstance(exc, HandoffFailed) else exc


async def _before_retry(stage: Stage[Any], event: QueuedEvent, exc: Exception) -> None:
    # A failed handoff told its own stage already (`Handoff.__call__`).
    if isinstance(exc, TransientError):
        await stage.on_transient(event, exc)


async def _exhausted(stage: Stage[Any], event: QueuedEvent, exc: Exception, attempt: int) -> bool:
    """Report an event whose retries ran out; True when a failed handoff's request was dead-lettered in its
    stead (then the event itself is done), False when the caller dead-letters the event."""
    if isinstance(exc, HandoffFailed):
        await exc.handoff.stage.on_exhausted(exc.request, exc.cause)
        EVENTS.labels(exc.handoff.stage.name, "dead_lettered").inc()
        await exc.handoff.dead_letter(exc.request, exc.customer, exhausted_error(exc.cause, attempt))
        return True
    await stage.on_exhausted(event, exc)
    return False


@dataclass(frozen=True, slots=True)
class Parking:
    """Where a stage parks events failing transiently for longer than `after` seconds, and how it drains them."""

    store: ParkingStore
    after: float
    lease_seconds: float = 60.0
    # Shortest and longest sleep of a drainer between looks at the store; parking in this process wakes it.
    poll_interval: float = 0.2
    idle_poll_interval: float = 2.0


def _retry_wait(policy: RetryPolicy, exc: Exception, attempt: int, elapsed: float, transient: bool) -> float:
    retry_after = exc.retry_after if isinstance(exc, TransientError) else None
    growth = exc.growth if isinstance(exc, TransientError) else 2.0
    wait = policy.delay(attempt, retry_after=retry_after, growth=growth)
    if policy.horizon is not None and transient:
        # The last try lands on the horizon rather than a whole backoff step after it.
        wait = max(0.0, min(wait, policy.horizon - elapsed))
    return wait


async def _process(
    stage: Stage[Any],
    delivery: Delivery,
    policy: RetryPolicy,
    stopping: asyncio.Event,
    parking: Parking | None = None,
    parked: asyncio.Event | None = None,
) -> None:
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
    bound = {"stage": stage.name, "key": delivery.key, "correlation_id": event.correlation_id}
    with structlog.contextvars.bound_contextvars(**bound):
        started = time.monotonic()
        first_try_at = time.time()
        attempt = 0
        # Whether the key's parked events (if any) were looked for: a later message must not overtake them.
        checked = parking is None
        while True:
            attempt += 1
            try:
                if parking is not None and not checked:
                    if await parking.store.join(delivery.queue, delivery.key, delivery.body, delivery.headers):
                        EVENTS.labels(stage.name, "parked").inc()
                        log.info("event.parked", behind="parked events of its key")
                        await delivery.ack()
                        return
                    checked = True
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
                cause = _cause(exc)
                transient = is_transient(cause)
                if not transient:
                    log.exception("event.error", attempt=attempt)
                elapsed = time.monotonic() - started
                if policy.exhausted(attempt, elapsed=elapsed, transient=transient):
                    log.error("event.dead_lettered", attempt=attempt, error=str(exc)[:500])
                    if await _exhausted(stage, event, exc, attempt):
                        await delivery.ack()
                    else:
                        EVENTS.labels(stage.name, "dead_lettered").inc()
                        await delivery.dead_letter(exhausted_error(exc, attempt))
                    return
                wait = _retry_wait(policy, cause, attempt, elapsed, transient)
                EVENTS.labels(stage.name, "retried").inc()
                log.info("event.retry", attempt=attempt, wait=round(wait, 3), error=str(exc)[:300])
                await _before_retry(stage, event, exc)
                if (
                    parking is not None
                    and checked
                    and transient
                    and elapsed >= parking.after
                    # Taken back by the broker (channel closed, consumer stopped): its redelivery is handled
                    # elsewhere; parking a copy here would only add a duplicate behind it.
                    and delivery.owned
                    and await _park(parking, delivery, exc, first_try_at=first_try_at, attempt=attempt, wait=wait)
                ):
                    EVENTS.labels(stage.name, "parked").inc()
                    await delivery.ack()
                    if parked is not None:
                        parked.set()
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=wait)
                if stopping.is_set():
                    # Between tries nothing is in flight: give it back for the next process to retry.
                    log.info("event.released", attempt=attempt)
                    await delivery.release()
                    return
                continue
            EVENTS.labels(stage.name, outcome).inc()
            _observe_latency(stage, event)
            await delivery.ack()
            return


def _observe_latency(stage: Stage[Any], event: QueuedEvent) -> None:
    STAGE_LATENCY.labels(stage.name).observe(max(0.0, time.time() - event.accepted_at))


async def _park(
    parking: Parking, delivery: Delivery, exc: Exception, *, first_try_at: float, attempt: int, wait: float
) -> bool:
    """Write the delivery to the parking store (then the caller acknowledges it); False when that failed."""
    try:
        await parking.store.park(
            delivery.queue,
            delivery.key,
            delivery.body,
            delivery.headers,
            first_try_at=first_try_at,
            attempts=attempt,
            next_attempt_at=time.time() + wait,
            error=f"{type(exc).__name__}: {exc}",
        )
    except Exception as failure:
        # The database is unreachable too: keep retrying in place, as before parking existed.
        log.warning("event.park_failed", attempt=attempt, error=f"{type(failure).__name__}: {failure}"[:300])
        return False
    log.info("event.parked", attempt=attempt, next_try_in=round(wait, 3))
    return True


class _Drainer:
    """Retries the parked keys of one stage: leases due keys, tries each key's head, goes on in order."""

    def __init__(
        self, stage: Stage[Any], *, broker: Broker, policy: RetryPolicy, parking: Parking, concurrency: int
    ) -> None:
        self.stage = stage
        self.broker = broker
        self.policy = policy
        self.parking = parking
        self.concurrency = concurrency
        self.owner = uuid.uuid4().hex
        self.wake = asyncio.Event()
        self._keys: dict[str, asyncio.Task[None]] = {}
        self._runner: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run())

    async def _run(self) -> None:
        store, queue = self.parking.store, self.stage.queue
        unavailable = False
        while not self._stopping:
            self.wake.clear()
            sleep = self.parking.idle_poll_interval
            try:
                due = await store.next_due(queue)
                now = time.time()
                free = self.concurrency - len(self._keys)
                if due is not None and due <= now and free > 0:
                    claimed = await store.claim(queue, self.owner, limit=free, lease_seconds=self.parking.lease_seconds)
                    for key in claimed:
                        if key not in self._keys:  # still draining it here (its lease ran out meanwhile)
                            self._start(key)
                    sleep = self.parking.poll_interval
                elif due is not None:
                    sleep = max(self.parking.poll_interval, min(due - now, sleep))
                if unavailable:
                    log.info("parking.available", stage=self.stage.name)
                    unavailable = False
            except Exception as exc:
                if not unavailable:
                    log.warning("parking.unavailable", stage=self.stage.name, error=f"{type(exc).__name__}: {exc}")
                    unavailable = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=sleep)

    def _start(self, key: str) -> None:
        task = asyncio.create_task(self._drain(key))
        self._keys[key] = task

        def done(finished: asyncio.Task[None]) -> None:
            if self._keys.get(key) is finished:
                del self._keys[key]
            self.wake.set()

        task.add_done_callback(done)

    async def _drain(self, key: str) -> None:
        """Try the key's events in order until one fails again (rescheduled) or none is left.

        The key's lease is renewed every third of its length meanwhile: a try slower than the lease (a large
        media download, an upstream answering at its timeout) must not let another drainer take the key and
        send its head a second time, or its next event before it.
        """
        store = self.parking.store
        keeping = asyncio.create_task(self._keep_lease(key))
        try:
            while not self._stopping:
                parked = await store.head(self.stage.queue, key)
                if parked is None:
                    return
                if not await self._try(parked):
                    return
                if not await store.remove(parked, self.owner, lease_seconds=self.parking.lease_seconds):
                    log.info("parking.drained", stage=self.stage.name, key=key)
                    return
        except Exception as exc:
            # The database or the broker went away: the lease runs out and the key is tried again.
            log.warning("parking.drain_failed", stage=self.stage.name, key=key, error=f"{type(exc).__name__}: {exc}")
        finally:
            keeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeping

    async def _keep_lease(self, key: str) -> None:
        """Renew this drainer's lease on `key` every third of the lease until cancelled (the drain is over)."""
        store, lease = self.parking.store, self.parking.lease_seconds
        while True:
            await asyncio.sleep(lease / 3)
            try:
                if not await store.renew(self.stage.queue, key, self.owner, lease_seconds=lease):
                    log.warning("parking.lease_lost", stage=self.stage.name, key=key)
                    return
            except Exception as exc:  # the database is away: the next renewal may still come in time
                log.warning("parking.lease_renewal_failed", stage=self.stage.name, key=key, error=str(exc))

    async def _try(self, parked: ParkedEvent) -> bool:
        """One try of a parked event; True when it is settled (done, failed for good, dead-lettered)."""
        stage = self.stage
        try:
            event = stage.event_type.model_validate_json(parked.body)
        except ValidationError as exc:
            EVENTS.labels(stage.name, "dead_lettered").inc()
            log.error("event.malformed", stage=stage.name, error=str(exc)[:500])
            await self._dead_letter(parked, f"malformed event: {exc}"[:2000])
            return True
        # A joined event was never tried: its horizon starts now.
        first_try_at = parked.first_try_at if parked.attempts else time.time()
        attempt = parked.attempts + 1
        bound = {"stage": stage.name, "key": parked.key, "correlation_id": event.correlation_id}
        with structlog.contextvars.bound_contextvars(**bound):
            try:
                outcome = await stage.handle(event)
            except PermanentError as exc:
                EVENTS.labels(stage.name, "failed").inc()
                log.warning("event.failed", error=exc.message, reason=exc.reason)
                if await stage.on_permanent(event, exc):
                    EVENTS.labels(stage.name, "dead_lettered").inc()
                    await self._dead_letter(parked, exc.message)
                return True
            except Exception as exc:
                cause = _cause(exc)
                transient = is_transient(cause)
                if not transient:
                    log.exception("event.error", attempt=attempt)
                elapsed = time.time() - first_try_at
                if self.policy.exhausted(attempt, elapsed=elapsed, transient=transient):
                    log.error("event.dead_lettered", attempt=attempt, error=str(exc)[:500])
                    if not await _exhausted(stage, event, exc, attempt):
                        EVENTS.labels(stage.name, "dead_lettered").inc()
                        await self._dead_letter(parked, exhausted_error(exc, attempt))
                    return True
                wait = _retry_wait(self.policy, cause, attempt, elapsed, transient)
                EVENTS.labels(stage.name, "retried").inc()
                log.info("event.retry", attempt=attempt, wait=round(wait, 3), error=str(exc)[:300], parked=True)
                await _before_retry(stage, event, exc)
                await self.parking.store.retry_later(
                    parked,
                    self.owner,
                    first_try_at=first_try_at,
                    attempts=attempt,
                    next_attempt_at=time.time() + wait,
                    error=f"{type(exc).__name__}: {exc}",
                )
                return False
            EVENTS.labels(stage.name, outcome).inc()
            _observe_latency(stage, event)
            return True

    async def _dead_letter(self, parked: ParkedEvent, error: str) -> None:
        await self.broker.store_dead_letter(
            queue=parked.queue, key=parked.key, body=parked.body, headers=parked.headers, error=error
        )

    async def stop(self, *, grace: float = 0.0) -> None:
        """Claim nothing more, let keys being tried finish within `grace`, cancel the rest, give the leases back."""
        self._stopping = True
        self.wake.set()
        running = list(self._keys.values())
        if running and grace > 0:
            await asyncio.wait(running, timeout=grace)
        tasks = [task for task in (self._runner, *self._keys.values()) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.parking.store.release(self.stage.queue, self.owner)


class _StageConsumer(Consumer):
    """The broker's consumer and the stage's drainer, plus telling the stage's handlers that the process is stopping."""

    def __init__(self, consumer: Consumer, stopping: asyncio.Event, drainer: _Drainer | None) -> None:
        self._consumer = consumer
        self._stopping = stopping
        self._drainer = drainer

    async def stop(self, *, grace: float = 0.0) -> None:
        """Handlers between tries give their delivery back at once; those sending get `grace` seconds."""
        self._stopping.set()
        stops = [self._consumer.stop(grace=grace)]
        if self._drainer is not None:
            stops.append(self._drainer.stop(grace=grace))
        await asyncio.gather(*stops)


async def run_stage(
    stage: Stage[Any], *, broker: Broker, policy: RetryPolicy, prefetch: int, parking: Parking | None = None
) -> Consumer:
    """Start consuming `stage.queue` (and, given `parking`, draining its parked events); the returned
    consumer stops both (gracefully, given a grace period)."""
    locks = KeyedLocks()
    stopping = asyncio.Event()
    drainer: _Drainer | None = None
    if parking is not None:
        drainer = _Drainer(stage, broker=broker, policy=policy, parking=parking, concurrency=prefetch)
    wake = drainer.wake if drainer is not None else None

    async def on_delivery(delivery: Delivery) -> None:
        try:
            await locks.run(delivery.key, lambda: _process(stage, delivery, policy, stopping, parking, wake))
        except asyncio.CancelledError:
            await asyncio.shield(delivery.release())
            raise

    consumer = await broker.consume(stage.queue, on_delivery, prefetch=prefetch)
    if drainer is not None:
        drainer.start()
    return _StageConsumer(consumer, stopping, drainer)
