"""One queue hop: a stage hands its request to the next stage in place; failures end where they did with
two hops (the next stage's hooks, its queue's dead letters); both backends."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import orjson
import pytest

from tests.support.live import eventually
from xypr.backends.broker.base import Consumer, Delivery
from xypr.config import Settings
from xypr.core.errors import PermanentError, TransientError
from xypr.core.retry import RetryPolicy
from xypr.events import QueuedEvent
from xypr.retry_parking import ParkingStore
from xypr.runtime import Runtime
from xypr.stage import Handoff, Parking, Stage, attempts_of, run_stage
from xypr.topology import INBOUND_WHATSAPP, SEND_GENESYS


class Item(QueuedEvent):
    """What the first stage consumes and what it hands on (one per conversation turn)."""

    customer: str
    n: int


async def _until(condition: Callable[[], bool], *, within: float = 10) -> None:
    async def probe() -> bool:
        return condition()

    await eventually(probe, within=within)


def _item(customer: str, n: int) -> Item:
    return Item(tenant_id="t1", accepted_at=time.time(), correlation_id=f"c-{customer}-{n}", customer=customer, n=n)


class Sender(Stage[Item]):
    """The next stage: fails transiently or permanently for the customers listed, records the rest."""

    name = "test-sender"
    queue = SEND_GENESYS
    event_type = Item

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.refused: set[str] = set()
        self.sent: list[tuple[str, int]] = []
        self.transient: list[int] = []
        self.permanent: list[int] = []
        self.exhausted: list[int] = []

    async def handle(self, event: Item) -> str:
        if event.customer in self.refused:
            raise PermanentError("refused for good")
        if event.customer in self.down:
            raise TransientError("upstream HTTP 503")
        self.sent.append((event.customer, event.n))
        return "processed"

    async def on_transient(self, event: Item, error: TransientError) -> None:
        self.transient.append(event.n)

    async def on_permanent(self, event: Item, error: PermanentError) -> bool:
        self.permanent.append(event.n)
        return True

    async def on_exhausted(self, event: Item, error: Exception) -> None:
        self.exhausted.append(event.n)


class Transformer(Stage[Item]):
    """The first stage: counts its tries, hands each item on."""

    name = "test-transformer"
    queue = INBOUND_WHATSAPP
    event_type = Item

    def __init__(self, send: Handoff[Item]) -> None:
        self.send = send
        self.tries = 0
        self.exhausted: list[int] = []

    async def handle(self, event: Item) -> str:
        self.tries += 1
        await self.send(event, customer=event.customer)
        return "processed"

    async def on_exhausted(self, event: Item, error: Exception) -> None:
        self.exhausted.append(event.n)


@pytest.fixture
async def runtime(backend_settings: Settings) -> AsyncIterator[Runtime]:
    runtime = await Runtime.open(backend_settings.model_copy(update={"partitions": 1}), run_migrations=True)
    try:
        yield runtime
    finally:
        await runtime.close()


async def _start(runtime: Runtime, stage: Stage[Item], *, horizon: float = 60.0, park_after: float = 30.0) -> Consumer:
    policy = RetryPolicy(base=0.05, cap=0.1, horizon=horizon)
    parking = Parking(ParkingStore(runtime.database), after=park_after, poll_interval=0.05)
    return await run_stage(stage, broker=runtime.broker, policy=policy, prefetch=4, parking=parking)


async def test_direct_the_request_is_sent_in_place_in_order_and_the_second_queue_stays_empty(runtime: Runtime) -> None:
    sender = Sender()
    transformer = Transformer(Handoff(sender, runtime.broker, direct=True))
    consumer = await _start(runtime, transformer)
    try:
        await runtime.broker.publish(
            INBOUND_WHATSAPP, [_item(c, n).to_outgoing(customer=c) for n in range(5) for c in "ab"]
        )

        async def all_sent() -> bool:
            return len(sender.sent) == 10

        await eventually(all_sent, within=10)
    finally:
        await consumer.stop()
    for customer in "ab":
        assert [n for c, n in sender.sent if c == customer] == list(range(5))
    assert await runtime.broker.depth(SEND_GENESYS) == 0
    assert await runtime.broker.dead_letters() == []


async def test_queued_the_request_goes_on_the_second_queue_with_its_key_and_correlation_id(runtime: Runtime) -> None:
    sender = Sender()
    transformer = Transformer(Handoff(sender, runtime.broker, direct=False))
    consumer = await _start(runtime, transformer)
    taken: list[Delivery] = []

    async def take(delivery: Delivery) -> None:
        taken.append(delivery)
        await delivery.ack()

    try:
        await runtime.broker.publish(INBOUND_WHATSAPP, [_item("a", 0).to_outgoing(customer="a")])
        reader = await runtime.broker.consume(SEND_GENESYS, take, prefetch=1)
        try:
            await _until(lambda: bool(taken))
        finally:
            await reader.stop()
    finally:
        await consumer.stop()
    assert sender.sent == []  # nothing sent in place
    assert taken[0].key == "t1:a"
    assert taken[0].headers.get("correlation_id") == "c-a-0"
    assert Item.model_validate_json(taken[0].body).n == 0


async def test_a_transient_failure_retries_the_first_stage_and_the_sender_hears_of_each_try(runtime: Runtime) -> None:
    sender = Sender()
    sender.down.add("a")
    transformer = Transformer(Handoff(sender, runtime.broker, direct=True))
    consumer = await _start(runtime, transformer)
    try:
        await runtime.broker.publish(INBOUND_WHATSAPP, [_item("a", n).to_outgoing(customer="a") for n in range(2)])
        await _until(lambda: len(sender.transient) >= 3)
        assert sender.sent == []  # the second item waits behind the first
        sender.down.clear()

        async def both_sent() -> bool:
            return len(sender.sent) == 2

        await eventually(both_sent, within=10)
    finally:
        await consumer.stop()
    assert sender.sent == [("a", 0), ("a", 1)]
    assert transformer.tries >= 4
    assert await runtime.broker.dead_letters() == []


async def test_a_permanent_failure_is_the_senders_to_report_and_its_queue_keeps_the_dead_letter(
    runtime: Runtime,
) -> None:
    sender = Sender()
    sender.refused.add("a")
    transformer = Transformer(Handoff(sender, runtime.broker, direct=True))
    consumer = await _start(runtime, transformer)
    try:
        await runtime.broker.publish(
            INBOUND_WHATSAPP, [_item("a", 0).to_outgoing(customer="a"), _item("b", 0).to_outgoing(customer="b")]
        )
        await eventually(runtime.broker.dead_letters, within=10)
        await _until(lambda: bool(sender.sent))
    finally:
        await consumer.stop()
    assert sender.permanent == [0]
    assert sender.sent == [("b", 0)]
    [letter] = await runtime.broker.dead_letters()
    assert (letter.queue, letter.key, letter.error) == (SEND_GENESYS, "t1:a", "refused for good")
    assert orjson.loads(letter.body)["customer"] == "a"
    assert transformer.tries == 2  # the first stage's event was done, not retried


async def test_retries_run_out_the_sender_reports_it_and_the_request_is_dead_lettered_in_its_queue(
    runtime: Runtime,
) -> None:
    sender = Sender()
    sender.down.add("a")
    transformer = Transformer(Handoff(sender, runtime.broker, direct=True))
    consumer = await _start(runtime, transformer, horizon=0.5)
    try:
        await runtime.broker.publish(INBOUND_WHATSAPP, [_item("a", 0).to_outgoing(customer="a")])
        await eventually(runtime.broker.dead_letters, within=10)
    finally:
        await consumer.stop()
    assert sender.exhausted == [0]
    assert transformer.exhausted == []  # the failure was the sender's
    [letter] = await runtime.broker.dead_letters()
    assert (letter.queue, letter.key) == (SEND_GENESYS, "t1:a")
    assert letter.error.startswith("TransientError: upstream HTTP 503")
    assert attempts_of(letter.error) == transformer.tries
    assert await runtime.broker.depth(INBOUND_WHATSAPP) == 0


async def test_a_send_failing_past_park_after_parks_the_first_stages_event_then_delivers_in_order(
    runtime: Runtime,
) -> None:
    sender = Sender()
    sender.down.add("a")
    store = ParkingStore(runtime.database)
    transformer = Transformer(Handoff(sender, runtime.broker, direct=True))
    consumer = await _start(runtime, transformer, park_after=0.2)
    try:
        await runtime.broker.publish(INBOUND_WHATSAPP, [_item("a", n).to_outgoing(customer="a") for n in range(3)])

        async def parked() -> bool:
            return (await store.counts()).get(INBOUND_WHATSAPP) == 3

        await eventually(parked, within=10)
        sender.down.clear()

        async def all_sent() -> bool:
            return len(sender.sent) == 3

        await eventually(all_sent, within=10)
    finally:
        await consumer.stop()
    assert sender.sent == [("a", 0), ("a", 1), ("a", 2)]
    assert await runtime.broker.dead_letters() == []
