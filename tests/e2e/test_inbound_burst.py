"""Bursts through 2 processes of each worker on the real services: complete, in order, once; storms and faults.

The bridge (webhooks and both emulators) runs in this process; `inbound-transformer` and `genesys-api`
run as two OS processes each, reaching the emulators over HTTP. The test plays Meta: it signs and
posts webhooks concurrently across conversations, each conversation's messages one after the other
(their acceptance order). Every scenario prints its figures: sent, delivered, lost, duplicates,
out-of-order, dead-lettered.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import pytest_asyncio
from pydantic import SecretStr
from sqlalchemy import func, select

from tests.conftest import AMQP_URL, POSTGRES_ADMIN, REDIS_URL, embedded_settings
from tests.support.bridge import Bridge, eventually, running_bridge, tenant_spec
from tests.support.rabbit import drop_namespace
from tests.support.workers import WorkerProcess, settings_env, spawn_workers
from xypr.backends.broker.base import DeadLetter
from xypr.config import Settings
from xypr.sandbox.demo import GENESYS_PREFIX, META_PREFIX, register_with_emulators
from xypr.state.models import Message
from xypr.tenants.service import create_tenant, parse_tenant_file
from xypr.whatsapp import signature

pytestmark = [pytest.mark.services, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(150)]

CONVERSATIONS = 50
MESSAGES = 20
# The fault scenarios need a burst in flight, not the full size: half of it keeps the file near two minutes.
FAULT_CONVERSATIONS = 25
# Conversations posting at once; each posts its own messages one after the other.
POSTING_CONVERSATIONS = 25
WORKERS = ("inbound-transformer", "genesys-api")


@dataclass
class Pipeline:
    """The bridge (webhooks, emulators) in this process and two processes of each worker, shared by the module."""

    bridge: Bridge
    workers: list[WorkerProcess]

    async def scenario(self) -> Baseline:
        """Start a scenario: forget the emulated Genesys' traffic and faults; note tokens and dead letters so far."""
        (await self.bridge.genesys.post("/_sandbox/reset", json={})).raise_for_status()
        letters = len(await self.bridge.runtime.broker.dead_letters(limit=100_000))
        return Baseline(tokens=await tokens_issued(self.bridge), dead_letters=letters, started=time.monotonic())


@dataclass(frozen=True)
class Baseline:
    """Counters at the start of a scenario, so each scenario reports its own."""

    tokens: int
    dead_letters: int
    started: float


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pipeline(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str) -> AsyncIterator[Pipeline]:
    """One database, namespace, bridge and worker set for every scenario: worker start-up is paid once."""
    database = f"xypr_test_{uuid.uuid4().hex[:12]}"
    await _postgres(f'CREATE DATABASE "{database}"')
    base = POSTGRES_ADMIN.rsplit("/", 1)[0].split("://", 1)[1]
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    # Not `production_settings`: it registers the namespace to be dropped after the first test of the module.
    settings = embedded_settings(
        tmp_path_factory.mktemp("burst"),
        database_url=f"postgresql+asyncpg://{base}/{database}",
        amqp_url=AMQP_URL,
        redis_url=REDIS_URL,
        s3_endpoint=s3_endpoint,
        s3_bucket=namespace,
        s3_access_key=SecretStr("testing"),
        s3_secret_key=SecretStr("testing"),
        namespace=namespace,
        # A storm must fit in the retry budget: 10 tries, waits capped at 1 s (Retry-After still honoured).
        max_attempts=10,
        retry_base_seconds=0.05,
        retry_max_seconds=1.0,
    )
    try:
        async with running_bridge(settings, workers=False) as bridge:
            # The bridge's settings point at its emulators and carry the master key and namespace.
            # INFO: each process says when it consumes, and logs each Genesys call it made.
            children = bridge.runtime.settings.model_copy(update={"log_level": "INFO"})
            with spawn_workers(children, WORKERS, count=2) as workers:
                await _started(workers)
                try:
                    yield Pipeline(bridge, workers)
                finally:
                    for worker in workers:
                        errors = [line for line in worker.output().splitlines() if '"level": "error"' in line]
                        if errors:
                            print(f"--- {worker.name} #{worker.index} errors ---", *errors[-10:], sep="\n")
    finally:
        await drop_namespace(settings)
        await _postgres(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


async def _postgres(statement: str) -> None:
    admin = await asyncpg.connect(POSTGRES_ADMIN)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


async def _started(workers: list[WorkerProcess], within: float = 90.0) -> None:
    """Wait until every worker process says it consumes (the clock of a scenario starts after that)."""

    async def all_started() -> bool:
        for worker in workers:
            if worker.process.poll() is not None:
                raise RuntimeError(f"{worker.name} #{worker.index} exited:\n{worker.output()}")
        return all("xypr.started" in worker.output() for worker in workers)

    await eventually(all_started, within=within, every=0.2)


def _calls_made(worker: WorkerProcess) -> int:
    return worker.log_path.read_text(errors="replace").count('"event": "genesys.sent"')


@dataclass
class Burst:
    """What the test posted: per conversation, its wamids in acceptance order."""

    tag: str
    phone_number_id: str
    app_secret: str
    waba_id: str
    media_id: str | None = None
    sent: dict[str, list[str]] = field(default_factory=dict)

    def customer(self, index: int) -> str:
        return f"1{int(self.tag, 16) % 10**6:06d}{index:04d}"

    def wamid(self, index: int, seq: int) -> str:
        return f"wamid.{self.tag}.{index:03d}.{seq:03d}"

    def expected(self) -> int:
        return sum(len(wamids) for wamids in self.sent.values())


def _content(burst: Burst, index: int, seq: int) -> dict[str, Any]:
    """A mix of types: mostly text, and location, contacts, an interactive reply and an image."""
    label = f"c{index} #{seq}"
    kind = seq % 10
    if kind == 3:
        return {"type": "location", "location": {"latitude": 38.9 + seq / 1000, "longitude": -77.03, "name": label}}
    if kind == 6:
        return {"type": "contacts", "contacts": [{"name": {"formatted_name": label, "first_name": "Ana"},
                                                 "phones": [{"phone": "+1 555 0123", "type": "CELL"}]}]}  # fmt: skip
    if kind == 8:
        return {"type": "interactive",
                "interactive": {"type": "button_reply", "button_reply": {"id": f"b{seq}", "title": label}}}  # fmt: skip
    if kind == 9 and burst.media_id:
        return {"type": "image", "image": {"id": burst.media_id, "mime_type": "image/jpeg", "caption": label}}
    return {"type": "text", "text": {"body": label}}


def _webhook(burst: Burst, index: int, seq: int) -> bytes:
    customer = burst.customer(index)
    message = {"from": customer, "id": burst.wamid(index, seq), "timestamp": str(1_763_719_200 + seq),
               **_content(burst, index, seq)}  # fmt: skip
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550100", "phone_number_id": burst.phone_number_id},
             "contacts": [{"profile": {"name": f"Customer {index}"}, "wa_id": customer}],
             "messages": [message]}  # fmt: skip
    entry = {"id": burst.waba_id, "changes": [{"field": "messages", "value": value}]}
    return orjson.dumps({"object": "whatsapp_business_account", "entry": [entry]})


async def _post(bridge: Bridge, burst: Burst, raw: bytes) -> None:
    headers = {"X-Hub-Signature-256": signature.sign(burst.app_secret, raw), "Content-Type": "application/json"}
    for _ in range(20):  # a 503 (broker busy) is retried, as Meta would
        answer = await bridge.client.post("/webhook/whatsapp", content=raw, headers=headers)
        if answer.status_code != 503:
            break
        await asyncio.sleep(0.2)
    assert answer.status_code == 200, answer.text


async def post_burst(
    bridge: Bridge,
    burst: Burst,
    *,
    conversations: int,
    messages: int,
    copies: int = 1,
    on_progress: Callable[[float], Awaitable[None]] | None = None,
) -> None:
    """Post every conversation's messages in order (each `copies` times), conversations concurrently."""
    gate = asyncio.Semaphore(POSTING_CONVERSATIONS)
    total, posted = conversations * messages, 0
    marks = iter([0.2, 0.4, 0.6, 0.8, 2.0])
    next_mark = next(marks)

    async def conversation(index: int) -> None:
        nonlocal posted, next_mark
        async with gate:
            for seq in range(messages):
                raw = _webhook(burst, index, seq)
                for _ in range(copies):
                    await _post(bridge, burst, raw)
                burst.sent.setdefault(burst.customer(index), []).append(burst.wamid(index, seq))
                posted += 1
                if on_progress is not None and posted / total >= next_mark:
                    mark, next_mark = next_mark, next(marks)
                    await on_progress(mark)

    await asyncio.gather(*(conversation(index) for index in range(conversations)))


@dataclass(frozen=True)
class Figures:
    """The outcome of one scenario as Genesys saw it."""

    sent: int
    delivered: int
    lost: int
    duplicates: int
    out_of_order: int
    dead_lettered: int

    def line(self, scenario: str, seconds: float, **extra: object) -> str:
        more = "".join(f" {key}={value}" for key, value in extra.items())
        return (
            f"[burst] {scenario}: sent={self.sent} delivered={self.delivered} lost={self.lost} "
            f"duplicates={self.duplicates} out_of_order={self.out_of_order} dead_lettered={self.dead_lettered} "
            f"seconds={seconds:.1f}{more}"
        )


async def _arrivals(bridge: Bridge, integration_id: str | None = None) -> list[dict[str, Any]]:
    """Everything Genesys received as customer messages (plain or button answers), in arrival order."""
    rows = await bridge.genesys_received("", integration_id)  # every kind, in the order they came
    return [row for row in rows if row["kind"] in ("message", "structured")]


async def figures(bridge: Bridge, burst: Burst, baseline: Baseline, integration_id: str | None = None) -> Figures:
    """Count what arrived against what was sent: lost, duplicated, out of acceptance order."""
    mine = f"wamid.{burst.tag}."
    wamids = [row["body"]["channel"].get("messageId", "") for row in await _arrivals(bridge, integration_id)]
    arrived = [wamid for wamid in wamids if wamid.startswith(mine)]
    seen: set[str] = set()
    order: dict[str, list[int]] = defaultdict(list)
    for wamid in arrived:
        if wamid not in seen:
            seen.add(wamid)
            _, _, index, seq = wamid.rsplit(".", 3)
            order[index].append(int(seq))
    # A message is out of order when one accepted after it, in its conversation, reached Genesys first.
    out_of_order = sum(
        1 for seqs in order.values() for position, seq in enumerate(seqs) if any(seq < s for s in seqs[:position])
    )
    expected = {wamid for wamids in burst.sent.values() for wamid in wamids}
    letters = len(await bridge.runtime.broker.dead_letters(limit=100_000))
    return Figures(
        sent=burst.expected(),
        delivered=len(seen & expected),
        lost=len(expected - seen),
        duplicates=len(arrived) - len(seen),
        out_of_order=out_of_order,
        dead_lettered=letters - baseline.dead_letters,
    )


async def settle(
    bridge: Bridge, burst: Burst, baseline: Baseline, *, within: float = 90.0, integration_id: str | None = None
) -> Figures:
    """Wait until everything sent arrived (or the time is up), then a little more for late duplicates."""

    async def complete() -> Figures | None:
        now = await figures(bridge, burst, baseline, integration_id)
        return now if now.delivered >= now.sent else None

    with contextlib.suppress(AssertionError):  # incomplete after `within`: the figures tell what is missing
        await eventually(complete, within=within, every=1.0)
    await asyncio.sleep(0.5)
    return await figures(bridge, burst, baseline, integration_id)


async def new_burst(bridge: Bridge, *, media: bool = True) -> Burst:
    """A burst for the demo tenant, with one image the emulated Meta serves when `media`."""
    wa = bridge.demo["whatsapp"]
    burst = Burst(uuid.uuid4().hex[:8], wa["phone_number_id"], wa["app_secret"], wa["waba_id"])
    if media:
        content = b"\xff\xd8\xff\xe0" + os.urandom(2_000) + b"\xff\xd9"
        created = await bridge.meta.post(
            "/_sandbox/media",
            json={"phone_number_id": burst.phone_number_id, "data_base64": base64.b64encode(content).decode(),
                  "mime_type": "image/jpeg"},
        )  # fmt: skip
        created.raise_for_status()
        burst.media_id = created.json()["id"]
    return burst


async def tokens_issued(bridge: Bridge) -> int:
    """How many tokens the emulated Genesys ever issued (expiring them all answers the count)."""
    answer = await bridge.genesys.post("/_sandbox/tokens/expire")
    answer.raise_for_status()
    count: int = answer.json()["expired"]
    return count


async def tracked(bridge: Bridge, burst: Burst) -> tuple[int, int]:
    """The burst's customer messages tracked in state: (rows, rows sent to Genesys)."""
    mine = Message.wamid.like(f"wamid.{burst.tag}.%")
    async with bridge.runtime.database.session() as session:
        rows = await session.scalar(select(func.count()).select_from(Message).where(mine))
        sent = await session.scalar(select(func.count()).select_from(Message).where(mine, Message.status == "sent"))
    return int(rows or 0), int(sent or 0)


def assert_perfect(result: Figures) -> None:
    """Nothing lost, nothing twice, nothing out of order, nothing dead-lettered."""
    assert result.lost == 0, result
    assert result.duplicates == 0, result
    assert result.out_of_order == 0, result
    assert result.dead_lettered == 0, result
    assert result.delivered == result.sent, result


async def test_burst_of_50_conversations_x_20_mixed_messages_arrives_complete_in_order_once(
    pipeline: Pipeline,
) -> None:
    bridge, baseline = pipeline.bridge, await pipeline.scenario()
    burst = await new_burst(bridge)

    await post_burst(bridge, burst, conversations=CONVERSATIONS, messages=MESSAGES)
    result = await settle(bridge, burst, baseline)

    seconds = time.monotonic() - baseline.started
    # The baseline expired every token: the first call of the burst had to fetch one, the only one.
    tokens = await tokens_issued(bridge) - baseline.tokens
    # One hop (XYPR_DIRECT_SEND): the inbound transformers call Genesys themselves.
    callers = [worker for worker in pipeline.workers if worker.name == "inbound-transformer"]
    shares = "/".join(str(_calls_made(worker)) for worker in callers)
    print(result.line("burst 50x20 mixed (text, location, contacts, button reply, images)", seconds, tokens=tokens,
                      genesys_calls_per_process=shares))  # fmt: skip
    assert_perfect(result)
    assert result.sent == CONVERSATIONS * MESSAGES
    assert await tracked(bridge, burst) == (result.sent, result.sent)
    assert tokens == 1  # two processes, dozens of concurrent calls: one token between them
    calls = [_calls_made(worker) for worker in callers]
    assert len(calls) == 2
    assert all(calls), calls  # both processes did a share of the work


async def test_same_burst_with_every_webhook_delivered_twice_arrives_once(pipeline: Pipeline) -> None:
    bridge, baseline = pipeline.bridge, await pipeline.scenario()
    burst = await new_burst(bridge)

    await post_burst(bridge, burst, conversations=CONVERSATIONS, messages=MESSAGES, copies=2)
    result = await settle(bridge, burst, baseline)

    print(result.line("burst 50x20, every webhook twice", time.monotonic() - baseline.started, posts=2 * result.sent))
    assert_perfect(result)
    assert await tracked(bridge, burst) == (result.sent, result.sent)


async def test_genesys_429_and_5xx_storm_mid_burst_loses_nothing(pipeline: Pipeline) -> None:
    bridge, baseline = pipeline.bridge, await pipeline.scenario()
    burst = await new_burst(bridge)
    storm = [{"status": 429, "count": 30, "retry_after": 1}, {"status": 503, "count": 30},
             {"status": 500, "count": 15}, {"status": 502, "count": 15}]  # fmt: skip

    async def storm_at(progress: float) -> None:
        if progress in (0.2, 0.6):
            for fault in storm:
                (await bridge.genesys.post("/_sandbox/faults", json=fault)).raise_for_status()

    await post_burst(bridge, burst, conversations=FAULT_CONVERSATIONS, messages=MESSAGES, on_progress=storm_at)
    result = await settle(bridge, burst, baseline)

    # Adding a one-call probe answers how many faulted calls are still pending: none but the probe.
    probe = (await bridge.genesys.post("/_sandbox/faults", json={"status": 503, "count": 1})).json()
    (await bridge.genesys.post("/_sandbox/reset", json={})).raise_for_status()
    injected = 2 * sum(fault["count"] for fault in storm)
    print(result.line("burst 25x20, 429/5xx storm", time.monotonic() - baseline.started, faulted_calls=injected))
    assert probe["pending_faulted_calls"] == 1  # every injected fault did hit a call
    assert_perfect(result)


async def test_token_expiry_mid_burst_loses_nothing_and_fetches_one_token_per_expiry(pipeline: Pipeline) -> None:
    bridge, baseline = pipeline.bridge, await pipeline.scenario()
    burst = await new_burst(bridge)
    expiries = 1  # the baseline expired every token already
    during: list[int] = []

    async def expire_at(progress: float) -> None:
        nonlocal expiries
        if progress in (0.2, 0.6):
            during.append(await tokens_issued(bridge))
            expiries += 1

    await post_burst(bridge, burst, conversations=FAULT_CONVERSATIONS, messages=MESSAGES, on_progress=expire_at)
    result = await settle(bridge, burst, baseline)

    tokens = await tokens_issued(bridge) - baseline.tokens
    print(result.line("burst 25x20, tokens expired twice mid-burst", time.monotonic() - baseline.started,
                      tokens=tokens))  # fmt: skip
    assert_perfect(result)
    assert len(during) == 2
    assert 2 <= tokens <= expiries  # one new token per expiry at most: never one per request or per process


async def _xypr(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "xypr.cli", *args]
    return await asyncio.to_thread(
        subprocess.run, command, env=settings_env(settings), capture_output=True, text=True, timeout=60
    )


async def _register(bridge: Bridge, spec: dict[str, Any]) -> None:
    """Register a tenant with both emulators on fresh connections (the shared clients may sit idle for long)."""
    async with (
        httpx.AsyncClient(base_url=bridge.url + META_PREFIX, timeout=10) as meta,
        httpx.AsyncClient(base_url=bridge.url + GENESYS_PREFIX, timeout=10) as genesys,
    ):
        await register_with_emulators(meta, genesys, spec, public_url=bridge.url)


async def test_permanent_error_lands_in_dead_letters_and_replays_in_order_after_the_fix(pipeline: Pipeline) -> None:
    bridge, baseline = pipeline.bridge, await pipeline.scenario()
    # A tenant configured with an integration id Genesys does not have: every send answers 404.
    spec = tenant_spec()
    tenant = await create_tenant(bridge.runtime.database, bridge.runtime.box, parse_tenant_file(spec))
    bridge.runtime.tenants.invalidate()
    wrong = {**spec, "genesys": {**spec["genesys"], "integration_id": str(uuid.uuid4())}}
    await _register(bridge, wrong)
    broken = Burst(uuid.uuid4().hex[:8], spec["whatsapp"]["phone_number_id"], spec["whatsapp"]["app_secret"],
                   spec["whatsapp"]["waba_id"])  # fmt: skip
    healthy = await new_burst(bridge, media=False)

    await asyncio.gather(
        post_burst(bridge, broken, conversations=5, messages=4),
        post_burst(bridge, healthy, conversations=10, messages=10),
    )
    healthy_result = await settle(bridge, healthy, baseline)

    async def letters() -> list[DeadLetter] | None:
        found = (await bridge.runtime.broker.dead_letters(limit=100_000))[baseline.dead_letters :]
        return found if len(found) >= broken.expected() else None

    dead = await eventually(letters, within=60, every=0.5)
    print(
        f"[burst] permanent 404: sent={broken.expected()} dead_lettered={len(dead)} "
        f"(the healthy tenant beside it: delivered={healthy_result.delivered}/{healthy_result.sent})"
    )
    assert healthy_result.lost == healthy_result.duplicates == healthy_result.out_of_order == 0, healthy_result
    assert len(dead) == broken.expected()
    assert {letter.key.split(":")[0] for letter in dead} == {tenant.id}
    assert all("Genesys HTTP 404" in letter.error for letter in dead)
    async with bridge.runtime.database.session() as session:
        errors = list(await session.scalars(select(Message.error).where(Message.tenant_id == tenant.id)))
    assert len(errors) == broken.expected()
    assert all(error and "404" in error for error in errors)  # the tracked messages say why

    # The fix: the integration now exists in Genesys. Replay, oldest first (the first one with the CLI).
    await _register(bridge, spec)
    first, *rest = dead
    replayed = await _xypr(bridge.runtime.settings, "dlq", "replay", first.id)
    assert replayed.returncode == 0, replayed.stderr
    for letter in rest:
        assert await bridge.runtime.broker.replay(letter.id)
    after = Baseline(tokens=0, dead_letters=baseline.dead_letters, started=baseline.started)
    result = await settle(bridge, broken, after, integration_id=spec["genesys"]["integration_id"])

    print(result.line("permanent 404, replayed after the fix", time.monotonic() - baseline.started))
    assert_perfect(result)
