"""Message broker: RabbitMQ (production) or a durable SQLite queue (embedded)."""

from __future__ import annotations

from xypr.backends.broker.base import (
    Broker,
    BrokerUnavailable,
    Consumer,
    DeadLetter,
    Delivery,
    Handler,
    OutgoingMessage,
)
from xypr.config import Settings

__all__ = [
    "Broker",
    "BrokerUnavailable",
    "Consumer",
    "DeadLetter",
    "Delivery",
    "Handler",
    "OutgoingMessage",
    "create_broker",
]


def create_broker(settings: Settings, *, worker_index: int = 0, worker_count: int = 1) -> Broker:
    """The broker chosen by settings: RabbitMQ when `amqp_url` is set, else the SQLite queue file."""
    # Imported here so the embedded mode never loads aio-pika, and the other way round.
    if settings.amqp_url:
        from xypr.backends.broker.rabbitmq import RabbitBroker

        return RabbitBroker(
            settings.amqp_url,
            namespace=settings.namespace,
            partitions=settings.partitions,
            worker_index=worker_index,
            worker_count=worker_count,
        )
    from xypr.backends.broker.embedded import SqliteQueueBroker

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteQueueBroker(
        settings.data_dir / "queue.sqlite3",
        partitions=settings.partitions,
        lease_seconds=settings.queue_lease_seconds,
        idle_poll_interval=settings.queue_idle_poll_seconds,
    )
