"""`xypr run` on two cores: the queue workers run in a child process, kept alive, stopped with the parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.moto import free_port
from xypr.sandbox.demo import DEMO_TENANT

PHONE_NUMBER_ID = DEMO_TENANT["whatsapp"]["phone_number_id"]


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited; only its parent has not collected it yet


def _wait(condition: str, probe: Callable[[], bool], within: float = 60) -> None:
    deadline = time.monotonic() + within
    while not probe():
        assert time.monotonic() < deadline, f"not within {within:.0f} s: {condition}"
        time.sleep(0.2)


@contextmanager
def _run(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XYPR_")}
    env |= {"XYPR_DATA_DIR": str(tmp_path / "data"), "XYPR_LOG_LEVEL": "WARNING", "XYPR_RUN_WORKER_PROCESSES": "1"}
    log = (tmp_path / "run.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "xypr.cli", "run", "--sandbox", "--port", str(port)],
        env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert process.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
            try:
                return httpx.get(f"{url}/ready", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        _wait("xypr run --sandbox answers /ready", ready, within=120)
        yield process, url
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def _delivered(url: str, text: str) -> Callable[[], bool]:
    """Sends `text` as a customer now; the probe is true once Genesys (the emulator) received it."""
    sent = httpx.post(
        f"{url}/sandbox/meta/_sandbox/customers/15550001111/messages",
        json={"phone_number_id": PHONE_NUMBER_ID, "type": "text", "text": text},
        timeout=10,
    )
    assert sent.status_code == 200, sent.text

    def probe() -> bool:
        received = httpx.get(f"{url}/sandbox/genesys/_sandbox/received", timeout=10).json()
        return any(item.get("body", {}).get("text") == text for item in received)

    return probe


def _processed(url: str, process: str) -> float:
    """Events the pipeline stages of `process` handled, by xypr run's /metrics."""
    families = text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text)
    return sum(
        sample.value
        for family in families
        if family.name == "xypr_events"
        for sample in family.samples
        if sample.name == "xypr_events_total"
        and sample.labels.get("process") == process
        and sample.labels.get("outcome") == "processed"
    )


def test_the_workers_run_in_a_child_that_is_restarted_when_it_dies_and_stopped_with_run(tmp_path: Path) -> None:
    with _run(tmp_path) as (process, url):
        _wait("a worker process runs", lambda: len(_children(process.pid)) == 1)
        (first,) = _children(process.pid)
        assert b"worker" in Path(f"/proc/{first}/cmdline").read_bytes()
        # /ready waited for the worker process too, and says so.
        assert httpx.get(f"{url}/ready", timeout=10).json()["checks"]["workers"] is True
        _wait("a customer message reaches Genesys through the worker process", _delivered(url, "before the kill"))
        # One scrape answers for both processes, each sample labelled with its own.
        _wait("the worker's events are in xypr run's /metrics", lambda: _processed(url, "worker-1") >= 1)
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        assert 'xypr_worker_process_up{process="worker-1"} 1.0' in metrics
        assert _processed(url, "http") == 0  # the HTTP process runs no queue worker
        assert 'process_cpu_seconds_total{process="worker-1"}' in metrics

        os.kill(first, signal.SIGKILL)
        _wait("a new worker process runs", lambda: [p for p in _children(process.pid) if p != first] != [])
        (second,) = _children(process.pid)
        _wait("/ready answers for the new worker process", lambda: httpx.get(f"{url}/ready", timeout=10).is_success)
        _wait("a message after the kill reaches Genesys", _delivered(url, "after the kill"))

        process.send_signal(signal.SIGINT)  # Ctrl+C
        process.wait(timeout=60)
        assert process.returncode in (0, 130), (tmp_path / "run.log").read_text()[-3000:]  # 130: ended by SIGINT
        assert not _alive(second), "the worker process outlived xypr run"
        assert "Traceback" not in (tmp_path / "run.log").read_text()


def test_a_worker_process_stops_itself_when_run_is_killed(tmp_path: Path) -> None:
    with _run(tmp_path) as (process, _url):
        _wait("a worker process runs", lambda: len(_children(process.pid)) == 1)
        (child,) = _children(process.pid)
        process.kill()  # no chance to stop its children
        process.wait(timeout=10)
        _wait("the orphaned worker process stopped", lambda: not _alive(child), within=40)
