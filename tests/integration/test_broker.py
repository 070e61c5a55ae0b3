"""The broker contract, run against RabbitMQ and the embedded SQLite queue alike."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sqlite3
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from yarl import URL

from tests.support.moto import free_port
from xypr.backends.broker import create_broker
from xypr.backends.broker.base import Broker, BrokerUnavailable, Delivery, OutgoingMessage
from xypr.backends.broker.embedded import SqliteQueueBroker
from xypr.backends.broker.rabbitmq import RabbitBroker
from xypr.config import Settings
from xypr.topology import INBOUND_WHATSAPP, QUEUES, SEND_WHATSAPP

AMQP_URL = os.environ.get("XYPR_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PARTITIONS = 4
QUEUE = INBOUND_WHATSAPP
TIMEOUT = 15.0


class Backend:
    """Builds brokers of one implementation that share one namespace (RabbitMQ) or one file."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.namespace = f"test-{uuid.uuid4().hex[:8]}"
        self.path = tmp_path / "queue.sqlite3"
        self.tmp_path = tmp_path
        self.brokers: list[Broker] = []

    def build(self, url: str = AMQP_URL, **options: Any) -> Broker:
        broker: Broker
        if self.kind == "rabbitmq":
            options.setdefault("standby_delay", 0.3)
            broker = RabbitBroker(url, namespace=self.namespace, partitions=PARTITIONS, **options)
        else:
            # Embedded consumers compete per key: there is no partition ownership to configure.
            options.pop("worker_index", None)
            options.pop("worker_count", None)
            options.setdefault("poll_interval", 0.02)
            broker = SqliteQueueBroker(self.path, partitions=PARTITIONS, **options)
        self.brokers.append(broker)
        return broker

    async def new(self, **options: Any) -> Broker:
        broker = self.build(**options)
        await broker.connect()
        return broker

    def unreachable(self) -> Broker:
        """A broker whose server cannot be reached: a closed port, or a folder that is a file."""
        if self.kind == "rabbitmq":
            return self.build("amqp://guest:guest@127.0.0.1:1/", confirm_timeout=2.0)
        blocker = self.tmp_path / "not-a-folder"
        blocker.write_text("")
        return SqliteQueueBroker(blocker / "queue.sqlite3")

    async def cleanup(self) -> None:
        for broker in self.brokers:
            await broker.close()
        if self.kind == "rabbitmq":
            await _drop_namespace(self.namespace)


async def _drop_namespace(namespace: str) -> None:
    """Delete this test's exchanges and queues only: other suites share the RabbitMQ server."""
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        for queue in QUEUES:
            for partition in range(PARTITIONS):
                await channel.queue_delete(f"{namespace}.{queue}.p{partition}")
            await channel.exchange_delete(f"{namespace}.{queue}")
        await channel.queue_delete(f"{namespace}.dead-letters")
        await channel.exchange_delete(f"{namespace}.dead-letters")
    finally:
        await connection.close()


@pytest.fixture(params=["embedded", pytest.param("rabbitmq", marks=pytest.mark.services)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    built = Backend(request.param, tmp_path)
    yield built
    await built.cleanup()


@pytest.fixture
async def broker(backend: Backend) -> Broker:
    return await backend.new()


class Inbox:
    """A handler that records every delivery and settles it with `settle` (None: leaves it unsettled)."""

    def __init__(self, settle: Callable[[Delivery], Awaitable[None]] | None = None) -> None:
        self.settle = settle
        self.deliveries: list[Delivery] = []
        self._arrived = asyncio.Event()

    async def __call__(self, delivery: Delivery) -> None:
        if self.settle is not None:
            await self.settle(delivery)
        self.deliveries.append(delivery)
        self._arrived.set()

    async def wait_for(self, count: int, within: float = TIMEOUT) -> list[Delivery]:
        async with asyncio.timeout(within):
            while len(self.deliveries) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.deliveries


async def _ack(delivery: Delivery) -> None:
    await delivery.ack()


async def eventually(check: Callable[[], Awaitable[bool]], within: float = TIMEOUT) -> None:
    """Wait until `check()` holds, polling every 50 ms; fails after `within` seconds."""
    async with asyncio.timeout(within):
        for _ in range(int(within / 0.05)):
            if await check():
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"still not true after {within} s")


def message(key: str, text: str, **headers: str) -> OutgoingMessage:
    return OutgoingMessage(body=text.encode(), key=key, headers=headers)


async def test_published_message_is_delivered_once_with_key_and_headers(broker: Broker) -> None:
    await broker.publish(QUEUE, [message("tenant-1:customer-1", "hello", tenant="tenant-1")])
    inbox = Inbox(_ack)
    consumer = await broker.consume(QUEUE, inbox, prefetch=4)

    [delivery] = await inbox.wait_for(1)
    assert (delivery.queue, delivery.key, delivery.body) == (QUEUE, "tenant-1:customer-1", b"hello")
    assert dict(delivery.headers) == {"tenant": "tenant-1"}
    assert delivery.delivery_count == 0
    await asyncio.sleep(0.3)
    await consumer.stop()
    assert len(inbox.deliveries) == 1
    await eventually(lambda: _depth_is(broker, QUEUE, 0))


async def test_each_key_keeps_its_order_when_many_keys_interleave(broker: Broker) -> None:
    keys, per_key = 20, 30
    for seq in range(per_key):
        await broker.publish(QUEUE, [message(f"key-{k}", str(seq)) for k in range(keys)])
    received: dict[str, list[int]] = defaultdict(list)
    in_flight: set[str] = set()
    overlaps: list[str] = []
    done = asyncio.Event()

    async def handle(delivery: Delivery) -> None:
        if delivery.key in in_flight:
            overlaps.append(delivery.key)
        in_flight.add(delivery.key)
        await asyncio.sleep(random.uniform(0, 0.003))
        received[delivery.key].append(int(delivery.body))
        in_flight.discard(delivery.key)
        await delivery.ack()
        if sum(map(len, received.values())) == keys * per_key:
            done.set()

    consumer = await broker.consume(QUEUE, handle, prefetch=16)
    await asyncio.wait_for(done.wait(), timeout=30)
    await consumer.stop()

    assert overlaps == []
    assert received == {f"key-{k}": list(range(per_key)) for k in range(keys)}


async def test_no_more_than_prefetch_deliveries_are_unsettled_at_once(broker: Broker) -> None:
    await broker.publish(QUEUE, [message(f"key-{k}", "x") for k in range(10)])
    inbox = Inbox(settle=None)
    consumer = await broker.consume(QUEUE, inbox, prefetch=3)

    await inbox.wait_for(3)
    await asyncio.sleep(0.3)
    assert len(inbox.deliveries) == 3
    await inbox.deliveries[0].ack()
    await inbox.wait_for(4)
    await consumer.stop()


async def test_unsettled_delivery_comes_back_after_the_consumer_stops(broker: Broker) -> None:
    await broker.publish(QUEUE, [message("k", "first"), message("k", "second")])
    silent = Inbox(settle=None)
    consumer = await broker.consume(QUEUE, silent, prefetch=4)
    await silent.wait_for(1)
    await asyncio.sleep(0.2)
    assert len(silent.deliveries) == 1, "the key's next message must wait for the first to be settled"
    assert silent.deliveries[0].owned
    await consumer.stop()
    assert not silent.deliveries[0].owned  # taken back: a stage must not park a copy of it

    inbox = Inbox(_ack)
    consumer = await broker.consume(QUEUE, inbox, prefetch=4)
    deliveries = await inbox.wait_for(2)
    await consumer.stop()
    assert [(d.body, d.delivery_count) for d in deliveries[:1]] == [(b"first", 1)]
    # RabbitMQ counts "second" as delivered too: it sat in the stopped consumer's prefetch buffer.
    assert deliveries[1].body == b"second"
    assert deliveries[1].delivery_count in (0, 1)


_DYING_CONSUMER = """
import asyncio, sys
from pathlib import Path
from xypr.backends.broker.embedded import SqliteQueueBroker
from xypr.backends.broker.rabbitmq import RabbitBroker

async def main(kind: str, target: str, namespace: str, partitions: int) -> None:
    if kind == "rabbitmq":
        broker = RabbitBroker(target, namespace=namespace, partitions=partitions)
    else:
        broker = SqliteQueueBroker(Path(target), lease_seconds=1.0, poll_interval=0.02)
    await broker.connect()

    async def handle(delivery):
        print("received", delivery.delivery_count, flush=True)

    await broker.consume(sys.argv[5], handle, prefetch=1)
    await asyncio.sleep(60)

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
"""


async def test_delivery_comes_back_when_the_consumer_process_is_killed(backend: Backend, broker: Broker) -> None:
    await broker.publish(QUEUE, [message("k", "work")])
    target = AMQP_URL if backend.kind == "rabbitmq" else str(backend.path)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _DYING_CONSUMER,
        backend.kind,
        target,
        backend.namespace,
        str(PARTITIONS),
        QUEUE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=TIMEOUT)
        assert line.split() == [b"received", b"0"]
    finally:
        process.kill()
        await process.wait()

    inbox = Inbox(_ack)
    consumer = await broker.consume(QUEUE, inbox, prefetch=1)
    [delivery] = await inbox.wait_for(1)
    await consumer.stop()
    assert (delivery.body, delivery.delivery_count) == (b"work", 1)


async def test_dead_letter_is_listed_with_its_error_and_replay_delivers_it_again(broker: Broker) -> None:
    await broker.publish(QUEUE, [message("k", "poison", tenant="t1"), message("other", "fine")])

    async def reject_poison(delivery: Delivery) -> None:
        if delivery.body == b"poison":
            await delivery.dead_letter("Meta 131000: something went wrong")
        else:
            await delivery.ack()

    inbox = Inbox(reject_poison)
    consumer = await broker.consume(QUEUE, inbox, prefetch=4)
    await inbox.wait_for(2)
    await consumer.stop()

    [dead] = await broker.dead_letters()
    assert (dead.queue, dead.key, dead.body) == (QUEUE, "k", b"poison")
    assert dict(dead.headers) == {"tenant": "t1"}
    assert dead.error == "Meta 131000: something went wrong"
    assert dead.dead_at.tzinfo is not None
    assert [d.id for d in await broker.dead_letters()] == [dead.id], "listing must not consume"

    assert await broker.replay("no-such-dead-letter") is False
    assert await broker.replay(dead.id) is True
    assert await broker.dead_letters() == []

    inbox = Inbox(_ack)
    consumer = await broker.consume(QUEUE, inbox, prefetch=4)
    [again] = await inbox.wait_for(1)
    await consumer.stop()
    assert (again.key, again.body, dict(again.headers)) == ("k", b"poison", {"tenant": "t1"})
    assert not again.owned  # settled


async def test_a_message_that_is_no_longer_a_delivery_is_stored_as_a_dead_letter_and_replayed(broker: Broker) -> None:
    """A parked event past its horizon has no delivery to settle: it goes to the same dead-letter store."""
    await broker.store_dead_letter(
        queue=QUEUE, key="k", body=b"parked", headers={"tenant": "t1"}, error="TransientError: 503 (after 9 attempts)"
    )

    [dead] = await broker.dead_letters()
    assert (dead.queue, dead.key, dead.body, dict(dead.headers)) == (QUEUE, "k", b"parked", {"tenant": "t1"})
    assert dead.error == "TransientError: 503 (after 9 attempts)"
    assert dead.dead_at.tzinfo is not None
    with pytest.raises(ValueError, match="unknown queue"):
        await broker.store_dead_letter(queue="nope", key="k", body=b"x", headers={}, error="e")
    with pytest.raises(ValueError, match="reserved"):
        await broker.store_dead_letter(queue=QUEUE, key="k", body=b"x", headers={"x-a": "1"}, error="e")

    assert await broker.replay(dead.id) is True
    inbox = Inbox(_ack)
    consumer = await broker.consume(QUEUE, inbox, prefetch=4)
    [again] = await inbox.wait_for(1)
    await consumer.stop()
    assert (again.key, again.body, dict(again.headers)) == ("k", b"parked", {"tenant": "t1"})
    assert await broker.dead_letters() == []


async def test_dead_letters_are_listed_oldest_first(broker: Broker) -> None:
    await broker.publish(QUEUE, [message("k", str(n)) for n in range(3)])

    async def give_up(delivery: Delivery) -> None:
        await delivery.dead_letter(f"error {delivery.body.decode()}")

    inbox = Inbox(give_up)
    consumer = await broker.consume(QUEUE, inbox, prefetch=4)
    await inbox.wait_for(3)
    await consumer.stop()

    assert [d.error for d in await broker.dead_letters()] == ["error 0", "error 1", "error 2"]
    assert [d.error for d in await broker.dead_letters(limit=2)] == ["error 0", "error 1"]
    assert len(await broker.dead_letters()) == 3


async def test_message_whose_consumers_keep_dying_ends_in_dead_letters(backend: Backend) -> None:
    broker = await backend.new(delivery_limit=2)
    await broker.publish(QUEUE, [message("k", "poison", tenant="t1"), message("k", "after")])
    seen: list[tuple[bytes, int]] = []
    for _ in range(6):
        # Each consumer takes the message and "dies" (stops) without settling it.
        inbox = Inbox(settle=None)
        consumer = await broker.consume(QUEUE, inbox, prefetch=1)
        [delivery] = await inbox.wait_for(1)
        await consumer.stop()
        seen.append((delivery.body, delivery.delivery_count))
        if delivery.body == b"after":
            break

    assert seen == [(b"poison", 0), (b"poison", 1), (b"poison", 2), (b"after", 0)]
    await eventually(lambda: _has_dead_letters(broker))
    [dead] = await broker.dead_letters()
    assert (dead.queue, dead.key, dead.body, dead.error) == (QUEUE, "k", b"poison", "delivery limit exceeded")
    assert dict(dead.headers) == {"tenant": "t1"}


async def test_handler_that_raises_gets_its_delivery_dead_lettered_with_the_error(broker: Broker) -> None:
    await broker.publish(QUEUE, [message("k", "bug"), message("k", "fine")])
    handled: list[bytes] = []

    async def buggy(delivery: Delivery) -> None:
        handled.append(delivery.body)
        if delivery.body == b"bug":
            raise RuntimeError("handler bug")
        await delivery.ack()

    consumer = await broker.consume(QUEUE, buggy, prefetch=4)
    await eventually(lambda: _async_true(handled == [b"bug", b"fine"]))
    await eventually(lambda: _has_dead_letters(broker))
    await consumer.stop()
    [dead] = await broker.dead_letters()
    assert (dead.body, dead.error) == (b"bug", "handler raised RuntimeError: handler bug")


async def test_released_delivery_is_delivered_again_before_the_next_of_its_key(broker: Broker) -> None:
    await broker.publish(QUEUE, [message("k", "1"), message("k", "2")])
    seen: list[tuple[bytes, int]] = []

    async def release_first_time(delivery: Delivery) -> None:
        seen.append((delivery.body, delivery.delivery_count))
        if delivery.body == b"1" and delivery.delivery_count == 0:
            await delivery.release()
        else:
            await delivery.ack()

    consumer = await broker.consume(QUEUE, release_first_time, prefetch=4)
    await eventually(lambda: _async_true(len(seen) >= 3))
    await asyncio.sleep(0.2)
    await consumer.stop()
    assert [body for body, _ in seen] == [b"1", b"1", b"2"]
    assert seen[:2] == [(b"1", 0), (b"1", 1)]


async def test_depth_counts_waiting_messages_of_all_partitions(broker: Broker) -> None:
    assert await broker.depth(QUEUE) == 0
    await broker.publish(QUEUE, [message(f"key-{k}", "x") for k in range(10)])
    await eventually(lambda: _depth_is(broker, QUEUE, 10))
    assert await broker.depth(SEND_WHATSAPP) == 0

    inbox = Inbox(_ack)
    consumer = await broker.consume(QUEUE, inbox, prefetch=20)
    await inbox.wait_for(10)
    await eventually(lambda: _depth_is(broker, QUEUE, 0))
    await consumer.stop()


async def test_ping_is_true_when_connected_and_false_after_close(backend: Backend) -> None:
    broker = await backend.new()
    assert await broker.ping() is True
    await broker.close()
    assert await broker.ping() is False


async def test_publish_on_a_closed_broker_raises_broker_unavailable(backend: Backend) -> None:
    broker = await backend.new()
    await broker.close()
    with pytest.raises(BrokerUnavailable):
        await asyncio.wait_for(broker.publish(QUEUE, [message("k", "x")]), timeout=TIMEOUT)


async def test_unreachable_broker_raises_broker_unavailable_quickly(backend: Backend) -> None:
    broker = backend.unreachable()
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable):
        await asyncio.wait_for(broker.connect(), timeout=TIMEOUT)
    with pytest.raises(BrokerUnavailable):
        await asyncio.wait_for(broker.publish(QUEUE, [message("k", "x")]), timeout=TIMEOUT)
    assert time.monotonic() - started < 5


async def test_two_workers_share_the_partitions_and_keep_each_key_in_order(backend: Backend) -> None:
    workers = [await backend.new(worker_index=index, worker_count=2) for index in range(2)]
    keys, per_key = 20, 15
    received: dict[str, list[int]] = defaultdict(list)
    handled_by: dict[int, int] = defaultdict(int)
    in_flight: set[str] = set()
    overlaps: list[str] = []
    done = asyncio.Event()

    def handler(index: int) -> Callable[[Delivery], Awaitable[None]]:
        async def handle(delivery: Delivery) -> None:
            if delivery.key in in_flight:
                overlaps.append(delivery.key)
            in_flight.add(delivery.key)
            await asyncio.sleep(random.uniform(0, 0.003))
            received[delivery.key].append(int(delivery.body))
            handled_by[index] += 1
            in_flight.discard(delivery.key)
            await delivery.ack()
            if sum(map(len, received.values())) == keys * per_key:
                done.set()

        return handle

    consumers = [await w.consume(QUEUE, handler(i), prefetch=4) for i, w in enumerate(workers)]
    for seq in range(per_key):
        await workers[seq % 2].publish(QUEUE, [message(f"key-{k}", str(seq)) for k in range(keys)])
    await asyncio.wait_for(done.wait(), timeout=30)
    for consumer in consumers:
        await consumer.stop()

    assert overlaps == []
    assert received == {f"key-{k}": list(range(per_key)) for k in range(keys)}
    assert handled_by[0] > 0, dict(handled_by)
    assert handled_by[1] > 0, dict(handled_by)


async def test_worker_takes_over_the_partitions_of_a_stopped_worker(backend: Backend) -> None:
    first, second = [await backend.new(worker_index=index, worker_count=2) for index in range(2)]
    first_inbox, second_inbox = Inbox(_ack), Inbox(_ack)
    first_consumer = await first.consume(QUEUE, first_inbox, prefetch=4)
    second_consumer = await second.consume(QUEUE, second_inbox, prefetch=4)
    await asyncio.sleep(0.5)  # past standby_delay: both are standby for each other's partitions
    await first_consumer.stop()

    await first.publish(QUEUE, [message(f"key-{k}", "x") for k in range(20)])
    await second_inbox.wait_for(20)
    await second_consumer.stop()
    assert first_inbox.deliveries == []


@pytest.mark.services
async def test_rabbitmq_publish_fails_fast_while_disconnected_and_recovers(tmp_path: Path) -> None:
    backend = Backend("rabbitmq", tmp_path)
    proxy = _Proxy(URL(AMQP_URL))
    port = free_port()
    await proxy.start(port)
    try:
        url = f"amqp://guest:guest@127.0.0.1:{port}/?reconnect_interval=0.2"
        broker = backend.build(url, confirm_timeout=2.0)
        await broker.connect()
        inbox = Inbox(_ack)
        consumer = await broker.consume(QUEUE, inbox, prefetch=4)
        await broker.publish(QUEUE, [message("k", "before")])
        await inbox.wait_for(1)

        await proxy.stop()
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable):
            await asyncio.wait_for(broker.publish(QUEUE, [message("k", "lost")]), timeout=TIMEOUT)
        assert time.monotonic() - started < 3
        assert await broker.ping() is False

        await proxy.start(port)
        await eventually(lambda: _publishes(broker, message("k", "after")))
        # The robust connection restored the consumer too.
        await eventually(lambda: _async_true(b"after" in [d.body for d in inbox.deliveries]))
        await consumer.stop()
        # "before" may come twice: its ack can be lost with the connection (at-least-once).
        bodies = [d.body for d in inbox.deliveries]
        assert bodies[-1] == b"after"
        assert set(bodies[:-1]) == {b"before"}
    finally:
        await proxy.stop()
        await backend.cleanup()


@pytest.mark.services
async def test_rabbitmq_publishes_made_together_are_each_confirmed_and_acks_are_not_undone(tmp_path: Path) -> None:
    """Publishes and acks are queued for the socket without waiting for each write: none may get lost."""
    backend = Backend("rabbitmq", tmp_path)
    try:
        broker = await backend.new()
        keys, per_key = 25, 8
        # One publish per message, all at once (webhooks arriving together), and batches beside them.
        singles = [
            broker.publish(QUEUE, [message(f"key-{k}", str(seq))]) for seq in range(per_key) for k in range(0, keys, 2)
        ]
        await asyncio.gather(*singles)
        for seq in range(per_key):
            await broker.publish(QUEUE, [message(f"key-{k}", str(seq)) for k in range(1, keys, 2)])
        total = keys * per_key
        assert await broker.depth(QUEUE) == total

        inbox = Inbox(_ack)
        consumer = await broker.consume(QUEUE, inbox, prefetch=32)
        deliveries = await inbox.wait_for(total)
        await consumer.stop()
        by_key: dict[str, list[int]] = defaultdict(list)
        for delivery in deliveries:
            by_key[delivery.key].append(int(delivery.body))
        assert by_key == {f"key-{k}": list(range(per_key)) for k in range(keys)}

        # Every ack reached RabbitMQ before the channels closed: a new consumer gets nothing again.
        again = Inbox(_ack)
        consumer = await broker.consume(QUEUE, again, prefetch=32)
        await asyncio.sleep(0.5)
        await consumer.stop()
        assert again.deliveries == []
        assert await broker.depth(QUEUE) == 0
    finally:
        await backend.cleanup()


@pytest.mark.services
async def test_rabbitmq_publish_the_broker_refuses_fails_instead_of_returning(tmp_path: Path) -> None:
    """A publish returns only once RabbitMQ confirmed it: an exchange gone under it is an error, not a send."""
    backend = Backend("rabbitmq", tmp_path)
    try:
        broker = await backend.new()
        connection = await aio_pika.connect(AMQP_URL)
        try:
            channel = await connection.channel()
            await channel.exchange_delete(f"{backend.namespace}.{QUEUE}")
        finally:
            await connection.close()
        # Five publishes made together (queued for the socket at once): every one of them fails.
        outcomes = await asyncio.wait_for(
            asyncio.gather(
                *(broker.publish(QUEUE, [message(f"k{i}", "refused")]) for i in range(5)), return_exceptions=True
            ),
            timeout=TIMEOUT,
        )
        assert [type(outcome) for outcome in outcomes] == [BrokerUnavailable] * 5
    finally:
        await backend.cleanup()


async def test_embedded_lease_is_renewed_while_a_slow_handler_runs(tmp_path: Path) -> None:
    backend = Backend("embedded", tmp_path)
    try:
        first, second = [await backend.new(lease_seconds=0.3) for _ in range(2)]
        await first.publish(QUEUE, [message("k", "slow")])
        slow, other = Inbox(settle=None), Inbox(_ack)
        slow_consumer = await first.consume(QUEUE, slow, prefetch=1)
        await slow.wait_for(1)
        other_consumer = await second.consume(QUEUE, other, prefetch=1)
        await asyncio.sleep(1.0)  # three lease periods
        assert other.deliveries == [], "a live consumer's lease must not expire"
        await slow.deliveries[0].ack()
        await slow_consumer.stop()
        await other_consumer.stop()
        assert await first.depth(QUEUE) == 0
    finally:
        await backend.cleanup()


async def test_embedded_publishes_and_acks_made_together_share_a_transaction_and_keep_each_key_in_order(
    tmp_path: Path,
) -> None:
    backend = Backend("embedded", tmp_path)
    try:
        broker = await backend.new()
        assert isinstance(broker, SqliteQueueBroker)
        commits: list[int] = []
        publish_together = broker._publish_together

        async def counted(publishes: list[Any]) -> list[None]:
            commits.append(len(publishes))
            return await publish_together(publishes)

        broker._publishes._run = counted  # type: ignore[assignment]
        # 200 publishers at once, five keys: each call returns once its message is committed.
        await asyncio.gather(*(broker.publish(QUEUE, [message(f"k{n % 5}", str(n))]) for n in range(200)))
        assert sum(commits) == 200
        assert len(commits) < 20, f"publishes were not written together: {commits}"
        assert await broker.depth(QUEUE) == 200

        inbox = Inbox(_ack)
        consumer = await broker.consume(QUEUE, inbox, prefetch=64)
        await inbox.wait_for(200)
        await consumer.stop()
        by_key: dict[str, list[int]] = defaultdict(list)
        for delivery in inbox.deliveries:
            by_key[delivery.key].append(int(delivery.body))
        assert by_key == {f"k{k}": list(range(k, 200, 5)) for k in range(5)}
        await eventually(lambda: _depth_is(broker, QUEUE, 0))
    finally:
        await backend.cleanup()


_RINGING_CONSUMER = """
import asyncio, sys, time
from pathlib import Path
from xypr.backends.broker.embedded import SqliteQueueBroker

async def main(target: str, queue: str) -> None:
    # Polls only every 10 s: a delivery sooner than that was rung for.
    broker = SqliteQueueBroker(Path(target), poll_interval=10.0, idle_poll_interval=10.0)
    await broker.connect()

    async def handle(delivery):
        print("received", delivery.body.decode(), time.time(), flush=True)
        await delivery.ack()

    await broker.consume(queue, handle, prefetch=8)
    print("listening", flush=True)
    await asyncio.sleep(60)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="doorbells are abstract sockets, Linux only")
async def test_embedded_publish_wakes_a_consumer_of_another_process_at_once(tmp_path: Path) -> None:
    backend = Backend("embedded", tmp_path)
    process = None
    try:
        publisher = await backend.new()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _RINGING_CONSUMER, str(backend.path), QUEUE, stdout=asyncio.subprocess.PIPE
        )
        assert process.stdout is not None
        assert (await asyncio.wait_for(process.stdout.readline(), timeout=TIMEOUT)).split() == [b"listening"]
        await asyncio.sleep(0.3)  # its first claim found nothing: from now on it waits 10 s between polls

        latencies: list[float] = []
        for n in range(10):
            sent = time.time()
            await publisher.publish(QUEUE, [message(f"k{n}", str(n))])
            line = (await asyncio.wait_for(process.stdout.readline(), timeout=5.0)).split()
            assert line[:2] == [b"received", str(n).encode()]
            latencies.append(float(line[2]) - sent)
            await asyncio.sleep(0.05)

        assert max(latencies) < 1.0, f"not woken by the publish: {latencies}"
    finally:
        if process is not None:
            process.kill()
            await process.wait()
        await backend.cleanup()


@pytest.mark.skipif(sys.platform != "linux", reason="doorbells are abstract sockets, Linux only")
async def test_embedded_consumers_started_together_share_one_doorbell(tmp_path: Path) -> None:
    backend = Backend("embedded", tmp_path)
    try:
        broker = await backend.new()
        assert isinstance(broker, SqliteQueueBroker)
        consumers = await asyncio.gather(*(broker.consume(queue, Inbox(_ack), prefetch=1) for queue in QUEUES))

        rows = await broker._run(lambda db: db.execute("SELECT name FROM broker_doorbells").fetchall())
        assert len(rows) == 1, rows
        for consumer in consumers:
            await consumer.stop()
    finally:
        await backend.cleanup()


@pytest.mark.skipif(sys.platform != "linux", reason="doorbells are abstract sockets, Linux only")
async def test_embedded_doorbells_of_gone_processes_are_dropped(tmp_path: Path) -> None:
    backend = Backend("embedded", tmp_path)
    try:
        broker = await backend.new()
        assert isinstance(broker, SqliteQueueBroker)
        gone = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
        await gone.wait()
        await broker._run(
            lambda db: db.execute(
                "INSERT INTO broker_doorbells (name, pid) VALUES ('xypr-queue-gone', ?)", (gone.pid,)
            ).close()
        )

        await broker.publish(QUEUE, [message("k", "x")])  # reads the doorbells: the gone one is removed

        rows = await broker._run(lambda db: db.execute("SELECT name FROM broker_doorbells").fetchall())
        assert ("xypr-queue-gone",) not in rows
    finally:
        await backend.cleanup()


@pytest.mark.skipif(sys.platform != "linux", reason="names the synced file through /proc")
async def test_embedded_publish_is_synced_to_disk_after_the_write_lock_is_released(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = Backend("embedded", tmp_path)
    try:
        broker = await backend.new()
        synced: list[str] = []
        real_fsync = os.fsync

        def fsync(fd: int) -> None:
            # Another writer gets the lock at once (no busy wait): the commit has released it.
            other = sqlite3.connect(backend.path, timeout=0)
            try:
                other.execute("BEGIN IMMEDIATE")
                other.execute("ROLLBACK")
            finally:
                other.close()
            synced.append(os.readlink(f"/proc/self/fd/{fd}"))
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)
        await broker.publish(QUEUE, [message("k", "durable")])
        monkeypatch.setattr(os, "fsync", real_fsync)

        assert synced, "publish returned without syncing anything"
        assert synced[0] == f"{backend.path.resolve()}-wal"
        assert await broker.depth(QUEUE) == 1
    finally:
        await backend.cleanup()


def test_create_broker_picks_the_backend_from_settings(tmp_path: Path) -> None:
    embedded = create_broker(Settings(amqp_url="", data_dir=tmp_path / "data"))
    assert isinstance(embedded, SqliteQueueBroker)
    assert embedded.path == tmp_path / "data" / "queue.sqlite3"
    assert (tmp_path / "data").is_dir()

    rabbit = create_broker(Settings(amqp_url=AMQP_URL, namespace="ns", partitions=8), worker_index=1, worker_count=3)
    assert isinstance(rabbit, RabbitBroker)
    assert (rabbit.namespace, rabbit.partitions, rabbit.worker_index, rabbit.worker_count) == ("ns", 8, 1, 3)


async def _depth_is(broker: Broker, queue: str, expected: int) -> bool:
    return await broker.depth(queue) == expected


async def _has_dead_letters(broker: Broker) -> bool:
    return bool(await broker.dead_letters())


async def _async_true(value: bool) -> bool:
    return value


async def _publishes(broker: Broker, outgoing: OutgoingMessage) -> bool:
    try:
        await broker.publish(QUEUE, [outgoing])
    except BrokerUnavailable:
        return False
    return True


class _Proxy:
    """A TCP relay to RabbitMQ that the test can cut, to lose the connection without stopping RabbitMQ."""

    def __init__(self, upstream: URL) -> None:
        self.upstream = upstream
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self, port: int) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", port)

    async def stop(self) -> None:
        server, self.server = self.server, None
        if server is None:
            return
        server.close()
        for writer in list(self.writers):
            writer.close()
        self.writers.clear()
        await server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.upstream.host, self.upstream.port)
        self.writers |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
