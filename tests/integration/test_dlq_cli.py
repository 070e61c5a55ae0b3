"""`xypr dlq list` / `xypr dlq replay ID` as an operator runs them, on the embedded broker and on RabbitMQ."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from tests.support.bridge import eventually
from tests.support.workers import settings_env
from xypr.backends.broker import create_broker
from xypr.backends.broker.base import Broker, Delivery, OutgoingMessage
from xypr.config import Settings
from xypr.events import GenesysRequest, ordering_key
from xypr.topology import SEND_GENESYS

ERROR = 'PermanentError: Genesys HTTP 404: {"code":"not.found","message":"Open messaging integration x not found"}'


@pytest.fixture
async def broker(backend_settings: Settings) -> AsyncIterator[Broker]:
    broker = create_broker(backend_settings)
    await broker.connect()
    try:
        yield broker
    finally:
        await broker.close()


def _request(text: str) -> GenesysRequest:
    return GenesysRequest(
        tenant_id="tenant-1",
        kind="message",
        body={"channel": {"from": {"id": "16505551234", "idType": "Phone"}, "time": "2026-11-21T10:00:00.000Z"},
              "text": text},
        accepted_at=1_700_000_000.0,
        correlation_id="cid-1",
    )  # fmt: skip


async def _dead_letter(broker: Broker, request: GenesysRequest) -> None:
    """Publish `request` and dead-letter it as genesys-api does with a permanent error."""
    body = orjson.dumps(request.model_dump(mode="json"))
    await broker.publish(SEND_GENESYS, [OutgoingMessage(body, ordering_key("tenant-1", "16505551234"))])

    async def fail(delivery: Delivery) -> None:
        await delivery.dead_letter(ERROR)

    consumer = await broker.consume(SEND_GENESYS, fail, prefetch=1)
    try:
        await eventually(broker.dead_letters, within=15)
    finally:
        await consumer.stop()


async def _xypr(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "xypr.cli", *args]
    return await asyncio.to_thread(
        subprocess.run, command, env=settings_env(settings), capture_output=True, text=True, timeout=60
    )


async def test_dlq_list_shows_the_event_its_queue_key_and_last_error(
    backend_settings: Settings, broker: Broker
) -> None:
    await _dead_letter(broker, _request("lost in Genesys"))

    listed = await _xypr(backend_settings, "dlq", "list")

    assert listed.returncode == 0, listed.stderr
    (line,) = listed.stdout.splitlines()
    letter: dict[str, Any] = json.loads(line)
    assert letter["queue"] == SEND_GENESYS
    assert letter["key"] == "tenant-1:16505551234"
    assert letter["error"] == ERROR
    assert json.loads(letter["body"])["body"]["text"] == "lost in Genesys"
    assert letter["id"]
    assert letter["dead_at"]


async def test_dlq_replay_puts_the_event_back_on_its_queue_once(backend_settings: Settings, broker: Broker) -> None:
    await _dead_letter(broker, _request("replay me"))
    (letter,) = await broker.dead_letters()

    replayed = await _xypr(backend_settings, "dlq", "replay", letter.id)

    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout.strip() == f"replayed {letter.id}"
    assert await broker.dead_letters() == []
    again: asyncio.Queue[bytes] = asyncio.Queue()

    async def take(delivery: Delivery) -> None:
        await again.put(delivery.body)
        await delivery.ack()

    consumer = await broker.consume(SEND_GENESYS, take, prefetch=1)
    try:
        body = await asyncio.wait_for(again.get(), timeout=15)
    finally:
        await consumer.stop()
    assert GenesysRequest.model_validate_json(body).body["text"] == "replay me"
    assert again.empty()
    listed = await _xypr(backend_settings, "dlq", "list")
    assert listed.stdout == ""


async def test_dlq_replay_of_an_unknown_id_fails_with_a_clear_error(backend_settings: Settings, broker: Broker) -> None:
    replayed = await _xypr(backend_settings, "dlq", "replay", "no-such-dead-letter")

    assert replayed.returncode == 1
    assert "no dead letter no-such-dead-letter" in replayed.stderr
