"""Retry parking: a conversation held by an outage leaves the queue, keeps its order, starves nobody; both backends."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator

import pytest

from tests.support.live import eventually
from xypr.backends.broker.base import Consumer, OutgoingMessage
from xypr.config import Settings
from xypr.core.errors import TransientError
from xypr.core.retry import RetryPolicy
from xypr.events import QueuedEvent
from xypr.retry_parking import ParkingStore
from xypr.runtime import Runtime
from xypr.stage import Parking, Stage, attempts_of, run_stage
from xypr.topology import SEND_GENESYS

QUEUE = SEND_GENESYS


class Note(QueuedEvent):
    tenant_id: str = "tenant-a"
    accepted_at: float = 0.0
    correlation_id: str = "note"
    key: str
    n: int


class Upstream(Stage[Note]):
    """Handles notes; the keys in `down` fail transiently, like a tenant whose Genesys is down."""

    name = "test-upstream"
    queue = QUEUE
    event_type = Note

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.handled: list[tuple[str, int]] = []
        self.exhausted: list[tuple[str, int]] = []

    async def handle(self, event: Note) -> str:
        if event.key in self.down:
            raise TransientError("Genesys HTTP 503")
        self.handled.append((event.key, event.n))
        return "processed"

    async def on_exhausted(self, event: Note, error: Exception) -> None:
        self.exhausted.append((event.key, event.n))


@pytest.fixture
async def runtime(backend_settings: Settings) -> AsyncIterator[Runtime]:
    """One partition: every conversation shares it (and, on RabbitMQ, its channel's prefetch)."""
    runtime = await Runtime.open(backend_settings.model_copy(update={"partitions": 1}), run_migrations=True)
    try:
        yield runtime
    finally:
        await runtime.close()


def _note(key: str, n: int) -> OutgoingMessage:
    return OutgoingMessage(body=Note(key=key, n=n).model_dump_json().encode(), key=key)


async def _nothing_parked(store: ParkingStore) -> None:
    """Eventually: a parked row goes just after its event was handled or its dead letter stored."""

    async def empty() -> bool:
        return await store.counts() == {}

    await eventually(empty, within=5)


async def _start(runtime: Runtime, stage: Upstream, *, horizon: float = 60.0, prefetch: int = 2) -> Consumer:
    policy = RetryPolicy(base=0.05, cap=0.2, horizon=horizon)
    parking = Parking(ParkingStore(runtime.database), after=0.3, poll_interval=0.05)
    return await run_stage(stage, broker=runtime.broker, policy=policy, prefetch=prefetch, parking=parking)


async def test_conversations_held_longer_than_park_after_leave_the_partition_to_the_others_then_arrive_in_order(
    runtime: Runtime,
) -> None:
    """More held conversations than the concurrency (and prefetch); B is delivered meanwhile; A later, in order."""
    stage = Upstream()
    held = [f"tenant-a:{n}" for n in range(4)]
    stage.down.update(held)
    consumer = await _start(runtime, stage, prefetch=2)
    try:
        for round_ in range(2):
            await runtime.broker.publish(QUEUE, [_note(key, round_) for key in held])
        await runtime.broker.publish(QUEUE, [_note("tenant-b:1", n) for n in range(3)])

        async def b_delivered() -> bool:
            return [n for key, n in stage.handled if key == "tenant-b:1"] == [0, 1, 2]

        # Held in place, two of A's conversations kept both slots (and the prefetch) for the whole outage.
        await eventually(b_delivered, within=10)
        assert not [key for key, _ in stage.handled if key in held]
        assert (await ParkingStore(runtime.database).counts()).get(QUEUE, 0) >= len(held)

        stage.down.clear()  # Genesys is back

        async def a_delivered() -> bool:
            return len([key for key, _ in stage.handled if key in held]) >= 2 * len(held)

        await eventually(a_delivered, within=15)
        await asyncio.sleep(0.3)
        by_key: dict[str, list[int]] = defaultdict(list)
        for key, n in stage.handled:
            by_key[key].append(n)
        assert {key: by_key[key] for key in held} == {key: [0, 1] for key in held}  # once each, in order
        await _nothing_parked(ParkingStore(runtime.database))
        assert await runtime.broker.dead_letters() == []
    finally:
        await consumer.stop()


async def test_a_parked_conversation_past_the_horizon_is_dead_lettered_with_its_attempts(runtime: Runtime) -> None:
    """The horizon counts from the first try, stored with the parked event: a restart does not extend it."""
    stage = Upstream()
    stage.down.add("tenant-a:1")
    store = ParkingStore(runtime.database)
    consumer = await _start(runtime, stage, horizon=1.5)
    published = time.time()
    try:
        await runtime.broker.publish(QUEUE, [_note("tenant-a:1", 0), _note("tenant-a:1", 1)])

        async def both_parked() -> bool:
            return (await store.counts()).get(QUEUE) == 2

        await eventually(both_parked, within=10)
    finally:
        await consumer.stop()
    await asyncio.sleep(1.0)  # the process is down for a while
    restarted = Upstream()
    restarted.down.add("tenant-a:1")
    consumer = await _start(runtime, restarted, horizon=1.5)
    try:

        async def both_dead() -> bool:
            return len(await runtime.broker.dead_letters()) >= 2

        await eventually(both_dead, within=15)
        letters = await runtime.broker.dead_letters()
        assert [(letter.queue, letter.key, Note.model_validate_json(letter.body).n) for letter in letters] == [
            (QUEUE, "tenant-a:1", 0),
            (QUEUE, "tenant-a:1", 1),
        ]
        for letter in letters:
            assert letter.error.startswith("TransientError: Genesys HTTP 503 (after ")
            assert attempts_of(letter.error) > 1
        # Counted from the restart it would end ≥ 0.3 + 1.0 + 1.5 s after the publish.
        assert letters[0].dead_at.timestamp() - published < 2.6
        assert restarted.exhausted == [("tenant-a:1", 0), ("tenant-a:1", 1)]
        assert stage.handled == restarted.handled == []
        await _nothing_parked(store)
    finally:
        await consumer.stop()


async def test_parked_events_survive_a_restart_and_are_delivered_once_in_order(runtime: Runtime) -> None:
    stage = Upstream()
    stage.down.add("tenant-a:1")
    consumer = await _start(runtime, stage)
    store = ParkingStore(runtime.database)
    try:
        await runtime.broker.publish(QUEUE, [_note("tenant-a:1", n) for n in range(3)])

        async def all_parked() -> bool:
            return (await store.counts()).get(QUEUE) == 3

        await eventually(all_parked, within=10)
    finally:
        await consumer.stop(grace=0)
    assert await runtime.broker.depth(QUEUE) == 0  # out of the queue: only the parking store has them

    restarted = Upstream()  # a new process: Genesys is back
    consumer = await _start(runtime, restarted)
    try:

        async def delivered() -> bool:
            return len(restarted.handled) >= 3

        await eventually(delivered, within=10)
        await asyncio.sleep(0.3)
        assert restarted.handled == [("tenant-a:1", 0), ("tenant-a:1", 1), ("tenant-a:1", 2)]
        await _nothing_parked(store)
    finally:
        await consumer.stop()


async def test_a_delivery_parked_twice_is_stored_once_and_joins_only_a_parked_key(runtime: Runtime) -> None:
    store = ParkingStore(runtime.database)
    body = Note(key="k", n=0).model_dump_json().encode()
    assert not await store.join(QUEUE, "k", body, {})  # nothing parked: handled in place
    for _ in range(2):  # the process died between parking and acknowledging: redelivered, parked again
        await store.park(
            QUEUE, "k", body, {"h": "1"}, first_try_at=time.time(), attempts=3, next_attempt_at=0, error="e"
        )
    assert await store.join(QUEUE, "k", body, {"h": "1"})  # the same delivery once more, joining
    later = Note(key="k", n=1).model_dump_json().encode()
    assert await store.join(QUEUE, "k", later, {})
    assert await store.counts() == {QUEUE: 2}

    assert await store.claim(QUEUE, "one", limit=10, lease_seconds=60) == ["k"]
    assert await store.claim(QUEUE, "two", limit=10, lease_seconds=60) == []  # leased: never drained twice
    head = await store.head(QUEUE, "k")
    assert head is not None
    assert (head.body, head.headers, head.attempts) == (body, {"h": "1"}, 3)
    assert await store.remove(head, "one", lease_seconds=60)
    head = await store.head(QUEUE, "k")
    assert head is not None
    assert head.body == later
    assert head.attempts == 0
    assert not await store.remove(head, "one", lease_seconds=60)
    assert not await store.is_parked(QUEUE, "k")


async def test_a_delivery_joining_while_the_last_event_is_removed_is_never_left_behind(runtime: Runtime) -> None:
    """Join and removal of the key's last event serialise on the key row: the joiner is either found by the
    drainer or handled in place, never stranded (a parked event without its key row)."""
    store = ParkingStore(runtime.database)
    outcomes: set[bool] = set()
    for n in range(30):
        key = f"race-{n}"
        await store.park(QUEUE, key, b"first", {}, first_try_at=time.time(), attempts=1, next_attempt_at=0, error="e")
        assert await store.claim(QUEUE, "drainer", limit=100, lease_seconds=60) == [key]
        head = await store.head(QUEUE, key)
        assert head is not None
        joined, more = await asyncio.gather(
            store.join(QUEUE, key, b"second", {}), store.remove(head, "drainer", lease_seconds=60)
        )
        outcomes.add(joined)
        if joined:
            # Joined before the removal committed: the drainer saw it; the key stays parked with it.
            assert more
            assert await store.is_parked(QUEUE, key)
            follower = await store.head(QUEUE, key)
            assert follower is not None
            assert follower.body == b"second"
            assert not await store.remove(follower, "drainer", lease_seconds=60)
        else:
            assert not more
        assert not await store.is_parked(QUEUE, key)
        assert (await store.counts()).get(QUEUE, 0) == 0


async def test_lookups_made_together_answer_each_key_for_itself(runtime: Runtime) -> None:
    """Many events asking at once whether their key is parked: one statement, each its own answer."""
    store = ParkingStore(runtime.database)
    for key in ("k1", "k4"):
        await store.park(QUEUE, key, b"held", {}, first_try_at=time.time(), attempts=1, next_attempt_at=0, error="e")
    await store.park(
        "other.queue", "k2", b"held", {}, first_try_at=time.time(), attempts=1, next_attempt_at=0, error="e"
    )
    asked = ["k0", "k1", "k2", "k1", "k3", "k4", "k'; --"]

    answers = await asyncio.gather(*(store.is_parked(QUEUE, key) for key in asked))

    assert answers == [False, True, False, True, False, True, False]
    assert await store.is_parked("other.queue", "k2")


class SlowUpstream(Upstream):
    """Once Genesys is back, each try takes `slow` seconds; records tries that overlapped on one key."""

    def __init__(self, slow: float) -> None:
        super().__init__()
        self.slow = slow
        self.tries: list[tuple[str, int]] = []
        self.overlaps: list[tuple[str, int]] = []
        self._trying: set[str] = set()

    async def handle(self, event: Note) -> str:
        if event.key in self.down:
            raise TransientError("Genesys HTTP 503")
        if event.key in self._trying:
            self.overlaps.append((event.key, event.n))
        self._trying.add(event.key)
        self.tries.append((event.key, event.n))
        try:
            await asyncio.sleep(self.slow)
        finally:
            self._trying.discard(event.key)
        self.handled.append((event.key, event.n))
        return "processed"


async def test_a_try_slower_than_the_lease_keeps_its_key_from_the_other_drainers(runtime: Runtime) -> None:
    """Two processes' drainers; each try outlasts the lease three times: the lease is renewed, nothing runs twice."""
    stage = SlowUpstream(slow=1.2)
    stage.down.add("tenant-a:1")
    policy = RetryPolicy(base=0.05, cap=0.2, horizon=60)

    def parking() -> Parking:
        return Parking(ParkingStore(runtime.database), after=0.3, lease_seconds=0.4, poll_interval=0.05)

    consumers = [
        await run_stage(stage, broker=runtime.broker, policy=policy, prefetch=2, parking=parking()) for _ in range(2)
    ]
    store = ParkingStore(runtime.database)
    try:
        await runtime.broker.publish(QUEUE, [_note("tenant-a:1", n) for n in range(2)])

        async def parked() -> bool:
            return (await store.counts()).get(QUEUE) == 2

        await eventually(parked, within=10)
        stage.down.clear()

        async def delivered() -> bool:
            return len(stage.handled) >= 2

        await eventually(delivered, within=15)
        await asyncio.sleep(1.5)  # a second drainer that took a key over would have started its try by now
        assert stage.overlaps == []
        assert stage.tries == stage.handled == [("tenant-a:1", 0), ("tenant-a:1", 1)]
        await _nothing_parked(store)
    finally:
        for consumer in consumers:
            await consumer.stop()


async def test_a_lease_is_renewed_only_by_its_owner(runtime: Runtime) -> None:
    store = ParkingStore(runtime.database)
    body = Note(key="k", n=0).model_dump_json().encode()
    await store.park(QUEUE, "k", body, {}, first_try_at=time.time(), attempts=1, next_attempt_at=0, error="e")
    assert await store.claim(QUEUE, "one", limit=10, lease_seconds=0.2) == ["k"]
    assert await store.renew(QUEUE, "k", "one", lease_seconds=60)
    assert not await store.renew(QUEUE, "k", "two", lease_seconds=60)
    await asyncio.sleep(0.3)
    assert await store.claim(QUEUE, "two", limit=10, lease_seconds=60) == []  # renewed: still one's
    assert not await store.renew(QUEUE, "gone", "one", lease_seconds=60)
