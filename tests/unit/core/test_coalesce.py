"""The coalescer: the first call goes at once, calls made meanwhile go together in the next batch."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from xypr.core.coalesce import Coalescer


class _Recorder:
    """A batch function that records its batches and waits for `gate` before answering."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_with: Exception | None = None

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return [item * 10 for item in items]


async def _until_sent(recorder: _Recorder, count: int) -> None:
    for _ in range(100):  # a few loop turns, no sleeping
        if len(recorder.batches) >= count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{count} batches expected, {len(recorder.batches)} sent")


async def test_a_lone_call_goes_at_once_alone() -> None:
    recorder = _Recorder()
    coalesce = Coalescer(recorder)

    assert await coalesce(1) == 10
    assert await coalesce(2) == 20
    assert recorder.batches == [[1], [2]]


async def test_calls_made_while_a_batch_is_in_flight_go_together_in_the_next() -> None:
    recorder = _Recorder()
    recorder.gate.clear()
    coalesce = Coalescer(recorder)

    first = asyncio.create_task(coalesce(1))
    await _until_sent(recorder, 1)
    waiting = [asyncio.create_task(coalesce(item)) for item in (2, 3, 4)]
    await asyncio.sleep(0)
    assert recorder.batches == [[1]]  # the others wait for the one in flight
    recorder.gate.set()

    assert await first == 10
    assert await asyncio.gather(*waiting) == [20, 30, 40]
    assert recorder.batches == [[1], [2, 3, 4]]


async def test_batches_are_bounded_and_as_many_run_as_allowed() -> None:
    recorder = _Recorder()
    recorder.gate.clear()
    coalesce = Coalescer(recorder, max_batch=2, in_flight=2)

    calls = [asyncio.create_task(coalesce(item)) for item in range(1, 7)]
    await _until_sent(recorder, 2)
    assert recorder.batches == [[1], [2]]  # two in flight, the rest wait
    recorder.gate.set()

    assert await asyncio.gather(*calls) == [10, 20, 30, 40, 50, 60]
    assert sorted(item for batch in recorder.batches for item in batch) == [1, 2, 3, 4, 5, 6]
    assert max(len(batch) for batch in recorder.batches) == 2


async def test_a_failed_batch_fails_its_callers_only() -> None:
    recorder = _Recorder()
    recorder.gate.clear()
    coalesce = Coalescer(recorder)
    failed = asyncio.create_task(coalesce(1))
    await _until_sent(recorder, 1)
    later = asyncio.create_task(coalesce(2))
    recorder.fail_with = ConnectionError("gone")
    recorder.gate.set()

    with pytest.raises(ConnectionError, match="gone"):
        await failed
    recorder.fail_with = None
    assert await later == 20


async def test_a_cancelled_caller_leaves_the_others_their_results() -> None:
    recorder = _Recorder()
    recorder.gate.clear()
    coalesce = Coalescer(recorder)
    first = asyncio.create_task(coalesce(1))
    await _until_sent(recorder, 1)
    gone, kept = asyncio.create_task(coalesce(2)), asyncio.create_task(coalesce(3))
    await asyncio.sleep(0)
    gone.cancel()
    recorder.gate.set()

    assert await first == 10
    assert await kept == 30
    assert gone.cancelled()


async def test_a_batch_function_answering_the_wrong_count_is_an_error() -> None:
    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    coalesce = Coalescer(short)
    with pytest.raises(RuntimeError, match="a batch of 1 items got 0 results"):
        await coalesce(1)


def test_the_bounds_are_checked() -> None:
    async def run(items: list[int]) -> list[int]:
        return items

    with pytest.raises(ValueError, match="at least 1"):
        Coalescer(run, max_batch=0)


async def test_an_item_answered_with_an_exception_fails_its_caller_alone() -> None:
    async def run(items: list[int]) -> list[int | BaseException]:
        return [ValueError(f"bad {item}") if item == 2 else item * 10 for item in items]

    coalesce = Coalescer(run)
    outcomes = await asyncio.gather(*(coalesce(item) for item in (1, 2, 3, 4)), return_exceptions=True)

    assert [str(each) if isinstance(each, Exception) else each for each in outcomes] == [10, "bad 2", 30, 40]


async def test_a_batch_runs_in_a_context_of_its_own() -> None:
    """Not in the logging context (correlation id, key) of whichever caller happened to start it."""
    seen: list[str | None] = []
    marker: contextvars.ContextVar[str | None] = contextvars.ContextVar("marker", default=None)

    async def run(items: list[int]) -> list[int]:
        seen.append(marker.get())
        return items

    marker.set("the first caller's")
    assert await Coalescer(run)(1) == 1
    assert seen == [None]
