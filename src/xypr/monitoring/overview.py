"""The overview operators glance at: backends, processes, queues, messages per minute, failures, dead letters.

Every figure gets a state, `green`, `amber` or `red`, by the thresholds below (documented in
docs/architecture.md, "Admin dashboard"). Tenant people get the same overview scoped to their tenant:
their messages, failures and dead letters; queues and processes are platform facts, for Xypr admins.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from xypr.auth.principal import Principal
from xypr.backends.db.base import as_utc, utcnow
from xypr.monitoring.processes import BEAT_SECONDS, ProcessRecord, running_processes
from xypr.retry_parking import ParkingStore
from xypr.runtime import Runtime
from xypr.state.models import Message
from xypr.topology import QUEUES

__all__ = [
    "THRESHOLDS",
    "DependencyHealth",
    "Overview",
    "QueueHealth",
    "Throughput",
    "build_overview",
    "dependency_health",
    "throughput",
]

GREEN, AMBER, RED = "green", "amber", "red"

THRESHOLDS: dict[str, tuple[float, float]] = {
    # name: (amber from, red from)
    "queue_depth": (100, 1000),  # messages waiting in one queue
    "oldest_age_seconds": (60, 300),  # the oldest waiting message of one queue
    "dead_letters": (1, 100),  # dead letters waiting for a decision
    "failures_last_hour": (1, 50),  # messages that ended `failed` in the last hour
    "heartbeat_age_seconds": (2 * BEAT_SECONDS, 3 * BEAT_SECONDS),  # since a process last beat
}
WINDOW_MINUTES = 60
DEPENDENCIES = ("database", "broker", "cache", "storage")
_PING_TIMEOUT = 3.0


def rate(name: str, value: float | None) -> str:
    """The state of a figure by its thresholds (an unknown figure is green: nothing is known to be wrong)."""
    if value is None:
        return GREEN
    amber, red = THRESHOLDS[name]
    return RED if value >= red else AMBER if value >= amber else GREEN


@dataclass(frozen=True, slots=True)
class DependencyHealth:
    """One backend: reachable or not (red)."""

    name: str
    ok: bool
    detail: str

    @property
    def state(self) -> str:
        """Red when unreachable."""
        return GREEN if self.ok else RED


@dataclass(frozen=True, slots=True)
class QueueHealth:
    """One queue: messages waiting, and how long the oldest has waited (None: the broker cannot tell)."""

    name: str
    depth: int | None
    oldest_age_seconds: float | None
    note: str = ""
    # Events of conversations held by an outage, parked in the state database (None: it did not answer).
    parked: int | None = None

    @property
    def state(self) -> str:
        """The worse of the depth's and the age's states; red when the broker did not answer."""
        if self.depth is None:
            return RED
        states = {rate("queue_depth", self.depth), rate("oldest_age_seconds", self.oldest_age_seconds)}
        return RED if RED in states else AMBER if AMBER in states else GREEN


@dataclass(frozen=True, slots=True)
class Throughput:
    """Messages per minute over the last hour: minute starts (Unix s) and counts per direction."""

    minutes: list[int]
    inbound: list[int]
    outbound: list[int]

    @property
    def inbound_total(self) -> int:
        """Customer messages in the window."""
        return sum(self.inbound)

    @property
    def outbound_total(self) -> int:
        """Agent messages in the window."""
        return sum(self.outbound)


@dataclass(frozen=True, slots=True)
class Overview:
    """Everything on the overview page, with the time it was measured."""

    generated_at: float
    tenant_id: str | None
    dependencies: list[DependencyHealth]
    processes: list[ProcessRecord]
    queues: list[QueueHealth]
    throughput: Throughput
    failures: list[tuple[str, int]]
    failures_last_hour: int
    dead_letters: int | None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def dead_letter_state(self) -> str:
        """Red when the broker did not answer."""
        return RED if self.dead_letters is None else rate("dead_letters", self.dead_letters)

    @property
    def failure_state(self) -> str:
        """By the failures of the last hour."""
        return rate("failures_last_hour", self.failures_last_hour)

    def process_state(self, process: ProcessRecord) -> str:
        """Amber or red when a process's heartbeat is late."""
        return rate("heartbeat_age_seconds", self.generated_at - process.beat_at)

    @property
    def state(self) -> str:
        """The worst state on the page."""
        states = {d.state for d in self.dependencies} | {q.state for q in self.queues}
        states |= {self.dead_letter_state, self.failure_state} | {self.process_state(p) for p in self.processes}
        return RED if RED in states else AMBER if AMBER in states else GREEN


async def _ping(name: str, check: Any) -> DependencyHealth:
    try:
        ok = await asyncio.wait_for(check(), timeout=_PING_TIMEOUT)
    except TimeoutError:
        return DependencyHealth(name, False, f"no answer within {_PING_TIMEOUT:g} s")
    except Exception as exc:
        return DependencyHealth(name, False, f"error: {type(exc).__name__}")
    return DependencyHealth(name, ok is True, "reachable" if ok is True else "unreachable")


async def dependency_health(runtime: Runtime) -> list[DependencyHealth]:
    """The `/ready` checks, each with its own verdict and a bounded wait."""
    checks = (runtime.database.ping, runtime.broker.ping, runtime.cache.ping, runtime.store.ping)
    return list(await asyncio.gather(*(_ping(name, check) for name, check in zip(DEPENDENCIES, checks, strict=True))))


async def _queue(runtime: Runtime, name: str, parked: dict[str, int] | None) -> QueueHealth:
    waiting = None if parked is None else parked.get(name, 0)
    try:
        depth = await runtime.broker.depth(name)
        age = await runtime.broker.oldest_age(name)
    except Exception as exc:
        return QueueHealth(name, None, None, f"broker did not answer ({type(exc).__name__})", waiting)
    note = "" if age is not None else "age n/a: RabbitMQ reports counts, not ages"
    return QueueHealth(name, depth, age, note, waiting)


async def _parked(runtime: Runtime) -> dict[str, int] | None:
    try:
        return await ParkingStore(runtime.database).counts()
    except Exception:  # the database is down: its tile is red already
        return None


def _minute_of(database_is_sqlite: bool) -> Any:
    """SQL for a stored time's minute as text `YYYY-MM-DD HH:MM` (UTC) on either database."""
    if database_is_sqlite:
        return func.substr(Message.created_at, 1, 16)
    return func.to_char(func.timezone("UTC", Message.created_at), "YYYY-MM-DD HH24:MI")


async def throughput(runtime: Runtime, tenant_id: str | None, *, minutes: int = WINDOW_MINUTES) -> Throughput:
    """Messages tracked per minute and direction over the last `minutes` (the current minute included)."""
    now = utcnow().replace(second=0, microsecond=0)
    start = now - timedelta(minutes=minutes - 1)
    minute = _minute_of(runtime.database.is_sqlite).label("minute")
    query = (
        select(minute, Message.direction, func.count())
        .where(Message.created_at >= start)
        .group_by(minute, Message.direction)
    )
    if tenant_id:
        query = query.where(Message.tenant_id == tenant_id)
    async with runtime.database.session() as session:
        rows = (await session.execute(query)).all()
    counts: dict[tuple[str, str], int] = {(str(m), str(d)): int(n) for m, d, n in rows}
    stamps = [start + timedelta(minutes=i) for i in range(minutes)]
    labels = [stamp.strftime("%Y-%m-%d %H:%M") for stamp in stamps]
    return Throughput(
        minutes=[int(stamp.timestamp()) for stamp in stamps],
        inbound=[counts.get((label, "inbound"), 0) for label in labels],
        outbound=[counts.get((label, "outbound"), 0) for label in labels],
    )


def failure_reason(error: str | None) -> str:
    """The reason of a failure: its text up to the first colon (`MessageExpired: (131047) …`)."""
    text = (error or "unknown").strip()
    head = text.split(":", 1)[0].strip()
    return (head or text)[:80]


async def _failures(runtime: Runtime, tenant_id: str | None) -> tuple[list[tuple[str, int]], int]:
    since_day = datetime.now(UTC) - timedelta(days=1)
    since_hour = time.time() - 3600
    query = select(Message.error, Message.updated_at).where(Message.status == "failed", Message.updated_at >= since_day)
    if tenant_id:
        query = query.where(Message.tenant_id == tenant_id)
    async with runtime.database.session() as session:
        rows = (await session.execute(query.limit(10_000))).all()
    reasons = Counter(failure_reason(error) for error, _ in rows)
    last_hour = sum(1 for _, at in rows if at is not None and as_utc(at).timestamp() >= since_hour)
    return reasons.most_common(10), last_hour


async def _dead_letter_count(runtime: Runtime, tenant_id: str | None) -> int | None:
    try:
        letters = await runtime.broker.dead_letters(limit=1000)
    except Exception:
        return None
    if tenant_id:
        return sum(1 for letter in letters if letter.key.partition(":")[0] == tenant_id)
    return len(letters)


async def build_overview(runtime: Runtime, principal: Principal) -> Overview:
    """The overview as `principal` may see it."""
    tenant_id = None if principal.is_platform_admin else (principal.tenant_id or "-")
    dependencies = await dependency_health(runtime)
    cache_ok = next(d.ok for d in dependencies if d.name == "cache")
    processes: list[ProcessRecord] = []
    if principal.is_platform_admin and cache_ok:
        try:
            processes = await running_processes(runtime.cache)
        except Exception:
            processes = []
    queues: list[QueueHealth] = []
    if principal.is_platform_admin:
        parked = await _parked(runtime)
        queues = [await _queue(runtime, name, parked) for name in QUEUES]
    try:
        failures, last_hour = await _failures(runtime, tenant_id)
        per_minute = await throughput(runtime, tenant_id)
    except Exception:  # the database is down: its tile is red already, the rest of the page still shows
        failures, last_hour, per_minute = [], 0, Throughput([], [], [])
    return Overview(
        generated_at=time.time(),
        tenant_id=tenant_id,
        dependencies=dependencies,
        processes=processes,
        queues=queues,
        throughput=per_minute,
        failures=failures,
        failures_last_hour=last_hour,
        dead_letters=await _dead_letter_count(runtime, tenant_id),
    )
