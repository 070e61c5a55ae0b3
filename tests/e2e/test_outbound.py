"""Outbound at scale on the real services: many conversations through several worker processes, in order, once
each, through a 130429 storm and a token rotation; every permanent failure as exactly one Failed receipt; foreign
attachment URLs never fetched; one number's throughput shared by every process."""

from __future__ import annotations

import asyncio
import base64
import itertools
import re
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select, update

from tests.conftest import production_settings
from tests.support.bridge import Bridge, eventually, running_bridge
from tests.support.workers import WorkerProcess, spawn_workers
from xypr.config import Settings
from xypr.state.models import Conversation, Message
from xypr.tenants.models import Tenant

CONVERSATIONS = 50
MESSAGES = 20
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
_MARKER = re.compile(rb"c(\d+)m(\d+)")


def _services(tmp_path: Path, postgres_url: str, s3_endpoint: str, **overrides: object) -> Settings:
    # Retries fast and often enough that a storm or a token rotation of a few seconds is ridden out; a modest
    # concurrency per process keeps six processes well within PostgreSQL's connection limit.
    return production_settings(
        tmp_path, database_url=postgres_url, s3_endpoint=s3_endpoint, max_attempts=15, retry_base_seconds=0.1,
        retry_max_seconds=1.0, worker_concurrency=8, **overrides,
    )  # fmt: skip


@contextmanager
def _pipeline(bridge: Bridge) -> Iterator[list[WorkerProcess]]:
    """The workers as separate processes: two of each outbound stage, one of each inbound stage."""
    with ExitStack() as stack:
        settings = bridge.runtime.settings
        workers = stack.enter_context(spawn_workers(settings, ["outbound-transformer", "whatsapp-api"], count=2))
        workers += stack.enter_context(spawn_workers(settings, ["inbound-transformer", "genesys-api"], count=1))
        try:
            yield workers
        except BaseException:
            for worker in workers:  # what the workers said, to diagnose the failure
                print(f"--- {worker.name} #{worker.index} (exit {worker.process.poll()}):\n{worker.output()}")
            raise


def _customer(n: int) -> str:
    return f"1555{n:07d}"


async def _customers_write_first(bridge: Bridge, customers: list[str]) -> None:
    """Each customer writes (the 24-hour window opens on both sides); wait until state knows it."""
    gate = asyncio.Semaphore(10)

    async def write(customer: str) -> None:
        async with gate:
            await bridge.customer_says(customer, f"Hello, I am {customer}")

    await asyncio.gather(*(write(customer) for customer in customers))

    async def all_open() -> bool:
        async with bridge.runtime.database.session() as session:
            count = await session.scalar(
                select(func.count()).select_from(Conversation).where(Conversation.last_customer_message_at.is_not(None))
            )
        return count == len(customers)

    await eventually(all_open, within=90, every=0.2)


async def _attachment(bridge: Bridge, data: bytes, mime: str, filename: str) -> dict[str, Any]:
    answer = await bridge.genesys.post(
        "/_sandbox/attachments",
        json={"data_base64": base64.b64encode(data).decode(), "mime_type": mime, "filename": filename},
    )
    answer.raise_for_status()
    attachment: dict[str, Any] = answer.json()
    return attachment


def _webhook_body(bridge: Bridge, genesys_id: str, to: str, **fields: Any) -> dict[str, Any]:
    integration = bridge.demo["genesys"]["integration_id"]
    return {
        "id": genesys_id,
        "channel": {"id": integration, "platform": "Open", "type": "Private", "messageId": genesys_id,
                    "to": {"id": to}, "from": {"nickname": "Agent", "id": integration, "idType": "Opaque"},
                    "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")},
        "direction": "Outbound", "originatingEntity": "Human", **fields,
    }  # fmt: skip


async def _post_webhook(bridge: Bridge, body: dict[str, Any]) -> None:
    """Genesys posts (signed) exactly this outbound body."""
    integration = bridge.demo["genesys"]["integration_id"]
    answer = await bridge.genesys.post(
        f"/_sandbox/integrations/{integration}/webhooks/raw", json={"body": body}, timeout=60
    )
    answer.raise_for_status()
    assert answer.json()["webhook_status"] == 200, answer.text


def _mixed(n: int, m: int, attachment: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Agent message m of conversation n (fields of the webhook body) and how many WhatsApp sends it makes."""
    marker = f"c{n}m{m}"
    kind = m % 10
    if kind == 0:
        template = {
            "id": "ns@order_update",
            "language": "en_US",
            "body": {"parameters": [{"name": "1", "text": marker}]},
        }
        return {"type": "Structured", "content": [{"contentType": "Notification", "template": template}]}, 1
    if kind in (3, 8):
        count = 2 if kind == 3 else 5  # reply buttons, then a list
        replies = [{"contentType": "QuickReply", "quickReply": {"text": f"Option {k}", "payload": f"{marker}-{k}"}}
                   for k in range(count)]  # fmt: skip
        return {"type": "Structured", "text": f"{marker} pick one", "content": replies}, 1
    if kind == 5:
        return {"type": "Text", "text": f"{marker} photo", "content": [{"contentType": "Attachment",
                                                                       "attachment": attachment}]}, 1  # fmt: skip
    if kind == 7:
        return {"type": "Text", "text": f"{marker} " + "long " * 1000 + f"end {marker}", "content": []}, 2
    return {"type": "Text", "text": f"{marker} hello", "content": []}, 1


@dataclass
class Tally:
    """What the agents sent against what reached WhatsApp."""

    expected_parts: dict[tuple[int, int], int] = field(default_factory=dict)
    posted: int = 0
    retried: int = 0

    def judge(self, sent: list[dict[str, Any]], customers: list[str]) -> dict[str, int]:
        """Counts of arrived / duplicated / lost / out-of-order messages from the emulator's sends (in order)."""
        index = {customer: n for n, customer in enumerate(customers)}
        per_conversation: dict[int, list[int]] = {n: [] for n in range(len(customers))}
        for row in sent:
            found = _MARKER.search(orjson.dumps(row["body"]))
            assert found is not None, row["body"]
            n, m = int(found.group(1)), int(found.group(2))
            assert index[row["to"]] == n, "a send reached another customer"
            per_conversation[n].append(m)
        counts = Counter((n, m) for n, ms in per_conversation.items() for m in ms)
        arrived = sum(1 for key, parts in self.expected_parts.items() if counts[key] >= parts)
        duplicated = sum(max(0, counts[key] - parts) for key, parts in self.expected_parts.items())
        lost = sum(1 for key, parts in self.expected_parts.items() if counts[key] < parts)
        out_of_order = sum(
            1 for ms in per_conversation.values() for earlier, later in itertools.pairwise(ms) if later < earlier
        )
        return {"sent": len(self.expected_parts), "arrived": arrived, "duplicated": duplicated, "lost": lost,
                "out_of_order": out_of_order}  # fmt: skip


async def _rotate_whatsapp_token(bridge: Bridge, new_token: str, *, gap: float) -> None:
    """Meta starts refusing the old token (190); `gap` seconds later the operator stores the new one."""
    wa = bridge.demo["whatsapp"]
    answer = await bridge.meta.post(
        "/_sandbox/numbers",
        json={"phone_number_id": wa["phone_number_id"], "display_phone_number": wa["display_phone_number"],
              "waba_id": wa["waba_id"], "access_token": new_token, "app_secret": wa["app_secret"],
              "verify_token": wa["verify_token"], "webhook_url": f"{bridge.url}/webhook/whatsapp"},
    )  # fmt: skip
    answer.raise_for_status()
    await asyncio.sleep(gap)
    async with bridge.runtime.database.session() as session:
        tenant = await session.scalar(select(Tenant).where(Tenant.wa_phone_number_id == wa["phone_number_id"]))
        assert tenant is not None
        tenant.wa_access_token_sealed = bridge.runtime.box.seal(new_token, tenant_id=tenant.id)


@pytest.mark.services
@pytest.mark.timeout(240)
async def test_fifty_conversations_of_twenty_mixed_agent_messages_arrive_complete_in_order_and_once(
    tmp_path: Path, postgres_url: str, s3_endpoint: str
) -> None:
    settings = _services(tmp_path, postgres_url, s3_endpoint)
    async with running_bridge(settings, workers=False) as bridge, asyncio.timeout(200):
        with _pipeline(bridge) as workers:
            # Only the `sent` status follows each send here: this test is about the outbound path, and the
            # bridge, both emulators and this test share one event loop (the statuses path has its own tests).
            await bridge.meta.post("/_sandbox/statuses/sequence", json={"sequence": ["sent"]})
            customers = [_customer(n) for n in range(CONVERSATIONS)]
            opened = time.monotonic()
            await _customers_write_first(bridge, customers)
            print(f"\n{len(customers)} customers wrote first in {time.monotonic() - opened:.1f}s")
            attachment = await _attachment(bridge, PNG, "image/png", "photo.png")
            number = bridge.demo["whatsapp"]["phone_number_id"]
            tally = Tally()
            storm, rotation = asyncio.Event(), asyncio.Event()
            total = CONVERSATIONS * MESSAGES
            gate = asyncio.Semaphore(16)  # webhooks in flight at once, all conversations together

            async def agent(n: int) -> None:
                for m in range(MESSAGES):
                    fields, parts = _mixed(n, m, attachment)
                    body = _webhook_body(bridge, f"{n:04d}{m:04d}" + "0" * 24, customers[n], **fields)
                    tally.expected_parts[(n, m)] = parts
                    async with gate:
                        await _post_webhook(bridge, body)
                        if m % 4 == 1:  # Genesys did not get our 200 in time and retries the same message
                            await _post_webhook(bridge, body)
                            tally.retried += 1
                    tally.posted += 1
                    if tally.posted == total // 5:
                        storm.set()
                    if tally.posted == total // 2:
                        rotation.set()

            async def trouble() -> None:
                await storm.wait()
                await bridge.meta.post("/_sandbox/faults", json={"phone_number_id": number, "code": 130429,
                                                                 "count": 100})  # fmt: skip
                await rotation.wait()
                await _rotate_whatsapp_token(bridge, "rotated-whatsapp-token", gap=1.0)

            started = time.monotonic()
            await asyncio.gather(trouble(), *(agent(n) for n in range(CONVERSATIONS)))
            print(f"agents posted {tally.posted} (+{tally.retried} retries) in {time.monotonic() - started:.1f}s")
            expected_sends = sum(tally.expected_parts.values())

            async def all_sent() -> list[dict[str, Any]] | None:
                answer = await bridge.meta.get("/_sandbox/sent", params={"phone_number_id": number})
                rows: list[dict[str, Any]] = answer.json()
                return rows if len(rows) >= expected_sends else None

            sent = await eventually(all_sent, within=120, every=0.5)
            elapsed = time.monotonic() - started
            await asyncio.sleep(1.0)  # anything sent twice would show up now
            sent = (await bridge.meta.get("/_sandbox/sent", params={"phone_number_id": number})).json()
            result = tally.judge(sent, customers)
            print(
                f"\noutbound e2e: {result} parts={len(sent)}/{expected_sends} genesys_retries={tally.retried} "
                f"elapsed={elapsed:.1f}s ({len(sent) / elapsed:.0f} sends/s) workers={len(workers)}"
            )
            failed = [r for r in await bridge.genesys_received("receipt") if r["body"]["status"] == "Failed"]
            pending = await bridge.meta.post("/_sandbox/faults", json={"phone_number_id": number, "code": 131000})
            async with bridge.runtime.database.session() as session:
                statuses = Counter(
                    (await session.scalars(select(Message.status).where(Message.direction == "outbound"))).all()
                )

    assert result == {"sent": total, "arrived": total, "duplicated": 0, "lost": 0, "out_of_order": 0}
    assert failed == []
    assert pending.json()["pending_faulted_sends"] == 1  # the whole 130429 storm was met (and ridden out)
    assert sum(statuses.values()) == total
    assert set(statuses) <= {"sent", "delivered", "read"}, statuses
    assert all(row["body"]["image"]["id"] for row in sent if row["body"]["type"] == "image")  # uploaded before sending


class _Listener:
    """A TCP listener on 127.0.0.1 that counts every connection (nothing may ever connect)."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> _Listener:
        async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.close()

        self.server = await asyncio.start_server(accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def port(self) -> int:
        assert self.server is not None
        port: int = self.server.sockets[0].getsockname()[1]
        return port


@pytest.mark.timeout(120)
async def test_every_permanent_failure_is_exactly_one_failed_receipt_with_its_reason_and_foreign_urls_are_never_fetched(
    backend_settings: Settings,
) -> None:
    async with running_bridge(backend_settings) as bridge, _Listener() as listener:
        customer = _customer(1)
        await _customers_write_first(bridge, [customer])
        number = bridge.demo["whatsapp"]["phone_number_id"]
        gif = await _attachment(bridge, b"GIF89a" + b"\0" * 64, "image/gif", "a.gif")
        huge = {**await _attachment(bridge, b"RIFF" + b"\0" * (520 * 1024), "image/webp", "s.webp")}
        huge.pop("contentSizeBytes")
        port = listener.port
        foreign = [
            f"https://127.0.0.1:{port}/a.jpg",
            f"http://127.0.0.1:{port}/sandbox/genesys/a.jpg",
            f"https://localhost:{port}/a.jpg",
            f"https://api.usw2.pure.cloud.127.0.0.1.nip.io:{port}/a.jpg",
        ]
        cases: list[tuple[str, dict[str, Any], str, dict[str, Any] | None]] = [
            ("m01", {"type": "Text", "text": "m01"}, "MessageExpired", {"code": 131047}),
            ("m02", {"type": "Text", "text": "m02"}, "InvalidDestination", {"code": 131026}),
            ("m03", {"type": "Text", "text": "m03"}, "MediaTypeNotAllowed", {"code": 131053}),
            ("m04", {"type": "Text", "text": "m04"}, "RecipientOptedOut", {"code": 131050}),
            ("m05", {"type": "Text", "text": "m05"}, "InvalidDestination", {"code": 131026, "mode": "status"}),
            ("m06", {"type": "Text", "content": [{"contentType": "Attachment", "attachment": gif}]},
             "MediaTypeNotAllowed", None),
            ("m07", {"type": "Text", "content": [{"contentType": "Attachment", "attachment": huge}]},
             "InvalidMediaContentLength", None),
            *((f"m1{k}", {"type": "Text", "text": "x", "content": [{"contentType": "Attachment", "attachment": {
                "mediaType": "Image", "url": url, "mime": "image/jpeg"}}]}, "GeneralError", None)
              for k, url in enumerate(foreign)),
            ("m20", {"type": "Structured", "content": [{"contentType": "Story"}]}, "UnsupportedMessage", None),
        ]  # fmt: skip
        ids = {}
        for name, fields, _reason, fault in cases:
            if fault is not None:
                await bridge.meta.post("/_sandbox/faults", json={"phone_number_id": number, "count": 1, **fault})
            genesys_id = f"{name}".ljust(32, "0")
            ids[name] = genesys_id
            body = _webhook_body(bridge, genesys_id, customer, **fields)
            await _post_webhook(bridge, body)
            await _post_webhook(bridge, body)  # a Genesys retry must not make a second receipt

            async def receipted(genesys_id: str = genesys_id) -> bool:
                return any(r["body"]["id"] == genesys_id for r in await bridge.genesys_received("receipt"))

            await eventually(receipted, within=20)
        # Outside the window: our own check refuses (nothing reaches Meta).
        async with bridge.runtime.database.session() as session:
            await session.execute(
                update(Conversation).values(last_customer_message_at=datetime.now(UTC) - timedelta(hours=25))
            )
        late = "m30".ljust(32, "0")
        await _post_webhook(bridge, _webhook_body(bridge, late, customer, type="Text", text="m30"))
        cases.append(("m30", {}, "MessageExpired", None))
        ids["m30"] = late
        await eventually(lambda: _has_receipt(bridge, late), within=20)
        await asyncio.sleep(0.5)  # late duplicates would show up now

        failed = [r["body"] for r in await bridge.genesys_received("receipt") if r["body"]["status"] == "Failed"]
        sent_texts = [s["body"].get("text", {}).get("body") for s in await bridge.whatsapp_sent(to=customer)]

    by_id = Counter(receipt["id"] for receipt in failed)
    assert set(by_id) == set(ids.values())
    assert all(count == 1 for count in by_id.values()), by_id
    reasons = {receipt["id"]: receipt["reasons"][0]["code"] for receipt in failed}
    assert {name: reasons[ids[name]] for name, *_ in cases} == {name: reason for name, _, reason, _ in cases}
    assert listener.connections == 0
    assert sent_texts == ["m05"]  # the only one Meta accepted (then reported failed); the others never left


async def _has_receipt(bridge: Bridge, genesys_id: str) -> bool:
    return any(r["body"]["id"] == genesys_id for r in await bridge.genesys_received("receipt"))


@pytest.mark.services
@pytest.mark.timeout(120)
async def test_the_throughput_limit_of_a_number_is_shared_by_every_worker_process(
    tmp_path: Path, postgres_url: str, s3_endpoint: str
) -> None:
    limit, warm_up, count = 5, 8, 20
    settings = _services(tmp_path, postgres_url, s3_endpoint, whatsapp_throughput_per_second=limit, log_level="INFO")
    async with running_bridge(settings, workers=False) as bridge:
        await bridge.meta.post("/_sandbox/statuses/sequence", json={"sequence": []})
        template = {"id": "ns@hello_world", "language": "en_US", "body": {"parameters": []}}
        # Templates need no open window: one customer per message, so the sends spread over the partitions.
        bodies = [
            _webhook_body(bridge, f"t{n:031d}", _customer(n), type="Structured",
                          content=[{"contentType": "Notification", "template": template}])
            for n in range(warm_up + count)
        ]  # fmt: skip

        async def sent_at_least(total: int) -> list[dict[str, Any]] | None:
            sent = await bridge.whatsapp_sent()
            return sent if len(sent) >= total else None

        with spawn_workers(bridge.runtime.settings, ["outbound-transformer", "whatsapp-api"], count=2) as workers:
            await asyncio.gather(*(_post_webhook(bridge, body) for body in bodies[:warm_up]))
            await eventually(lambda: sent_at_least(warm_up), within=60)
            await asyncio.sleep(1.1)  # the warm-up leaves the one-second window
            started = time.monotonic()
            await asyncio.gather(*(_post_webhook(bridge, body) for body in bodies[warm_up:]))
            sent = await eventually(lambda: sent_at_least(warm_up + count), within=60, every=0.05)
            elapsed = time.monotonic() - started
            per_process = [
                worker.log_path.read_text().count('"whatsapp.sent"')
                for worker in workers
                # One hop (XYPR_DIRECT_SEND): the outbound transformers call Meta themselves.
                if worker.name == "outbound-transformer"
            ]
            print(f"\nthroughput: {count} sends at {limit}/s in {elapsed:.2f}s; sends per outbound-transformer process "
                  f"{per_process} (warm-up included)")  # fmt: skip

    assert len({row["to"] for row in sent}) == warm_up + count
    assert all(sends > 0 for sends in per_process)  # both processes sent: the limit is theirs together
    # A sliding window of 5 a second lets 5 go at once and 5 more each second: 20 need at least 3 s.
    # Two processes counting separately would have needed only about half of that.
    assert elapsed >= (count / limit - 1) * 0.95
