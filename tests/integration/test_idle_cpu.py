"""An idle `xypr run --sandbox` costs (almost) no CPU: the embedded queue's consumers sleep until work comes, and
the file cache's subscribers look for news a few times a second. Its worker process is counted too."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from xypr.backends.cache.file import FileCache
from xypr.monitoring.processes import running_processes

# Fraction of one core an idle process may use (the sandbox's own timers, the queue's polls).
IDLE_CPU_LIMIT = 0.05
MEASURE_SECONDS = 10.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (psutil is not a dependency)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime field 14, stime field 15 (1-based, man 5 proc).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _worker_beat(cache_file: Path) -> bool:
    async def look() -> bool:
        cache = FileCache(cache_file)
        try:
            return any(process.kind == "worker" for process in await running_processes(cache))
        finally:
            await cache.close()

    return asyncio.run(look())


def _cpu_seconds_with_children(pid: int) -> float:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return _cpu_seconds(pid) + sum(_cpu_seconds(int(child)) for child in children)


def test_idle_sandbox_uses_almost_no_cpu_after_lease_renewals_are_due(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XYPR_")}
    # Leases of 3 s: a renewal is due every second, well inside the measurement (60 s in production,
    # where the spin started 20 s after the last message).
    env |= {
        "XYPR_DATA_DIR": str(tmp_path / "data"), "XYPR_QUEUE_LEASE_SECONDS": "3", "XYPR_LOG_LEVEL": "WARNING",
        "XYPR_RUN_WORKER_PROCESSES": "1",
    }  # fmt: skip
    log = (tmp_path / "run.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "xypr.cli", "run", "--sandbox", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "xypr run --sandbox did not become ready"
            time.sleep(0.2)
        # The worker process has started (it beats into the shared cache once its backends are open).
        deadline = time.monotonic() + 60
        while not _worker_beat(tmp_path / "data" / "cache.sqlite3"):
            assert time.monotonic() < deadline, "the worker process did not start"
            time.sleep(0.5)
        time.sleep(3)  # past the first renewal deadline, where the claim loop used to spin
        assert Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split(), "no worker process"
        before, started = _cpu_seconds_with_children(process.pid), time.monotonic()
        time.sleep(MEASURE_SECONDS)
        share = (_cpu_seconds_with_children(process.pid) - before) / (time.monotonic() - started)
        print(f"idle CPU of xypr run --sandbox and its worker over {MEASURE_SECONDS:.0f} s: {share:.1%} of one core")
        assert share < IDLE_CPU_LIMIT
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
