"""Removing a test namespace's RabbitMQ topology, so quorum queues do not pile up on the test broker."""

from __future__ import annotations

import asyncio

import aio_pika

from xypr.backends.broker.rabbitmq import RabbitBroker
from xypr.config import Settings
from xypr.topology import QUEUES

__all__ = ["drop_namespace", "purge_test_namespaces"]


async def drop_namespace(settings: Settings) -> None:
    """Delete every exchange and queue `RabbitBroker` declares for the settings' namespace.

    Absent ones are fine (deleting is idempotent); on the embedded broker there is nothing to do.
    """
    if not settings.amqp_url:
        return
    names = RabbitBroker(settings.amqp_url, namespace=settings.namespace, partitions=settings.partitions)
    connection = await aio_pika.connect(settings.amqp_url, timeout=10)
    try:
        channel = await connection.channel()
        for queue in QUEUES:
            for partition in range(settings.partitions):
                await channel.queue_delete(names.partition_name(queue, partition))
            await channel.exchange_delete(names.exchange_name(queue))
        await channel.queue_delete(names.dead_letter_name)
        await channel.exchange_delete(names.dead_letter_name)
    finally:
        await connection.close()


async def purge_test_namespaces(url: str) -> int:
    """Delete every `test-*` queue and exchange left by earlier runs; returns how many queues went.

    Only for a broker no other test run is using at the same time (CI runs the suite alone).
    """
    listing = await asyncio.create_subprocess_exec(
        "rabbitmqctl", "list_queues", "name", "--no-table-headers", "-q",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(listing.communicate(), timeout=120)
    queues = [name for name in out.decode().split() if name.startswith("test-")]
    connection = await aio_pika.connect(url, timeout=10)
    try:
        channel = await connection.channel()
        for name in queues:
            await channel.queue_delete(name)
    finally:
        await connection.close()
    return len(queues)
