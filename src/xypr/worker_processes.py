"""`xypr run` on every core: the queue workers in processes of their own beside the one answering HTTP.

One Python process runs on one core. `xypr run` therefore answers HTTP (gateway, webhooks, pages, the
sandbox's emulators) in its own process and starts `xypr worker all --index I --of N` children for the
queues. They share what the embedded mode keeps on disk: the SQLite database, the SQLite queue (one
delivery in flight per conversation across processes), the file cache (dedupe marks, rate windows,
tokens) and the media folder.

The children are this process's: they start once the database is migrated (a start-up hook), a child
that dies is started again (after 1 s, doubling to 30 s while it keeps dying at once), and they are
stopped with SIGTERM, then SIGKILL after the grace, when this process stops. Each serves its own `/health`,
`/ready` and `/metrics` on 127.0.0.1 at a port chosen once (the banner of `xypr run` shows it; the parent's `/ready` and
`/metrics` include them). They run in a session of
their own, so a terminal's Ctrl+C reaches this process only and the stop stays in order; a child whose
parent died without stopping it (SIGKILL) notices within a second and stops itself
(`watch_parent`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Final

from xypr.config import Settings
from xypr.core.logging import get_logger

__all__ = ["WorkerProcesses", "default_worker_processes", "usable_cpus", "watch_parent"]

log = get_logger(__name__)

_FIRST_BACKOFF: Final = 1.0
_MAX_BACKOFF: Final = 30.0
# A child that ran this long before dying is restarted after the first backoff again.
_STEADY_SECONDS: Final = 60.0
# A child that died sooner than this may not have got its port: the next start gets a new one.
_START_SECONDS: Final = 10.0
# After SIGTERM a child gets the shutdown grace plus this long before SIGKILL.
_KILL_MARGIN_SECONDS: Final = 10.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def usable_cpus(cgroup: Path = Path("/sys/fs/cgroup")) -> float:
    """The cores this process may use: the ones it may run on, capped by a container's CPU quota.

    `os.cpu_count()` counts the machine's cores; a container limited to one core (cgroup v2 `cpu.max`,
    or v1 `cpu.cfs_quota_us` over `cpu.cfs_period_us`) or pinned to some cores gets fewer.
    """
    cores = float(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    quota: str | None = None
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = (cgroup / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (cgroup / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            quota = None
    if quota is None or quota in ("max", "-1"):
        return cores
    try:
        limit = int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return cores
    return min(cores, limit) if limit > 0 else cores


def default_worker_processes(settings: Settings, cpus: float | None = None) -> int:
    """`XYPR_RUN_WORKER_PROCESSES`, else one worker process where two cores or more are usable."""
    if settings.run_worker_processes is not None:
        return settings.run_worker_processes
    return 1 if (usable_cpus() if cpus is None else cpus) >= 2 else 0


class WorkerProcesses:
    """Starts, restarts and stops the `xypr worker all` children of one `xypr run`."""

    def __init__(self, settings: Settings, count: int) -> None:
        self._settings = settings
        self._count = count
        # Each child's /health, /ready and /metrics: a port picked now and kept across its restarts.
        self.ports = [_free_port() for _ in range(count)]
        # Their base URLs, kept up to date when a port has to change (`/ready` of the parent reads this list).
        self.urls = [f"http://127.0.0.1:{port}" for port in self.ports]
        self._children: dict[int, asyncio.subprocess.Process] = {}
        self._keepers: list[asyncio.Task[None]] = []
        self._stopping = False

    def _command(self, index: int) -> list[str]:
        return [
            sys.executable, "-m", "xypr.cli", "worker", "all", "--index", str(index), "--of", str(self._count),
            "--host", "127.0.0.1", "--port", str(self.ports[index]), "--parent-pid", str(os.getpid()),
        ]  # fmt: skip

    async def start(self) -> None:
        """Start every child and keep each running until `stop()`."""
        self._keepers = [asyncio.create_task(self._keep(index)) for index in range(self._count)]

    async def _keep(self, index: int) -> None:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("XYPR_")}
        environment |= self._settings.as_environment()
        backoff = _FIRST_BACKOFF
        while not self._stopping:
            started = time.monotonic()
            child = await asyncio.create_subprocess_exec(*self._command(index), env=environment, start_new_session=True)
            self._children[index] = child
            log.info("run.worker_process_started", index=index, pid=child.pid)
            code = await child.wait()
            if self._stopping:
                return
            ran = time.monotonic() - started
            backoff = _FIRST_BACKOFF if ran >= _STEADY_SECONDS else backoff
            if ran < _START_SECONDS:  # died starting: perhaps its port was taken meanwhile, take another
                self.ports[index] = _free_port()
                self.urls[index] = f"http://127.0.0.1:{self.ports[index]}"
            log.error("run.worker_process_exited", index=index, pid=child.pid, code=code, restart_in=backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)

    @property
    def pids(self) -> list[int]:
        """The children running now."""
        return [child.pid for child in self._children.values() if child.returncode is None]

    async def stop(self) -> None:
        """SIGTERM every child, SIGKILL what is left after the grace."""
        self._stopping = True
        for keeper in self._keepers:  # no restart from here on
            keeper.cancel()
        await asyncio.gather(*self._keepers, return_exceptions=True)
        running = [child for child in self._children.values() if child.returncode is None]
        for child in running:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
        within = self._settings.shutdown_grace_seconds + _KILL_MARGIN_SECONDS
        # One deadline for all of them: they stop at the same time.
        await asyncio.gather(*(self._stopped_within(child, within) for child in running))

    @staticmethod
    async def _stopped_within(child: asyncio.subprocess.Process, within: float) -> None:
        try:
            await asyncio.wait_for(child.wait(), within)
        except TimeoutError:
            log.warning("run.worker_process_killed", pid=child.pid, after_seconds=within)
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await child.wait()


async def watch_parent(parent_pid: int, *, every: float = 1.0) -> None:
    """Stop this process (SIGTERM to itself, the graceful way) once `parent_pid` is no longer its parent."""
    while True:  # no event tells a process its parent died (short of Linux's prctl): look every second
        if os.getppid() != parent_pid:
            break
        await asyncio.sleep(every)
    log.warning("run.parent_gone", parent=parent_pid)
    os.kill(os.getpid(), signal.SIGTERM)
