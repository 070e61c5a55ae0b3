"""The bench's own processes: start, wait until they answer, account their CPU, stop them by pid.

Only processes started here are ever signalled, each by its own pid. CPU use of the shared local
services (PostgreSQL, RabbitMQ, Redis) is read from `/proc` without touching them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = ["CpuSample", "Started", "Supervisor", "cpu_share", "free_port", "machine_cpu", "sample", "service_pids"]

_TICKS = os.sysconf("SC_CLK_TCK")

# Shared services, by the command name `/proc/<pid>/comm` shows.
SERVICE_COMMANDS: Mapping[str, tuple[str, ...]] = {
    "postgres": ("postgres",),
    "rabbitmq": ("beam.smp", "erl_child_setup", "inet_gethost"),
    "redis": ("redis-server",),
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (None once it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in first[:8]]
    idle = values[3] + values[4]
    total = sum(values)
    return (total - idle) / _TICKS, total / _TICKS


def service_pids() -> dict[str, list[int]]:
    """Pids of the shared services by name (read-only look at `/proc`)."""
    found: dict[str, list[int]] = {name: [] for name in SERVICE_COMMANDS}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "comm").read_text().strip()
        except OSError:
            continue
        for name, commands in SERVICE_COMMANDS.items():
            if command in commands:
                found[name].append(int(entry.name))
    return found


@dataclass(slots=True)
class Started:
    """A process started by the supervisor, with its role and where its output goes."""

    role: str
    process: subprocess.Popen[bytes]
    log: Path
    health_url: str | None = None

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid


@dataclass(slots=True)
class CpuSample:
    """CPU counters of every known process and of the machine at one moment."""

    at: float
    by_pid: dict[int, tuple[str, float]]
    machine_busy: float
    machine_total: float

    def as_json(self) -> dict[str, object]:
        """A JSON-friendly form (the load generator hands its samples over this way)."""
        return {"at": self.at, "by_pid": {str(pid): list(v) for pid, v in self.by_pid.items()},
                "machine_busy": self.machine_busy, "machine_total": self.machine_total}  # fmt: skip

    @classmethod
    def from_json(cls, raw: dict[str, object]) -> CpuSample:
        """The inverse of `as_json`."""
        by_pid = {int(pid): (str(v[0]), float(v[1])) for pid, v in raw["by_pid"].items()}  # type: ignore[attr-defined]
        return cls(float(raw["at"]), by_pid, float(raw["machine_busy"]), float(raw["machine_total"]))  # type: ignore[arg-type]


@dataclass
class Supervisor:
    """Starts processes, waits for them, samples their CPU and stops them again (all bounded in time)."""

    workdir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    started: list[Started] = field(default_factory=list)
    count: int = 0

    def start(
        self,
        role: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        health_url: str | None = None,
        cwd: Path | None = None,
    ) -> Started:
        """Start `argv` with its output in `workdir/<role>-<n>.log`."""
        self.count += 1
        log = self.workdir / f"{self.count:03d}-{role}.log"
        merged = {**os.environ, **self.env, **(env or {})}
        with log.open("wb") as sink:
            process = subprocess.Popen(
                list(argv), stdout=sink, stderr=subprocess.STDOUT, env=merged, cwd=cwd, stdin=subprocess.DEVNULL
            )
        item = Started(role, process, log, health_url)
        self.started.append(item)
        return item

    def wait_healthy(self, items: Sequence[Started], *, timeout: float = 60.0) -> None:
        """Wait until every item answers 200 on its health URL; raise with its log tail otherwise."""
        deadline = time.monotonic() + timeout
        pending = [item for item in items if item.health_url]
        with httpx.Client(timeout=2.0) as client:
            while pending:
                for item in list(pending):
                    if item.process.poll() is not None:
                        raise RuntimeError(f"{item.role} exited with {item.process.returncode}:\n{tail(item.log)}")
                    try:
                        if client.get(item.health_url or "").status_code == 200:
                            pending.remove(item)
                    except httpx.HTTPError:
                        pass
                if not pending:
                    return
                if time.monotonic() > deadline:
                    names = ", ".join(item.role for item in pending)
                    raise RuntimeError(f"not healthy within {timeout:.0f} s: {names}\n{tail(pending[0].log)}")
                time.sleep(0.2)

    def run(self, role: str, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None) -> str:
        """Run a command to completion (bounded); return its output, raise when it fails."""
        item = self.start(role, argv, env=env)
        try:
            code = item.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop([item])
            raise RuntimeError(f"{role} did not finish within {timeout:.0f} s\n{tail(item.log)}") from None
        finally:
            if item in self.started and item.process.poll() is not None:
                self.started.remove(item)
        output = item.log.read_text(errors="replace")
        if code != 0:
            raise RuntimeError(f"{role} failed with exit code {code}:\n{output[-3000:]}")
        return output

    def stop(self, items: Sequence[Started] | None = None, *, grace: float = 15.0) -> None:
        """SIGINT (uvicorn shuts down gracefully), then SIGKILL after `grace` seconds; by pid only."""
        targets = list(items if items is not None else self.started)
        for item in targets:
            if item.process.poll() is None:
                item.process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + grace
        for item in targets:
            try:
                item.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                item.process.kill()
                item.process.wait(timeout=10)
            if item in self.started:
                self.started.remove(item)

    def watch_list(self, *, services: bool = True) -> dict[int, str]:
        """Role by pid of every running process of ours, and of the shared services."""
        watched = {item.pid: item.role for item in self.started if item.process.poll() is None}
        if services:
            for name, pids in service_pids().items():
                watched.update(dict.fromkeys(pids, name))
        return watched


def descendants(pid: int) -> list[int]:
    """The children of a process, theirs, and so on (`xypr run`'s worker processes count as its own CPU)."""
    found: list[int] = []
    try:
        children = [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return found
    for child in children:
        found += [child, *descendants(child)]
    return found


def sample(watched: Mapping[int, str]) -> CpuSample:
    """CPU counters of the watched processes (with their descendants) and of the machine, right now."""
    by_pid: dict[int, tuple[str, float]] = {}
    for pid, role in watched.items():
        for each in (pid, *descendants(pid)):
            seconds = cpu_seconds(each)
            if seconds is not None:
                by_pid[each] = (role, seconds)
    busy, total = machine_cpu()
    return CpuSample(time.time(), by_pid, busy, total)


def cpu_share(before: CpuSample, after: CpuSample, *, extra: Mapping[str, float] | None = None) -> dict[str, float]:
    """Cores used per role between two samples (1.0 = one core busy), plus the machine and the rest.

    `extra` adds CPU seconds of processes that came and went between the samples (the load generator).
    """
    wall = max(1e-6, after.at - before.at)
    shares: dict[str, float] = {role: seconds / wall for role, seconds in (extra or {}).items()}
    for pid, (role, seconds) in after.by_pid.items():
        start = before.by_pid.get(pid)
        used = seconds - (start[1] if start else 0.0)
        shares[role] = shares.get(role, 0.0) + used / wall
    machine = (after.machine_busy - before.machine_busy) / wall
    shares = {role: round(value, 2) for role, value in sorted(shares.items())}
    shares["machine"] = round(machine, 2)
    shares["not ours"] = round(max(0.0, machine - sum(v for k, v in shares.items() if k != "machine")), 2)
    return shares


def tail(path: Path, size: int = 3000) -> str:
    """The end of a log file."""
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return ""
