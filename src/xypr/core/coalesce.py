"""Coalescing: calls made while one round trip is in flight wait for it, then go together in the next.

Under load, the workers' handlers make the same small request (is this key parked? drop these cache
keys) many times at once, each a round trip of its own. A `Coalescer` sends the first call at once
(no added latency when idle); calls arriving while that batch is in flight queue up and are sent
together, in one round trip, when it returns. The busier the process, the larger the batches.

Each caller gets its own item's result (the batch function may answer an exception for one item alone)
or the batch's exception; a caller cancelled meanwhile does not stop the batch (its item was sent or is
still sent): use it for reads and for idempotent writes. A batch runs in a context of its own, not in the
logging context of whichever caller happened to start it.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Coalescer"]

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    """Runs `run(items)` for the items of calls that arrive together; `run` returns one result per item,
    in order, an exception being that item's failure alone. At most `in_flight` batches of at most
    `max_batch` items run at once."""

    def __init__(
        self,
        run: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]],
        *,
        max_batch: int = 256,
        in_flight: int = 1,
    ) -> None:
        if max_batch < 1 or in_flight < 1:
            raise ValueError("max_batch and in_flight must be at least 1")
        self._run = run
        self._max_batch = max_batch
        self._in_flight = in_flight
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._running: set[asyncio.Task[None]] = set()

    async def __call__(self, item: T) -> R:
        """The result of `item`, sent with whatever else is waiting."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if len(self._running) < self._in_flight:
            self._start()
        return await future

    def _start(self) -> None:
        batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
        task = asyncio.create_task(self._send(batch), context=contextvars.Context())
        self._running.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if self._pending and len(self._running) < self._in_flight:
            self._start()

    async def _send(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._run([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} items got {len(results)} results")
        except BaseException as exc:  # every caller of the batch sees it (cancellation included)
            for _, future in batch:
                if not future.done():
                    if isinstance(exc, asyncio.CancelledError):
                        future.cancel()
                    else:
                        future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
