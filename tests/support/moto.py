"""A moto S3 server in a subprocess, for the S3 side of the storage tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time

import httpx

__all__ = ["free_port", "start_moto_server", "stop_moto_server"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_moto_server(port: int, *, timeout: float = 30.0) -> subprocess.Popen[bytes]:
    """Start `moto.server` on 127.0.0.1:`port` and return once it answers HTTP."""
    # A file, not a pipe: moto logs every request, and an unread pipe would fill up and block it.
    # Closing our handle on return is fine, the child keeps its own descriptor.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                log.seek(0)
                output = log.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"moto server exited with {process.returncode}:\n{output}")
            try:
                httpx.get(url, timeout=1.0)
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            return process
        stop_moto_server(process)
        raise RuntimeError(f"moto server did not answer on {url} within {timeout} s")


def stop_moto_server(process: subprocess.Popen[bytes]) -> None:
    """Stop the server, forcefully if it does not exit within five seconds."""
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
