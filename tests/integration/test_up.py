"""`xypr up` for real: every service of the table as its own process on PostgreSQL, RabbitMQ, Redis and S3
answers /health on its port, a killed process comes back, and Ctrl+C leaves no process behind."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from tests.conftest import production_settings
from xypr.layout import plan_programs

pytestmark = [pytest.mark.services, pytest.mark.timeout(900)]

WORKERS = 2
# Ten Python processes start at once: on a busy two-core machine that takes minutes, not seconds.
START_WITHIN = 600.0


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_base() -> int:
    """`XYPR_TEST_UP_PORT_BASE`, or a base whose every port of the layout is free right now."""
    given = os.environ.get("XYPR_TEST_UP_PORT_BASE")
    if given:
        return int(given)
    for _ in range(200):
        base = random.randrange(20000, 60000, 100)
        ports = [p.port for p in plan_programs(xypr=("x",), port_base=base, workers=WORKERS, host="127.0.0.1")]
        if all(_free(port) for port in ports):
            return base
    raise RuntimeError("no free port range for the layout")


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=3).close()
    except OSError:
        return False
    return True


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=3).status_code == 200
    except httpx.TransportError:
        return False


def _wait(condition: str, probe: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not probe():
        assert time.monotonic() < deadline, f"not within {within:.0f} s: {condition}"
        time.sleep(0.5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_up_starts_the_table_restarts_a_killed_process_and_stops_everything(
    tmp_path: Path, postgres_url: str, s3_endpoint: str
) -> None:
    settings = production_settings(tmp_path, database_url=postgres_url, s3_endpoint=s3_endpoint)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("XYPR_")}
    for key, value in settings.model_dump().items():
        if key in ("service_urls",) or value is None:  # unset stays unset: the process picks its default
            continue
        plain = value.get_secret_value() if isinstance(value, SecretStr) else value
        environment[f"XYPR_{key.upper()}"] = str(plain)
    # Ten processes share the test PostgreSQL with everyone else: small pools.
    environment |= {"XYPR_DATABASE_POOL_SIZE": "2", "XYPR_LOG_LEVEL": "WARNING"}
    base = _port_base()
    programs = plan_programs(xypr=("x",), port_base=base, workers=WORKERS, host="127.0.0.1")
    ports = {program.name: program.port for program in programs}
    assert {"api-gateway", "auth", "tenant", "state-manager", "whatsapp-webhook", "genesys-webhook"} <= ports.keys()
    config = settings.data_dir.resolve() / "up" / "supervisord.conf"

    def supervisorctl(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(config), *args],
            capture_output=True, text=True, timeout=60, check=False,
        ).stdout.strip()  # fmt: skip

    up = subprocess.Popen(
        [sys.executable, "-m", "xypr.cli", "up", "--port-base", str(base), "--workers", str(WORKERS)],
        env=environment, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group: the clean-up below can reach every process
    )  # fmt: skip
    children: list[int] = []
    try:
        started = time.monotonic()
        for name, port in ports.items():
            remaining = START_WITHIN - (time.monotonic() - started)
            _wait(
                f"{name} answers /health on {port}",
                lambda port=port: _healthy(port) or up.poll() is not None,
                remaining,
            )  # type: ignore[misc]
            assert up.poll() is None, f"xypr up exited {up.returncode}: {up.stderr.read()}"  # type: ignore[union-attr]
        gateway = httpx.get(f"http://127.0.0.1:{base}/ready", timeout=10)
        assert gateway.status_code == 200, gateway.text
        # The gateway routes /auth to the auth process: a wrong password is that service's 401, not a 404.
        login = httpx.post(f"http://127.0.0.1:{base}/auth/login", json={"email": "a@b.c", "password": "x"}, timeout=10)
        assert login.status_code in (400, 401), login.text

        children = [int(pid) for pid in supervisorctl("pid", "all").split()]
        assert len(children) == len(programs)
        killed = int(supervisorctl("pid", "auth"))
        os.kill(killed, signal.SIGKILL)
        _wait("auth is restarted", lambda: supervisorctl("pid", "auth") not in ("", "0", str(killed)), 60)
        _wait("the restarted auth answers", lambda: _healthy(ports["auth"]), START_WITHIN)
        restarted = int(supervisorctl("pid", "auth"))
        assert restarted != killed
        children.append(restarted)

        up.send_signal(signal.SIGINT)  # what Ctrl+C sends
        up.wait(timeout=120)
        assert up.returncode == 0
        _wait("every process has exited", lambda: not any(_alive(pid) for pid in children), 30)
        assert not any(_listening(port) for port in ports.values())
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait(timeout=30)
        for pid in children:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
