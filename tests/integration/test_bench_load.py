"""The load generator and the bench emulators at work: a local server, real time (tests of bench/)."""

from __future__ import annotations

import asyncio
import itertools
import time

import httpx
from bench.emulators import create_emulators_app
from bench.load import DROPPED, LoadSpec, LoadTenant, build_plan, open_loop

TENANT = LoadTenant(
    waba_id="419561257915477",
    phone_number_id="106540352242922",
    display_phone_number="15550783881",
    app_secret="bench-app-secret",
    integration_id="73cb7fb7-c2db-4996-88f3-0a83a4fea1da",
    webhook_secret="bench-webhook-secret-0123456789",
)


def _spec(**fields: object) -> LoadSpec:
    values: dict[str, object] = {"targets": ["http://127.0.0.1:9"], "run_id": "r1", "tenant": TENANT, "out": "-"}
    return LoadSpec.model_validate({**values, **fields})


async def test_open_loop_never_has_two_messages_of_one_sender_in_flight_even_when_it_drops_some() -> None:
    async def slow_sometimes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]))
                served += 1
                await asyncio.sleep(0.4 if served % 5 == 0 else 0.001)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(slow_sometimes, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    spec = _spec(targets=[f"http://127.0.0.1:{port}"], rate=300, duration=1.0, connections=8, max_lag=0.1,
                 pattern="bursts", senders=3, burst=10)  # fmt: skip
    plan = build_plan(spec)
    try:
        async with asyncio.timeout(30):
            results = await open_loop(spec, plan, [("127.0.0.1", port)])
    finally:
        server.close()

    overlaps = 0
    for sender in {item.sender for item in plan}:
        spans = sorted(
            (results.sent[item.index], results.sent[item.index] + (results.latency[item.index] or 0.0))
            for item in plan
            if item.sender == sender and results.sent[item.index] is not None
        )
        overlaps += sum(1 for before, after in itertools.pairwise(spans) if after[0] < before[1])
    assert DROPPED in results.status  # the slow answers made it drop some: the case that matters
    assert overlaps == 0


async def test_the_emulators_record_accepted_open_messaging_messages_and_delay_only_the_api() -> None:
    app = create_emulators_app(base_url="http://emulators", latency=0.5)
    integration = {"integration_id": TENANT.integration_id, "name": "Bench", "client_id": "bench-client",
                   "client_secret": "bench-client-secret", "webhook_url": "http://127.0.0.1:9/webhook/genesys",
                   "webhook_secret": TENANT.webhook_secret, "org_id": None}  # fmt: skip
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://emulators") as client:
        started = time.perf_counter()
        (await client.post("/genesys/_sandbox/integrations", json=integration)).raise_for_status()
        control = time.perf_counter() - started
        token = await client.post(
            "/genesys/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=("bench-client", "bench-client-secret"),
        )
        started = time.perf_counter()
        answer = await client.post(
            f"/genesys/api/v2/conversations/messages/{TENANT.integration_id}/inbound/open/message",
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            json={"channel": {"messageId": "wamid.bench-1", "from": {"id": "15550000001000", "idType": "Phone"},
                              "time": "2026-01-01T00:00:00.000Z"}, "text": "hello"},
        )  # fmt: skip
        api = time.perf_counter() - started
        refused = await client.post(
            f"/genesys/api/v2/conversations/messages/{TENANT.integration_id}/inbound/open/message",
            json={"channel": {"messageId": "wamid.bench-2", "from": {"id": "15550000001000", "idType": "Phone"},
                              "time": "2026-01-01T00:00:00.000Z"}, "text": "no token"},
        )  # fmt: skip
        rows = (await client.get("/_bench/arrivals")).json()["rows"]

    assert answer.status_code == 200
    assert refused.status_code == 401  # refused calls are not arrivals
    assert control < 0.4
    assert api >= 0.5
    assert [(row[2], row[3], row[4]) for row in rows] == [("genesys", "wamid.bench-1", "15550000001000")]
