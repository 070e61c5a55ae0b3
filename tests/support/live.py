"""Running things for real inside a test: an ASGI app on a free port, and polling until a condition holds."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import uvicorn

from tests.support.moto import free_port

__all__ = ["eventually", "serve"]

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T | None]], *, within: float = 15.0, every: float = 0.02) -> T:
    """Poll `probe` until it returns something truthy; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s (last: {result!r})")
        await asyncio.sleep(every)


@asynccontextmanager
async def serve(app: Any, *, port: int | None = None, within: float = 30.0) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1 (a free port unless given); yields its base URL.

    Start-up and shutdown are bounded; the app's lifespan runs.
    """
    port = port or free_port()
    # Idle keep-alive connections stay open well beyond httpx's 5 s expiry: a test client must never
    # reuse a connection the server is closing at that very moment (a ReadError, not the bridge's doing).
    # Requests still running at shutdown get the 10 s `xypr run` gives them (cli.py), then are cancelled.
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        loop="asyncio",
        timeout_keep_alive=30,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + within
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server exited during start-up")
        if time.monotonic() > deadline:
            raise RuntimeError(f"server did not start within {within} s")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        # Open requests (10 s) and the workers' grace (`shutdown_grace_seconds`, 20 s) come before this bound.
        done, _ = await asyncio.wait({task}, timeout=within + 30)
        if not done:
            _print_stuck_tasks(task)
            task.cancel()
            raise TimeoutError(f"the server on port {port} did not stop within {within + 30} s (stacks above)")
        task.result()


def _print_stuck_tasks(server: asyncio.Task[Any]) -> None:
    """Where every task is waiting: what a shutdown that hangs is waiting for."""
    print(f"--- tasks still running while the server ({server.get_name()}) stops ---", file=sys.stderr)
    for running in asyncio.all_tasks():
        if not running.done():
            running.print_stack(limit=12, file=sys.stderr)
