"""The RabbitMQ broker: consistent-hash exchange → quorum partitions, single active consumer, DLX.

Topology of each queue Q of `xypr.topology.QUEUES` (names prefixed by the namespace, `ns.`):

- an `x-consistent-hash` exchange `ns.Q` (plugin `rabbitmq_consistent_hash_exchange`); the routing
  key is the message key, so one key always lands in the same partition;
- partitions `ns.Q.p0` … `ns.Q.p{N-1}`: durable quorum queues with `x-single-active-consumer`,
  bound with weight "1", and `x-delivery-limit` with at-least-once dead-lettering into the fanout
  exchange `ns.dead-letters`, so a poison message that keeps killing consumers ends up there;
- one classic durable queue `ns.dead-letters` holding both the copies written by
  `Delivery.dead_letter` and the messages RabbitMQ itself dead-letters (delivery limit).

Spreading partitions across processes: single active consumer gives a partition to its first
registered consumer, the others wait as standby and take over when it goes away. A process with
`worker_index=i` of `worker_count=n` subscribes at once to the partitions p with `p % n == i` and,
after `standby_delay` seconds, to all the other partitions as standby. Started together, n
processes thus split the partitions evenly; when one dies, the standbys of its partitions take them
over, in order, because RabbitMQ returns its unacknowledged messages first and in their original
order. Ownership is not rebalanced afterwards: a restarted process stays standby where another one
took over.

Order per key inside a process: each partition has its own channel; deliveries of one key are
handed to the handler one at a time, the next only once the previous one is settled. `release()`
does not nack (RabbitMQ would redeliver the message behind those of its key already prefetched
here): once the partition's running handlers are done, its channel is closed, which returns every
unacknowledged message in its original order, and the partition is subscribed again. A handler
that raises instead of settling gets its delivery dead-lettered with the exception as error.

Caveat: RabbitMQ counts a return (channel closed, consumer died, release) as a delivery for every
message prefetched on that channel, so `delivery_count` also grows for messages that were waiting
in the buffer; keep `prefetch` modest next to `delivery_limit`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
)

from xypr.backends.broker.base import (
    DELIVERY_LIMIT,
    Broker,
    BrokerUnavailable,
    Consumer,
    DeadLetter,
    Delivery,
    Handler,
    OutgoingMessage,
)
from xypr.backends.db.base import as_utc
from xypr.core.logging import get_logger
from xypr.topology import QUEUES

__all__ = ["RabbitBroker"]

_log = get_logger(__name__)

# Our own headers; RabbitMQ reserves the `x-` prefix, so they cannot clash with a caller's.
_KEY = "x-xypr-key"
_QUEUE = "x-xypr-queue"
_ERROR = "x-xypr-error"
_DEAD_AT = "x-xypr-dead-at"
_DEAD_LETTER_ID = "x-xypr-dead-letter-id"
_DEAD_LETTERS = "dead-letters"
# AMQP routing keys are short strings; longer keys are routed by their digest (the header keeps them).
_MAX_ROUTING_KEY = 255
_MAX_ERROR = 4000
_PERSISTENT = 2  # AMQP delivery mode: written to disk


def _routing_key(key: str) -> str:
    if len(key.encode()) <= _MAX_ROUTING_KEY:
        return key
    return hashlib.sha256(key.encode()).hexdigest()


def _check_headers(headers: Mapping[str, str]) -> None:
    reserved = [name for name in headers if name.lower().startswith("x-")]
    if reserved:
        raise ValueError(f"header names starting with 'x-' are reserved for the broker: {reserved}")


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def _user_headers(headers: Mapping[str, Any]) -> dict[str, str]:
    return {name: _text(value) for name, value in headers.items() if not name.lower().startswith("x-")}


class RabbitBroker(Broker):
    """Durable, partitioned broker on RabbitMQ (see the module docstring for the topology)."""

    def __init__(
        self,
        url: str,
        *,
        namespace: str,
        partitions: int,
        worker_index: int = 0,
        worker_count: int = 1,
        confirm_timeout: float = 5.0,
        standby_delay: float = 3.0,
        delivery_limit: int = DELIVERY_LIMIT,
    ) -> None:
        if partitions < 1:
            raise ValueError("partitions must be at least 1")
        if not 0 <= worker_index < worker_count:
            raise ValueError("worker_index must be in [0, worker_count)")
        self._url = url
        self.namespace = namespace
        self.partitions = partitions
        self.worker_index = worker_index
        self.worker_count = worker_count
        self.confirm_timeout = confirm_timeout
        self.standby_delay = standby_delay
        self.delivery_limit = delivery_limit
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._dead_letter_exchange: AbstractExchange | None = None
        self._consumers: set[_RabbitConsumer] = set()

    # Names -----------------------------------------------------------------------------------

    def exchange_name(self, queue: str) -> str:
        """The consistent-hash exchange of `queue`."""
        return f"{self.namespace}.{queue}"

    def partition_name(self, queue: str, partition: int) -> str:
        """The quorum queue holding partition `partition` of `queue`."""
        return f"{self.namespace}.{queue}.p{partition}"

    @property
    def dead_letter_name(self) -> str:
        """The dead-letter exchange and queue (same name)."""
        return f"{self.namespace}.{_DEAD_LETTERS}"

    def owns(self, partition: int) -> bool:
        """True when this worker subscribes to `partition` first (the others only as standby)."""
        return partition % self.worker_count == self.worker_index

    def _logical_queue(self, physical: str) -> str:
        """`ns.inbound.whatsapp.p3` (or the exchange `ns.inbound.whatsapp`) → `inbound.whatsapp`."""
        name = physical.removeprefix(f"{self.namespace}.")
        stem, _, suffix = name.rpartition(".p")
        return stem if stem and suffix.isdigit() else name

    # Connection ------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open a robust connection and declare exchanges, partitions and the dead-letter queue."""
        try:
            self._connection = await aio_pika.connect_robust(
                self._url,
                timeout=self.confirm_timeout,
                client_properties={"connection_name": f"xypr {self.namespace} {self.worker_index}/{self.worker_count}"},
            )
            channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
            self._channel = channel
            await self._declare_topology(channel)
        except Exception as exc:
            await self._close_connection()
            hint = ""
            if "exchange type" in str(exc):
                hint = " (enable it: rabbitmq-plugins enable rabbitmq_consistent_hash_exchange)"
            raise BrokerUnavailable(f"RabbitMQ unavailable ({type(exc).__name__}: {exc}){hint}") from exc

    async def _declare_topology(self, channel: AbstractChannel) -> None:
        dead_letters = await channel.declare_exchange(self.dead_letter_name, aio_pika.ExchangeType.FANOUT, durable=True)
        # Classic, not quorum: a rejected basic.get goes back to its place, so listing keeps order.
        dead_letter_queue = await channel.declare_queue(self.dead_letter_name, durable=True)
        await dead_letter_queue.bind(dead_letters, routing_key="")
        self._dead_letter_exchange = dead_letters
        arguments: dict[str, Any] = {
            "x-queue-type": "quorum",
            "x-single-active-consumer": True,
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": self.dead_letter_name,
            # At-least-once dead-lettering needs reject-publish overflow (no length limit is set).
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
        for queue in QUEUES:
            exchange = await channel.declare_exchange(self.exchange_name(queue), "x-consistent-hash", durable=True)
            for partition in range(self.partitions):
                declared = await channel.declare_queue(
                    self.partition_name(queue, partition), durable=True, arguments=arguments
                )
                # The binding key of a consistent-hash exchange is the partition's weight.
                await declared.bind(exchange, routing_key="1")
            self._exchanges[queue] = exchange

    async def close(self) -> None:
        """Stop every consumer, then close the connection."""
        for consumer in list(self._consumers):
            await consumer.stop()
        await self._close_connection()

    async def _close_connection(self) -> None:
        connection, self._connection = self._connection, None
        self._channel = None
        self._exchanges.clear()
        self._dead_letter_exchange = None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()

    def _ready_connection(self) -> AbstractRobustConnection:
        connection = self._connection
        # Fail fast while the robust connection is reconnecting: a webhook must answer 503 now.
        if connection is None or connection.is_closed or not connection.connected.is_set():
            raise BrokerUnavailable("RabbitMQ is not connected")
        return connection

    async def _temporary_channel(self) -> AbstractRobustChannel:
        """A channel for one operator call; any failure to open it is `BrokerUnavailable`."""
        try:
            connection = self._ready_connection()
            return await asyncio.wait_for(connection.channel(publisher_confirms=False), timeout=self.confirm_timeout)
        except BrokerUnavailable:
            raise
        except Exception as exc:
            raise BrokerUnavailable(f"RabbitMQ unavailable ({exc})") from exc

    # Publishing ------------------------------------------------------------------------------

    @staticmethod
    def _properties(key: str, headers: Mapping[str, str]) -> aiormq.spec.Basic.Properties:
        """A persistent message's properties, built directly (what `aio_pika.Message` would make, less work)."""
        return aiormq.spec.Basic.Properties(
            headers={**headers, _KEY: key},
            delivery_mode=_PERSISTENT,
            message_id=uuid.uuid4().hex,
            timestamp=datetime.now(UTC),
        )

    async def _confirmed(
        self, exchange: str, messages: Sequence[tuple[bytes, aiormq.spec.Basic.Properties, str]]
    ) -> None:
        """Publish all at once and wait for every confirm; anything short of that is unavailability.

        Straight on the publishing channel's AMQP channel: a single publish (one webhook) in the caller's own
        task, several in a task each; each one queued for the socket without waiting for its write
        (`wait=False`), so the channel's lock is not held across an event-loop turn. A task per publish and
        aio-pika's `Message` had cost a third more CPU per publish (`bench.micro`, 1.3-1.4x). An unroutable
        message (`mandatory`) or a nack still fails its publish.
        """
        self._ready_connection()
        channel = self._channel
        if channel is None or channel.is_closed:
            raise BrokerUnavailable("RabbitMQ publishing channel is closed")
        try:
            async with asyncio.timeout(self.confirm_timeout):
                underlay = cast(aiormq.Channel, await channel.get_underlay_channel())
                publishes = [
                    underlay.basic_publish(
                        body,
                        exchange=exchange,
                        routing_key=routing_key,
                        properties=properties,
                        mandatory=True,
                        wait=False,
                    )
                    for body, properties, routing_key in messages
                ]
                if len(publishes) == 1:
                    await publishes[0]
                else:
                    async with asyncio.TaskGroup() as group:
                        for publish in publishes:
                            group.create_task(publish)
        except Exception as exc:
            raise BrokerUnavailable(f"RabbitMQ did not confirm ({type(exc).__name__}: {exc})") from exc

    async def publish(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        """Publish durably; returns after all are confirmed, else raises `BrokerUnavailable`."""
        if queue not in QUEUES:
            raise ValueError(f"unknown queue {queue!r}")
        for message in messages:
            _check_headers(message.headers)
        if not messages:
            return
        exchange = self._exchanges.get(queue)
        if exchange is None:
            raise BrokerUnavailable("RabbitMQ is not connected")
        await self._confirmed(
            exchange.name, [(m.body, self._properties(m.key, m.headers), _routing_key(m.key)) for m in messages]
        )

    async def _publish_dead_letter(self, delivery: _RabbitDelivery, error: str) -> None:
        await self.store_dead_letter(
            queue=delivery.queue, key=delivery.key, body=delivery.body, headers=delivery.headers, error=error
        )

    async def store_dead_letter(
        self, *, queue: str, key: str, body: bytes, headers: Mapping[str, str], error: str
    ) -> None:
        """Publish the message with `error` to the dead-letter queue; returns once it is confirmed."""
        if queue not in QUEUES:
            raise ValueError(f"unknown queue {queue!r}")
        _check_headers(headers)
        exchange = self._dead_letter_exchange
        if exchange is None:
            raise BrokerUnavailable("RabbitMQ is not connected")
        properties = aiormq.spec.Basic.Properties(
            headers={
                **headers,
                _KEY: key,
                _QUEUE: queue,
                _ERROR: error[:_MAX_ERROR],
                _DEAD_AT: datetime.now(UTC).isoformat(),
                _DEAD_LETTER_ID: uuid.uuid4().hex,
            },
            delivery_mode=_PERSISTENT,
            message_id=uuid.uuid4().hex,
        )
        await self._confirmed(exchange.name, [(body, properties, "")])

    # Consuming -------------------------------------------------------------------------------

    async def consume(self, queue: str, handler: Handler, *, prefetch: int) -> Consumer:
        """Deliver messages of `queue` to `handler`, at most `prefetch` unsettled at once."""
        if queue not in QUEUES:
            raise ValueError(f"unknown queue {queue!r}")
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        consumer = _RabbitConsumer(self, queue, handler, prefetch)
        self._consumers.add(consumer)
        try:
            await consumer.start()
        except BaseException:
            await consumer.stop()
            raise
        return consumer

    # Dead letters ----------------------------------------------------------------------------

    def _dead_letter_of(self, message: AbstractIncomingMessage) -> DeadLetter:
        headers: Mapping[str, Any] = message.headers or {}
        key = _text(headers.get(_KEY, message.routing_key or ""))
        if _QUEUE in headers:
            queue = _text(headers[_QUEUE])
            error = _text(headers.get(_ERROR, ""))
            try:
                dead_at = as_utc(datetime.fromisoformat(_text(headers.get(_DEAD_AT, ""))))
            except ValueError:
                dead_at = datetime.now(UTC)
            dead_letter_id = _text(headers.get(_DEAD_LETTER_ID, message.message_id or ""))
        else:
            # Dead-lettered by RabbitMQ itself: x-death (latest death first) names the partition.
            deaths = headers.get("x-death")
            death: Mapping[str, Any] = deaths[0] if isinstance(deaths, list) and deaths else {}
            queue = self._logical_queue(_text(death.get("queue", headers.get("x-first-death-queue", ""))))
            reason = _text(death.get("reason", headers.get("x-first-death-reason", "rejected")))
            error = "delivery limit exceeded" if reason == "delivery_limit" else f"dead-lettered: {reason}"
            moment = death.get("time")
            dead_at = as_utc(moment) if isinstance(moment, datetime) else datetime.now(UTC)
            dead_letter_id = message.message_id or hashlib.sha256(message.body).hexdigest()
        return DeadLetter(
            id=dead_letter_id,
            queue=queue,
            key=key,
            body=message.body,
            headers=_user_headers(headers),
            error=error,
            dead_at=dead_at,
        )

    async def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        """The dead-lettered messages, oldest first (read without removing any)."""
        channel = await self._temporary_channel()
        found: list[DeadLetter] = []
        try:
            queue = await channel.get_queue(self.dead_letter_name, ensure=False)
            for _ in range(limit):
                message = await queue.get(no_ack=False, fail=False, timeout=self.confirm_timeout)
                if message is None:
                    break
                found.append(self._dead_letter_of(message))
        except Exception as exc:
            raise BrokerUnavailable(f"RabbitMQ unavailable ({exc})") from exc
        finally:
            # Closing the channel puts every unacknowledged message back in its place.
            with contextlib.suppress(Exception):
                await channel.close()
        return found

    async def replay(self, dead_letter_id: str) -> bool:
        """Publish a dead letter again to its original queue and remove it; False if unknown."""
        channel = await self._temporary_channel()
        try:
            queue = await channel.declare_queue(self.dead_letter_name, passive=True, robust=False)
            waiting = queue.declaration_result.message_count or 0
            for _ in range(waiting):
                message = await queue.get(no_ack=False, fail=False, timeout=self.confirm_timeout)
                if message is None:
                    break
                dead = self._dead_letter_of(message)
                if dead.id != dead_letter_id:
                    continue
                exchange = self._exchanges.get(dead.queue)
                if exchange is None:
                    raise ValueError(f"dead letter {dead.id} comes from unknown queue {dead.queue!r}")
                await self._confirmed(
                    exchange.name, [(dead.body, self._properties(dead.key, dead.headers), _routing_key(dead.key))]
                )
                # Acked before the channel closes (frames are ordered): only this one is removed.
                await message.ack()
                return True
            return False
        except (BrokerUnavailable, ValueError):
            raise
        except Exception as exc:
            raise BrokerUnavailable(f"RabbitMQ unavailable ({exc})") from exc
        finally:
            with contextlib.suppress(Exception):
                await channel.close()

    async def discard(self, dead_letter_id: str) -> bool:
        """Remove a dead letter for good; False if unknown."""
        channel = await self._temporary_channel()
        try:
            queue = await channel.declare_queue(self.dead_letter_name, passive=True, robust=False)
            waiting = queue.declaration_result.message_count or 0
            for _ in range(waiting):
                message = await queue.get(no_ack=False, fail=False, timeout=self.confirm_timeout)
                if message is None:
                    break
                if self._dead_letter_of(message).id == dead_letter_id:
                    # Acked before the channel closes (frames are ordered): only this one is removed.
                    await message.ack()
                    return True
            return False
        except Exception as exc:
            raise BrokerUnavailable(f"RabbitMQ unavailable ({exc})") from exc
        finally:
            with contextlib.suppress(Exception):
                await channel.close()

    # Health ----------------------------------------------------------------------------------

    # `oldest_age` stays None: AMQP reports counts, not ages, and peeking at a quorum queue's head would
    # count as a delivery against its delivery limit. The RabbitMQ management UI shows message rates.

    async def depth(self, queue: str) -> int:
        """Messages waiting in `queue` (ready messages of all partitions)."""
        if queue not in QUEUES:
            raise ValueError(f"unknown queue {queue!r}")
        channel = await self._temporary_channel()
        try:
            total = 0
            for partition in range(self.partitions):
                declared = await channel.declare_queue(
                    self.partition_name(queue, partition), passive=True, robust=False
                )
                total += declared.declaration_result.message_count or 0
            return total
        except Exception as exc:
            raise BrokerUnavailable(f"RabbitMQ unavailable ({exc})") from exc
        finally:
            with contextlib.suppress(Exception):
                await channel.close()

    async def ping(self) -> bool:
        """True when a channel can be opened right now."""
        try:
            channel = await self._temporary_channel()
        except Exception:
            return False
        with contextlib.suppress(Exception):
            await channel.close()
        return True


async def _dead_letter_or_release(delivery: Delivery, exc: Exception) -> None:
    """A handler that raises instead of settling has a bug: park the message rather than loop on it."""
    try:
        await delivery.dead_letter(f"handler raised {type(exc).__name__}: {exc}")
    except BrokerUnavailable:
        await delivery.release()


class _Subscription:
    """One partition consumed on its own channel."""

    def __init__(self, partition: int, channel: AbstractChannel) -> None:
        self.partition = partition
        self.channel = channel
        self.active = True
        # Bumped whenever the underlying channel closes: its deliveries are void (RabbitMQ has
        # returned them), even if the robust connection reopens the channel afterwards.
        self.incarnation = 0
        self.running = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.unsettled: set[_RabbitDelivery] = set()

    def void(self) -> None:
        """Forget every unsettled delivery: the broker has them back."""
        for delivery in list(self.unsettled):
            delivery.finish()
        self.unsettled.clear()


class _RabbitDelivery(Delivery):
    def __init__(
        self, consumer: _RabbitConsumer, subscription: _Subscription, message: AbstractIncomingMessage
    ) -> None:
        headers: Mapping[str, Any] = message.headers or {}
        self.queue = consumer.queue
        self.body = message.body
        self.key = _text(headers.get(_KEY, message.routing_key or ""))
        self.headers = _user_headers(headers)
        # Quorum queues count returns (nack, consumer gone) in x-delivery-count.
        count = headers.get("x-delivery-count", 0)
        self.delivery_count = int(count) if isinstance(count, int | str) else 0
        self._consumer = consumer
        self._subscription = subscription
        self._incarnation = subscription.incarnation
        self._message = message
        self._settled = False
        self.done = asyncio.Event()

    @property
    def usable(self) -> bool:
        """Still owned by this consumer on a live channel."""
        subscription = self._subscription
        return not self.done.is_set() and subscription.active and subscription.incarnation == self._incarnation

    @property
    def owned(self) -> bool:
        """Unsettled, on the live channel it came on."""
        return not self._settled and self.usable

    def finish(self) -> None:
        self._subscription.unsettled.discard(self)
        self.done.set()

    def _settle(self) -> bool:
        """Mark settled; False when the delivery was already void (its channel is gone)."""
        if self._settled:
            raise RuntimeError("delivery already settled")
        self._settled = True
        return self.usable

    async def ack(self) -> None:
        """Done: remove the message for good."""
        if self._settle():
            try:
                # Queued for the socket without waiting for it to be written (aio-pika's `ack()` waits, an
                # event-loop turn per message); frames keep their order, so a later close still follows it.
                channel, tag = cast(aiormq.Channel, self._message.channel), self._message.delivery_tag
                if tag is None:  # basic.deliver always carries one
                    raise RuntimeError("a consumed message without a delivery tag")
                await channel.basic_ack(tag, wait=False)
            except Exception as exc:
                # Its channel is gone: RabbitMQ delivers it again (at-least-once).
                _log.warning("broker_ack_lost", queue=self.queue, key=self.key, error=str(exc))
        self.finish()

    async def dead_letter(self, error: str) -> None:
        """Publish a copy with `error` to the dead-letter queue (confirmed), then ack this one."""
        if self._settled:
            raise RuntimeError("delivery already settled")
        # A void delivery is already back in its queue: a copy now would be a duplicate.
        if self.usable:
            await self._consumer.broker._publish_dead_letter(self, error)  # unsettled when this raises
        await self.ack()

    async def release(self) -> None:
        """Hand it back: its partition's channel is closed, so it comes back before its successors."""
        if self._settle():
            # Not basic.nack: RabbitMQ would redeliver it behind the messages of its key already
            # prefetched here. Closing the channel returns all of them in their original order.
            self._consumer.recycle(self._subscription)
        self.finish()


class _RabbitConsumer(Consumer):
    def __init__(self, broker: RabbitBroker, queue: str, handler: Handler, prefetch: int) -> None:
        self.broker = broker
        self.queue = queue
        self._handler = handler
        self._prefetch = prefetch
        self._slots = asyncio.Semaphore(prefetch)
        self._subscriptions: dict[int, _Subscription] = {}
        self._pending: dict[str, deque[_RabbitDelivery]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Handler tasks (one per key being worked on): the ones stop() lets finish.
        self._key_tasks: set[asyncio.Task[None]] = set()
        self._stopped = False
        # Set by stop(): new and queued deliveries stay unacknowledged (they return when the channel closes).
        self._draining = False

    async def start(self) -> None:
        owned = [p for p in range(self.broker.partitions) if self.broker.owns(p)]
        others = [p for p in range(self.broker.partitions) if not self.broker.owns(p)]
        try:
            for partition in owned:
                await self._subscribe(partition)
        except Exception as exc:
            raise BrokerUnavailable(f"RabbitMQ unavailable ({exc})") from exc
        if others:
            self._spawn(self._subscribe_standby(others))

    def _spawn(self, coroutine: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _subscribe_standby(self, partitions: list[int]) -> None:
        await asyncio.sleep(self.broker.standby_delay)
        for partition in partitions:
            await self._subscribe_until_stopped(partition)

    async def _subscribe_until_stopped(self, partition: int) -> None:
        delay = 0.5
        while not self._stopped:
            try:
                await self._subscribe(partition)
                return
            except Exception as exc:
                _log.warning("broker_subscribe_failed", queue=self.queue, partition=partition, error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _subscribe(self, partition: int) -> None:
        connection = self.broker._ready_connection()
        channel = await connection.channel(publisher_confirms=False)
        subscription = _Subscription(partition, channel)
        try:
            # Per-consumer prefetch: quorum queues refuse a channel-wide (global) one.
            await channel.set_qos(prefetch_count=self._prefetch)
            channel.close_callbacks.add(lambda *_: self._on_channel_closed(subscription))
            # Declared on the consumer channel so the robust connection restores the consumer.
            queue = await channel.declare_queue(self.broker.partition_name(self.queue, partition), passive=True)

            async def on_message(message: AbstractIncomingMessage) -> None:
                self._on_message(subscription, message)

            if self._stopped:  # stop() ran while this partition was being subscribed
                subscription.active = False
                await channel.close()
                return
            self._subscriptions[partition] = subscription
            await queue.consume(on_message)
        except BaseException:
            subscription.active = False
            self._subscriptions.pop(partition, None)
            with contextlib.suppress(Exception):
                await channel.close()
            raise

    def _on_channel_closed(self, subscription: _Subscription) -> None:
        subscription.incarnation += 1
        subscription.void()

    def _on_message(self, subscription: _Subscription, message: AbstractIncomingMessage) -> None:
        try:
            open_channel = not message.channel.is_closed
        except Exception:
            open_channel = False
        if self._stopped or self._draining or not subscription.active or not open_channel:
            # Left unacknowledged: RabbitMQ returns it, in order, when the channel closes.
            return
        delivery = _RabbitDelivery(self, subscription, message)
        subscription.unsettled.add(delivery)
        pending = self._pending.get(delivery.key)
        if pending is None:
            self._pending[delivery.key] = deque([delivery])
            task: asyncio.Task[None] = asyncio.create_task(self._run_key(delivery.key))
            for running in (self._tasks, self._key_tasks):
                running.add(task)
                task.add_done_callback(running.discard)
        else:
            pending.append(delivery)

    async def _run_key(self, key: str) -> None:
        """Hand the deliveries of one key to the handler one after the other, in arrival order."""
        pending = self._pending[key]
        try:
            while pending and not self._draining:
                delivery = pending[0]
                if delivery.usable:
                    await self._deliver(delivery)
                pending.popleft()
        finally:
            if self._pending.get(key) is pending:
                del self._pending[key]

    async def _deliver(self, delivery: _RabbitDelivery) -> None:
        async with self._slots:
            if not delivery.usable or self._draining:
                return  # stopping: it stays unacknowledged and returns in order
            subscription = delivery._subscription
            subscription.running += 1
            subscription.idle.clear()
            try:
                await self._handler(delivery)
            except Exception as exc:
                _log.exception("broker_handler_failed", queue=self.queue, key=delivery.key)
                if not delivery._settled:
                    await _dead_letter_or_release(delivery, exc)
            finally:
                subscription.running -= 1
                if subscription.running == 0:
                    subscription.idle.set()
            # The key (and the slot) stay taken until the handler's delivery is settled or void.
            await delivery.done.wait()

    def recycle(self, subscription: _Subscription) -> None:
        """Close and reopen a partition's channel so a released delivery is redelivered first."""
        if self._stopped or self._draining or not subscription.active:
            return  # stopping: the channel is closed at the end anyway
        subscription.active = False
        self._spawn(self._resubscribe(subscription))

    async def _resubscribe(self, subscription: _Subscription) -> None:
        # Handlers still running on the channel may ack; everything else comes back in order.
        await subscription.idle.wait()
        await self._close_subscription(subscription)
        await self._subscribe_until_stopped(subscription.partition)

    async def _close_subscription(self, subscription: _Subscription) -> None:
        subscription.active = False
        if self._subscriptions.get(subscription.partition) is subscription:
            del self._subscriptions[subscription.partition]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(subscription.channel.close(), timeout=self.broker.confirm_timeout)
        subscription.void()

    async def stop(self, *, grace: float = 0.0) -> None:
        """Take nothing more, let running handlers settle for up to `grace` seconds, cancel the rest, close
        the channels: every unacknowledged delivery returns to its partition in order."""
        if self._stopped or self._draining:
            return
        self._draining = True
        current = asyncio.current_task()
        running = [task for task in self._key_tasks if task is not current]
        if running and grace > 0:
            await asyncio.wait(running, timeout=grace)
        self._stopped = True
        for subscription in self._subscriptions.values():
            subscription.active = False
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for subscription in list(self._subscriptions.values()):
            await self._close_subscription(subscription)
        self.broker._consumers.discard(self)
