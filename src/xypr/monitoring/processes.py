"""The process roster: every Xypr process announces itself in the shared cache every few seconds.

Each process writes its record under its own key with a TTL (a process that dies disappears within
`PROCESS_TTL_SECONDS`) and keeps its id in one roster key. The cache interface has no sets or key scans,
so the roster is a read-modify-write list: two processes writing at once may drop one id, which that
process puts back at its next beat (a few seconds), and readers prune ids whose record has expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass

import orjson

from xypr import __version__
from xypr.backends.cache.base import Cache
from xypr.core.logging import get_logger

__all__ = [
    "BEAT_SECONDS",
    "PROCESS_TTL_SECONDS",
    "ProcessRecord",
    "beat",
    "keep_beating",
    "new_process_record",
    "running_processes",
    "stop_beating",
]

log = get_logger(__name__)

BEAT_SECONDS = 5.0
PROCESS_TTL_SECONDS = 20.0
_ROSTER = "ops:processes"
_ROSTER_TTL = 24 * 3600.0


def _key(process_id: str) -> str:
    return f"ops:process:{process_id}"


@dataclass(frozen=True, slots=True)
class ProcessRecord:
    """One running process: what it runs, where, which version, since when, and its last beat."""

    id: str
    name: str
    kind: str  # "gateway" (HTTP, maybe workers too), "http" (one service) or "worker"
    index: int
    count: int
    pid: int
    host: str
    version: str
    started_at: float
    beat_at: float

    @property
    def uptime_seconds(self) -> float:
        """Seconds since the process started, as of its last beat."""
        return max(0.0, self.beat_at - self.started_at)


def new_process_record(*, name: str, kind: str, index: int = 0, count: int = 1) -> ProcessRecord:
    """The record of this process (a fresh id per start)."""
    now = time.time()
    return ProcessRecord(
        id=uuid.uuid4().hex[:12], name=name, kind=kind, index=index, count=count, pid=os.getpid(),
        host=socket.gethostname(), version=__version__, started_at=now, beat_at=now,
    )  # fmt: skip


async def beat(cache: Cache, record: ProcessRecord) -> None:
    """Write this process's record (with a fresh `beat_at`) and make sure the roster lists it."""
    fresh = ProcessRecord(**{**asdict(record), "beat_at": time.time()})
    await cache.set(_key(record.id), orjson.dumps(asdict(fresh)), ttl=PROCESS_TTL_SECONDS)
    roster = await _roster(cache)
    if record.id not in roster:
        await cache.set(_ROSTER, orjson.dumps([*roster, record.id]), ttl=_ROSTER_TTL)


async def _roster(cache: Cache) -> list[str]:
    raw = await cache.get(_ROSTER)
    if not raw:
        return []
    try:
        ids = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return []
    return [str(each) for each in ids] if isinstance(ids, list) else []


async def running_processes(cache: Cache) -> list[ProcessRecord]:
    """Every process that beat within the TTL, by name then index; expired ids leave the roster."""
    roster = await _roster(cache)
    found: list[ProcessRecord] = []
    gone: list[str] = []
    for process_id in roster:
        raw = await cache.get(_key(process_id))
        if raw is None:
            gone.append(process_id)
            continue
        try:
            found.append(ProcessRecord(**orjson.loads(raw)))
        except (orjson.JSONDecodeError, TypeError):
            gone.append(process_id)
    if gone:
        await cache.set(_ROSTER, orjson.dumps([p for p in roster if p not in gone]), ttl=_ROSTER_TTL)
    return sorted(found, key=lambda p: (p.name, p.index, p.started_at))


async def keep_beating(cache: Cache, record: ProcessRecord, *, every: float = BEAT_SECONDS) -> None:
    """Beat until cancelled; a cache outage is logged once per failure streak and never stops the process."""
    failing = False
    while True:
        try:
            await beat(cache, record)
            failing = False
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not failing:
                log.warning("ops.heartbeat_failed", error_type=type(exc).__name__)
            failing = True
        await asyncio.sleep(every)


async def stop_beating(cache: Cache, record: ProcessRecord, task: asyncio.Task[None]) -> None:
    """Cancel the beat and remove the record at once (a clean stop should not linger as 'running')."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    with contextlib.suppress(Exception):
        await cache.delete(_key(record.id))
