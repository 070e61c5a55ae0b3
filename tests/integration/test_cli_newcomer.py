"""The `xypr` command as a newcomer meets it: XYPR_PORT is honoured, `GET /` leads to a page, `xypr serve`
next to a sandbox finds its master key, and every failure is one line on stderr with a non-zero exit."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.moto import free_port
from xypr.core.secretbox import generate_master_key


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("XYPR_")}
    return {**clean, "XYPR_DATA_DIR": str(tmp_path / "data"), "XYPR_LOG_LEVEL": "WARNING", **extra}


def _xypr(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xypr.cli", *args], env=_env(tmp_path, **env), cwd=tmp_path,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@contextmanager
def _running(tmp_path: Path, *args: str, port: int, **env: str) -> Iterator[str]:
    """`xypr ARGS` in the background until it answers /health on `port`; stopped (SIGTERM) afterwards."""
    process = subprocess.Popen(
        [sys.executable, "-m", "xypr.cli", *args], env=_env(tmp_path, **env), cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise AssertionError(f"xypr {' '.join(args)} exited {process.returncode}: {process.stderr.read()}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"xypr {' '.join(args)} did not answer on {url}"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_run_honours_xypr_port_and_sends_a_browser_from_slash_to_the_sandbox(tmp_path: Path) -> None:
    port = free_port()
    with _running(tmp_path, "run", "--sandbox", port=port, XYPR_PORT=str(port)) as url:
        home = httpx.get(f"{url}/", follow_redirects=False)
        assert home.status_code == 302
        assert home.headers["location"] == "/sandbox"
        assert httpx.get(f"{url}/", follow_redirects=True).headers["content-type"].startswith("text/html")


def test_serve_next_to_a_sandbox_uses_the_sandbox_master_key(tmp_path: Path) -> None:
    sandbox_port, auth_port = free_port(), free_port()
    with _running(tmp_path, "run", "--sandbox", "--port", str(sandbox_port), port=sandbox_port):
        pass
    assert (tmp_path / "data" / "sandbox-master.key").exists()

    with _running(tmp_path, "serve", "auth", "--port", str(auth_port), port=auth_port) as url:
        assert httpx.get(f"{url}/ready", timeout=10).status_code == 200


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_serve_without_a_master_key_says_in_one_line_what_to_set(tmp_path: Path) -> None:
    result = _xypr(tmp_path, "serve", "auth", "--port", str(free_port()))

    assert "XYPR_MASTER_KEY" in _one_line_error(result)
    assert "xypr keygen" in result.stderr
    assert result.returncode == 1


@pytest.mark.parametrize(
    ("args", "env", "expected", "code"),
    [
        (("serve", "no-such-service"), {}, "unknown or not yet built HTTP service 'no-such-service'", 2),
        (("serve", "auth", "--bogus"), {}, "No such option: --bogus", 2),
        (("up",), {}, "set XYPR_DATABASE_URL, XYPR_AMQP_URL, XYPR_REDIS_URL, XYPR_S3_ENDPOINT", 1),
        (("serve", "genesys-api"), {}, "use `xypr worker genesys-api`", 2),
        (("worker", "all", "--index", "2", "--of", "2"), {}, "--index", 2),
        (("worker", "no-such-worker"), {}, "unknown worker 'no-such-worker'", 2),
        (("tenant", "create", "--file", "/no/such/tenant.json"), {}, "cannot read /no/such/tenant.json", 1),
        (("migrate",), {"XYPR_PARTITIONS": "many"}, "invalid setting XYPR_PARTITIONS", 1),
        (("migrate",), {"XYPR_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:1/x"}, "the database at", 1),
        (("dlq", "replay", "no-such-id"), {}, "no dead letter no-such-id", 1),
        (("dlq", "list"), {"XYPR_AMQP_URL": "amqp://guest:hunter2@127.0.0.1:1/"}, "the broker at", 1),
        (("serve", "auth", "--port", "0"), {"XYPR_MASTER_KEY": "not-a-key"}, "XYPR_MASTER_KEY entries look like", 1),
        (("serve", "auth", "--port", "0"), {"XYPR_AMQP_URL": "amqp://127.0.0.1:1/"}, "could not start", 1),
    ],
    ids=[
        "unknown-service", "unknown-option", "up-without-backends", "worker-as-service", "index-out-of-range",
        "unknown-worker", "missing-file",
        "bad-setting", "unreachable-database", "unknown-dead-letter", "unreachable-broker", "bad-master-key",
        "broker-down-at-start",
    ],
)  # fmt: skip
def test_each_failure_is_one_line_and_a_non_zero_exit(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], expected: str, code: int
) -> None:
    result = _xypr(tmp_path, *args, **{"XYPR_MASTER_KEY": generate_master_key(), **env})

    line = _one_line_error(result)
    assert expected in line
    assert result.returncode == code
    assert "hunter2" not in result.stderr  # a URL's password is never printed


def test_a_taken_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _xypr(tmp_path, "serve", "auth", "--port", str(port), XYPR_MASTER_KEY=generate_master_key())

    line = _one_line_error(result)
    assert f"could not start on 127.0.0.1:{port}" in line
    assert "address already in use" in line
