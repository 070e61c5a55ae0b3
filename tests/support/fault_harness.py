"""The fault suite's harness: a scaled-out deployment, senders that behave like Meta and Genesys, a ledger.

- `Deployment`: `xypr serve api-gateway` and two `xypr worker all --index I --of 2` processes, each in
  its own process group, on the private services (`tests.support.fault_services`), talking to the
  emulators of `tests.support.fault_upstreams` (also a process of its own).
- Senders: Meta redelivers a webhook that got no 2xx, with backoff, for as long as it takes (here:
  up to `META_HORIZON` seconds); Genesys retries timeouts, connection failures, 429 and 5xx 5 times
  within ~85 s, then gives up. One conversation's next message leaves once the previous one was
  acknowledged or given up, so the expected order of a conversation is the order of its numbers.
- `Ledger`: every message carries `<run>-<conversation>-<direction>-<seq>` in its text; what the
  emulated Genesys and Meta accepted (2xx) is compared with what the bridge acknowledged (200).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import aio_pika.exceptions
import asyncpg
import httpx

from tests.support.fault_services import PrivateServices, free_port
from xypr.core.secretbox import generate_master_key
from xypr.sandbox.genesys import webhooks as genesys_webhooks
from xypr.sandbox.meta import webhooks as meta_webhooks

__all__ = [
    "GENESYS_RETRY_DELAYS",
    "META_HORIZON",
    "Deployment",
    "Fault",
    "Ledger",
    "Traffic",
    "Upstreams",
    "run_scenario",
]

REPO = Path(__file__).resolve().parents[2]
GENESYS_RETRY_DELAYS = (1.0, 4.0, 10.0, 25.0, 45.0)
"""Genesys' outbound webhook retries: 5 more tries within ~85 s (timeouts, connection errors, 429, 5xx)."""
META_HORIZON = 150.0
"""Meta retries for days; within a test, a webhook is retried for this many seconds at most."""
_KEY = re.compile(r"\b(F[0-9a-f]{6})-c(\d+)-(in|out)-m(\d+)\b")


def _tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return ""


@dataclass
class Upstreams:
    """The emulators' process (`python -m tests.support.fault_upstreams`)."""

    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL; `/meta` and `/genesys` below it."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the process and wait until it answers (bounded)."""
        log = self.root / "upstreams.log"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with log.open("ab") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.support.fault_upstreams", "--port", str(self.port)],
                stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=REPO,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"emulators exited with {self.process.returncode}:\n{_tail(log)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/_faults/health", timeout=2).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"emulators not up within 60 s:\n{_tail(log)}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop the process group (SIGTERM, then SIGKILL)."""
        _stop_group(self.process)


def _stop_group(process: subprocess.Popen[bytes] | None, *, grace: float = 10.0) -> None:
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _tenant() -> dict[str, Any]:
    digits = str(uuid.uuid4().int % 10**12).zfill(12)
    tag = secrets.token_hex(4)
    return {
        "name": f"Faults {tag}",
        "genesys": {
            "region": "usw2.pure.cloud",
            "client_id": f"fault-client-{tag}",
            "client_secret": secrets.token_urlsafe(18),
            "integration_id": str(uuid.uuid4()),
            "webhook_secret": secrets.token_urlsafe(24),
            "org_id": f"fault-org-{tag}",
        },
        "whatsapp": {
            "waba_id": "4" + digits,
            "phone_number_id": "5" + digits,
            "display_phone_number": "+1 555 0199",
            "access_token": "EAAG-fault-" + secrets.token_urlsafe(18),
            "app_secret": secrets.token_hex(16),
            "verify_token": secrets.token_urlsafe(12),
        },
    }


@dataclass
class Deployment:
    """The bridge scaled out: one gateway and two worker processes sharing the partitions."""

    services: PrivateServices
    upstreams: Upstreams
    root: Path
    workers: int = 2
    tenant: dict[str, Any] = field(default_factory=_tenant)
    gateway_port: int = field(default_factory=free_port)
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    starts: dict[str, int] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    database: str = field(default_factory=lambda: f"xypr_fault_{secrets.token_hex(6)}")

    @property
    def gateway(self) -> str:
        """The gateway's base URL (the same across restarts: the senders keep using it)."""
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def roles(self) -> list[str]:
        """Every process role: `gateway`, `worker-0`, `worker-1`."""
        return ["gateway", *(f"worker-{i}" for i in range(self.workers))]

    def prepare(self) -> None:
        """Database, environment, schema and tenant; the emulators learn the number and integration."""
        asyncio.run(self._create_database())
        namespace = f"fault-{secrets.token_hex(4)}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("XYPR_")}
        # Bytecode cached for the run (filled by `tenant create` below): with PYTHONDONTWRITEBYTECODE,
        # as set on the development machine, every process start compiled every module again, which
        # took most of a restart's time under load (a deployed image ships compiled bytecode).
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env.update({
            "PYTHONPYCACHEPREFIX": str(self.root / "pycache"),
            "PYTHONPATH": str(REPO),
            "XYPR_DATABASE_URL": self.services.database_url(self.database),
            "XYPR_AMQP_URL": self.services.amqp_url,
            "XYPR_REDIS_URL": self.services.redis_url,
            "XYPR_NAMESPACE": namespace,
            "XYPR_MASTER_KEY": generate_master_key(),
            "XYPR_DATA_DIR": str(self.root / "data"),
            "XYPR_PUBLIC_URL": self.gateway,
            "XYPR_META_GRAPH_URL": f"{self.upstreams.url}/meta",
            "XYPR_GENESYS_API_URL": f"{self.upstreams.url}/genesys",
            "XYPR_GENESYS_LOGIN_URL": f"{self.upstreams.url}/genesys",
            # XYPR_FAULT_LOG_LEVEL=INFO (with XYPR_FAULT_KEEP_LOGS=1) keeps every retry, parking and drain.
            "XYPR_LOG_LEVEL": os.environ.get("XYPR_FAULT_LOG_LEVEL", "WARNING"),
            "XYPR_DATABASE_POOL_SIZE": "5",
            # Every webhook comes from 127.0.0.1 here; Meta's and Genesys' come from many addresses.
            "XYPR_RATE_LIMIT_WEBHOOKS_PER_IP": "1000000",
            # SIGTERM (the rolling restart, teardown): sends in flight finish within 5 s, not the default 20.
            "XYPR_SHUTDOWN_GRACE_SECONDS": "5",
            # The 15 s upstream outages park their conversations (default 20 s would keep them in place),
            # so parking, joining and draining run under the faults too, across both workers.
            "XYPR_PARK_AFTER_SECONDS": "3",
        })  # fmt: skip
        tenant_file = self.root / "tenant.json"
        tenant_file.write_text(json.dumps(self.tenant))
        self._run(["tenant", "create", "--file", str(tenant_file)], "tenant-create")
        asyncio.run(self._register())

    async def _create_database(self) -> None:
        admin = await asyncpg.connect(self.services.postgres_admin, timeout=10)
        try:
            await admin.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            await admin.close()

    async def _register(self) -> None:
        from xypr.sandbox.demo import register_with_emulators

        async with (
            httpx.AsyncClient(base_url=f"{self.upstreams.url}/meta", timeout=30) as meta,
            httpx.AsyncClient(base_url=f"{self.upstreams.url}/genesys", timeout=30) as genesys,
        ):
            await register_with_emulators(meta, genesys, self.tenant, public_url=self.gateway)

    def _run(self, args: list[str], role: str) -> None:
        log = self.root / f"{role}.log"
        with log.open("ab") as sink:
            done = subprocess.run(
                [sys.executable, "-m", "xypr.cli", *args], env=self.env, cwd=self.root, stdout=sink,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=180, check=False,
            )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"xypr {' '.join(args)} failed ({done.returncode}):\n{_tail(log)}")

    def argv(self, role: str) -> list[str]:
        """The command line of a role."""
        port = self.ports.setdefault(role, self.gateway_port if role == "gateway" else free_port())
        if role == "gateway":
            return [sys.executable, "-m", "xypr.cli", "serve", "api-gateway", "--port", str(port)]
        index = role.split("-", 1)[1]
        return [sys.executable, "-m", "xypr.cli", "worker", "all", "--index", index, "--of", str(self.workers),
                "--port", str(port)]  # fmt: skip

    def start(self, role: str) -> None:
        """Start one role's process (its own process group; output appended to its log)."""
        self.starts[role] = self.starts.get(role, 0) + 1
        log = self.root / f"{role}.log"
        with log.open("ab") as sink:
            sink.write(f"\n--- start #{self.starts[role]} at {time.time():.3f}\n".encode())
            sink.flush()
            self.processes[role] = subprocess.Popen(
                self.argv(role), env=self.env, cwd=self.root, stdout=sink, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip

    def start_all(self) -> None:
        """Start every role and wait until all are ready."""
        for role in self.roles:
            self.start(role)
        self.wait_ready(self.roles, within=120)

    def heal(self) -> None:
        """Restart any process that is gone, clear the upstream fault windows, wait until all are ready."""
        for role in self.roles:
            process = self.processes.get(role)
            if process is None or process.poll() is not None:
                self.start(role)
        for target in ("genesys", "meta"):
            httpx.post(f"{self.upstreams.url}/_faults/upstream", json={"target": target, "phases": []}, timeout=10)
        httpx.post(f"{self.upstreams.url}/_faults/latency", json={"seconds": 0}, timeout=10).raise_for_status()
        self.wait_ready(self.roles, within=120)

    def kill(self, role: str) -> None:
        """SIGKILL a role's process group: a crash, nothing settled."""
        process = self.processes[role]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self, role: str, *, within: float) -> tuple[float, int]:
        """SIGTERM a role's process group, as Kubernetes stops a pod, and wait until it exited.

        Returns the seconds it took and the exit code; a process still running after `within` seconds
        is SIGKILLed and the stop fails (a graceful stop must end by itself).
        """
        process = self.processes[role]
        started = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            code = process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
            raise RuntimeError(f"{role} still running {within:.0f} s after SIGTERM:\n{self.log(role)}") from None
        return time.monotonic() - started, code

    def restart(self, roles: list[str], *, within: float = 90) -> None:
        """Stop `roles` gracefully (SIGTERM), start them again, wait until they are ready."""
        grace = float(self.env["XYPR_SHUTDOWN_GRACE_SECONDS"])
        for role in roles:
            self.stop(role, within=grace + 15)
        for role in roles:
            self.start(role)
        self.wait_ready(roles, within=within)

    def ready(self, role: str) -> tuple[bool, str]:
        """Whether a role answers 200 on `/ready` (and what it said)."""
        process = self.processes.get(role)
        if process is None or process.poll() is not None:
            return False, f"process exited ({None if process is None else process.returncode})"
        try:
            answer = httpx.get(f"http://127.0.0.1:{self.ports[role]}/ready", timeout=5)
        except httpx.HTTPError as exc:
            return False, f"{type(exc).__name__}"
        return answer.status_code == 200, f"{answer.status_code} {answer.text[:200]}"

    def wait_ready(self, roles: list[str], *, within: float) -> None:
        """Wait until every role answers 200 on `/ready`; raise with the log tail otherwise."""
        deadline = time.monotonic() + within
        pending = list(roles)
        while pending:
            for role in list(pending):
                process = self.processes[role]
                if process.poll() is not None:
                    raise RuntimeError(f"{role} exited with {process.returncode}:\n{self.log(role)}")
                if self.ready(role)[0]:
                    pending.remove(role)
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"not ready within {within:.0f} s: {pending}\n{self.log(pending[0])}")
            if pending:
                time.sleep(0.25)

    def log(self, role: str) -> str:
        """The end of a role's log."""
        return _tail(self.root / f"{role}.log")

    async def dead_letters(self) -> int:
        """How many dead letters the namespace holds (the dead-letter queue's length, -1 if unknown).

        Read with a passive declaration rather than `xypr dlq list`: a process start per count cost
        seconds per scenario and nothing else; nothing consumes that queue.
        """
        from xypr.backends.broker.rabbitmq import RabbitBroker

        name = RabbitBroker(self.services.amqp_url, namespace=self.env["XYPR_NAMESPACE"], partitions=1).dead_letter_name
        try:
            connection = await aio_pika.connect(self.services.amqp_url, timeout=10)
            async with connection:
                channel = await connection.channel()
                queue = await channel.declare_queue(name, passive=True)
                return int(queue.declaration_result.message_count or 0)
        except (TimeoutError, aio_pika.exceptions.AMQPError, OSError):
            return -1

    def stop_all(self) -> None:
        """Stop every role (SIGTERM to the group, SIGKILL after a grace period)."""
        for process in self.processes.values():
            _stop_group(process, grace=10)

    def drop_database(self) -> None:
        """Remove the scenario's database (best effort)."""

        async def drop() -> None:
            admin = await asyncpg.connect(self.services.postgres_admin, timeout=10)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            finally:
                await admin.close()

        with contextlib.suppress(Exception):
            asyncio.run(drop())


@dataclass(slots=True)
class Message:
    """One message of the ledger: who sent it, when, and whether the bridge acknowledged it."""

    key: str
    conversation: int
    direction: str  # in: customer → agent; out: agent → customer
    seq: int
    first_try: float = 0.0
    acked_at: float | None = None
    attempts: int = 0
    last_status: int | None = None


@dataclass
class Ledger:
    """What was sent, acknowledged and delivered, per conversation and direction."""

    run: str = field(default_factory=lambda: "F" + secrets.token_hex(3))
    messages: dict[str, Message] = field(default_factory=dict)
    deliveries: list[tuple[float, str, str]] = field(default_factory=list)  # (wall time, target, key)
    after: int = 0

    def new(self, conversation: int, direction: str, seq: int) -> Message:
        """Register a message about to be sent."""
        key = f"{self.run}-c{conversation}-{direction}-m{seq}"
        message = Message(key, conversation, direction, seq)
        self.messages[key] = message
        return message

    async def collect(self, client: httpx.AsyncClient, upstreams: str) -> None:
        """Read new deliveries from the emulators (only this run's keys)."""
        answer = await client.get(f"{upstreams}/_faults/deliveries", params={"after": self.after}, timeout=10)
        answer.raise_for_status()
        rows = answer.json()["rows"]
        self.after += len(rows)
        for _order, at, target, text in rows:
            match = _KEY.search(text)
            if match and match.group(1) == self.run:
                self.deliveries.append((at, target, match.group(0)))

    def delivered_keys(self) -> set[str]:
        """Keys delivered at least once."""
        return {key for _, _, key in self.deliveries}

    def acked(self) -> list[Message]:
        """Messages the bridge acknowledged (200)."""
        return [m for m in self.messages.values() if m.acked_at is not None]


def measure(ledger: Ledger, *, scenario: str, fault: str, restored_at: float) -> dict[str, Any]:
    """Count acknowledged, delivered, lost, duplicated and reordered messages, and the recovery time."""
    counts: dict[str, int] = {}
    first_at: dict[str, float] = {}
    for at, _target, key in ledger.deliveries:
        counts[key] = counts.get(key, 0) + 1
        first_at.setdefault(key, at)
    acked = ledger.acked()
    lost = sorted(m.key for m in acked if m.key not in counts)
    duplicated = sorted(key for key, n in counts.items() if n > 1)
    # Reordered: a message delivered (first time) after a later message of its conversation and direction.
    reordered: list[str] = []
    highest: dict[tuple[int, str], int] = {}
    seen: set[str] = set()
    for _at, _target, key in ledger.deliveries:
        if key in seen or key not in ledger.messages:
            continue
        seen.add(key)
        message = ledger.messages[key]
        lane = (message.conversation, message.direction)
        if message.seq < highest.get(lane, -1):
            reordered.append(key)
        highest[lane] = max(highest.get(lane, -1), message.seq)
    # Recovery: from the end of the fault until every message first offered before then had arrived
    # (the backlog the fault held back, including what the senders were still retrying).
    backlog = [first_at[m.key] for m in ledger.messages.values() if m.first_try <= restored_at and m.key in first_at]
    recovery = max([0.0, *(at - restored_at for at in backlog)])
    # Latency as the customer or agent sees it: from the sender's first try to the delivery.
    latencies = [first_at[m.key] - m.first_try for m in ledger.messages.values() if m.key in first_at]
    return {
        "scenario": scenario,
        "fault": fault,
        "sent": len(ledger.messages),
        "acknowledged": len(acked),
        "never_acknowledged": len(ledger.messages) - len(acked),
        "delivered": len(counts),
        "lost": len(lost),
        "duplicated": len(duplicated),
        "reordered": len(reordered),
        "recovery_seconds": round(recovery, 2),
        "max_latency_seconds": round(max([0.0, *latencies]), 2),
        "lost_keys": lost[:20],
        "duplicated_keys": duplicated[:20],
        "reordered_keys": reordered[:20],
    }


@dataclass
class Traffic:
    """How much traffic a scenario sends: conversations x directions, paced, across the whole fault.

    Every lane keeps writing until `tail` seconds after the fault was restored (so messages arrive
    before, during and after it, whatever the fault takes), at most `max_messages` each.
    """

    conversations: int = 8
    interval: float = 1.0  # seconds between one conversation's messages (after the previous ack)
    fault_after: float = 2.0  # seconds into the stream
    tail: float = 3.0  # seconds of traffic after the fault was restored
    max_messages: int = 60  # per conversation and direction: the bound when a fault never ends


class Senders:
    """Meta-like and Genesys-like webhook senders writing into a ledger."""

    def __init__(self, deployment: Deployment, ledger: Ledger, client: httpx.AsyncClient) -> None:
        self.deployment = deployment
        self.ledger = ledger
        self.client = client
        wa = deployment.tenant["whatsapp"]
        self.number = meta_webhooks.NumberMetadata(wa["waba_id"], wa["phone_number_id"], wa["display_phone_number"])
        self.app_secret = wa["app_secret"]
        gc = deployment.tenant["genesys"]
        self.integration_id, self.webhook_secret = gc["integration_id"], gc["webhook_secret"]
        self.customers = [f"1555{random.randrange(10**6, 10**7)}{i:02d}" for i in range(64)]

    async def _post(self, path: str, raw: bytes, headers: dict[str, str]) -> int | None:
        try:
            answer = await self.client.post(f"{self.deployment.gateway}{path}", content=raw, headers=headers)
        except httpx.HTTPError:
            return None
        return answer.status_code

    async def customer_writes(self, message: Message) -> None:
        """Meta: redeliver on anything but 2xx, with backoff (0.5 s doubling to 8 s), until the horizon."""
        wa_id = self.customers[message.conversation]
        payload = meta_webhooks.inbound_message(
            self.number, meta_webhooks.Customer(name=f"Customer {message.conversation}", wa_id=wa_id),
            wamid=meta_webhooks.new_wamid(wa_id), timestamp=int(time.time()), message_type="text",
            content={"body": f"Hello, {message.key}"},
        )  # fmt: skip
        raw = meta_webhooks.encode_body(payload)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "facebookexternalua",
            "X-Hub-Signature": meta_webhooks.sign_sha1(self.app_secret, raw),
            "X-Hub-Signature-256": meta_webhooks.sign(self.app_secret, raw),
        }
        message.first_try = time.time()
        delay = 0.5
        while True:
            message.attempts += 1
            message.last_status = await self._post("/webhook/whatsapp", raw, headers)
            if message.last_status is not None and 200 <= message.last_status < 300:
                message.acked_at = time.time()
                return
            if time.time() - message.first_try > META_HORIZON:
                return
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(8.0, delay * 2)

    async def agent_writes(self, message: Message) -> None:
        """Genesys: retry connection failures, timeouts, 429 and 5xx 5 times within ~85 s, then give up."""
        wa_id = self.customers[message.conversation]
        payload = genesys_webhooks.outbound_message(
            integration_id=self.integration_id, nickname="Agent", to_id=wa_id, to_id_type="Phone",
            message_type="Text", text=f"Agent here, {message.key}", content=[],
        )  # fmt: skip
        raw = genesys_webhooks.encode_body(payload)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Genesys-Open-Messaging",
            "X-Hub-Signature-256": genesys_webhooks.sign(self.webhook_secret, raw),
        }
        message.first_try = time.time()
        for delay in (*GENESYS_RETRY_DELAYS, None):
            message.attempts += 1
            status = message.last_status = await self._post("/webhook/genesys", raw, headers)
            if status is not None and 200 <= status < 300:
                message.acked_at = time.time()
                return
            if delay is None or not (status is None or status == 429 or status >= 500):
                return
            await asyncio.sleep(delay)

    async def open_window(self, conversation: int) -> None:
        """The emulated Meta learns the customer wrote (their 24 h window opens there too)."""
        answer = await self.client.post(
            f"{self.deployment.upstreams.url}/_faults/window",
            json={"phone_number_id": self.number.phone_number_id, "wa_id": self.customers[conversation]},
        )
        answer.raise_for_status()


async def _wait_delivered(ledger: Ledger, client: httpx.AsyncClient, upstreams: str, keys: set[str], *,
                          within: float, idle: float) -> None:  # fmt: skip
    """Collect deliveries until `keys` all arrived, nothing arrived for `idle` s, or `within` s passed."""
    started = last_progress = time.monotonic()
    count = -1
    while True:
        await ledger.collect(client, upstreams)
        delivered = ledger.delivered_keys()
        if keys <= delivered:
            return
        if len(delivered) != count:
            count, last_progress = len(delivered), time.monotonic()
        now = time.monotonic()
        if now - last_progress > idle or now - started > within:
            return
        await asyncio.sleep(0.25)


Fault = Callable[[Deployment], Awaitable[str]]
"""Injects a fault and restores the system; returns a description. Runs in the event loop."""


async def run_scenario(
    deployment: Deployment, traffic: Traffic, fault: Fault, *, scenario: str, drain_within: float = 120.0
) -> dict[str, Any]:
    """Warm up, stream both directions, inject `fault` mid-stream, drain, measure, check health."""
    ledger = Ledger()
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=0)  # a fresh connection per try
    async with httpx.AsyncClient(timeout=10.0, limits=limits) as client:
        senders = Senders(deployment, ledger, client)
        # Warm-up: each customer writes first (conversation, mapping and 24 h window exist before the fault).
        warm = [ledger.new(c, "in", 0) for c in range(traffic.conversations)]
        await asyncio.gather(*(senders.customer_writes(m) for m in warm))
        await asyncio.gather(*(senders.open_window(c) for c in range(traffic.conversations)))
        await _wait_delivered(ledger, client, deployment.upstreams.url, {m.key for m in warm}, within=60, idle=30)
        missing = {m.key for m in warm} - ledger.delivered_keys()
        if missing:
            raise RuntimeError(f"warm-up messages not delivered before the fault: {sorted(missing)}")

        start = time.monotonic()
        restored: dict[str, float] = {}

        lanes_total = traffic.conversations * 2

        async def lane(conversation: int, direction: str) -> None:
            # Lanes are spread over the interval: a steady stream rather than bursts of 16.
            offset = (conversation * 2 + (direction == "out")) / lanes_total * traffic.interval
            for seq in range(1, traffic.max_messages + 1):
                due = start + offset + (seq - 1) * traffic.interval
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if "restored_at" in restored and time.time() > restored["restored_at"] + traffic.tail:
                    return
                message = ledger.new(conversation, direction, seq)
                if direction == "in":
                    await senders.customer_writes(message)
                else:
                    await senders.agent_writes(message)

        async def inject() -> str:
            await asyncio.sleep(traffic.fault_after)
            restored["fault_at"] = time.time()
            description = await fault(deployment)
            restored["restored_at"] = time.time()
            return description

        lanes = [lane(c, d) for c in range(traffic.conversations) for d in ("in", "out")]
        description, *_ = await asyncio.gather(inject(), *lanes)
        acked = {m.key for m in ledger.acked()}
        await _wait_delivered(ledger, client, deployment.upstreams.url, acked, within=drain_within, idle=30)
        await asyncio.sleep(2.0)  # a duplicate right behind the last delivery still counts
        await ledger.collect(client, deployment.upstreams.url)
    result = measure(ledger, scenario=scenario, fault=description, restored_at=restored["restored_at"])
    result["fault_seconds"] = round(restored["restored_at"] - restored["fault_at"], 2)
    return result
