"""Rate limits counted per process and shared in batches: local decisions, exchanges, bounds and outages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping

import pytest

from xypr.backends.cache.batched import BatchedLimiter, slack_of
from xypr.backends.cache.memory import MemoryCache

WINDOW = 60.0
MINUTE_START = 60.0 * 29_000_000  # a wall-clock minute boundary


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FlakyCache(MemoryCache):
    """A memory cache whose batched counters can be taken down, and which counts its round trips."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.exchanges = 0

    async def incr_many(self, amounts: Mapping[str, int], *, ttl: float) -> list[int]:
        self.exchanges += 1
        if self.down:
            raise ConnectionError("cache unreachable")
        return await super().incr_many(amounts, ttl=ttl)


MakeLimiter = Callable[[], BatchedLimiter]


@pytest.fixture
def clock() -> Clock:
    return Clock(MINUTE_START + 15.0)


@pytest.fixture
def cache() -> FlakyCache:
    return FlakyCache()


@pytest.fixture
async def make_limiter(clock: Clock, cache: FlakyCache) -> AsyncIterator[MakeLimiter]:
    """Limiters on one shared cache; the background exchange never fires on its own here (tests call `flush`)."""
    made: list[BatchedLimiter] = []

    def make() -> BatchedLimiter:
        made.append(BatchedLimiter(cache, interval=3600.0, clock=clock))
        return made[-1]

    yield make
    for limiter in made:
        await limiter.close()


async def _admitted(limiter: BatchedLimiter, times: int, *, limit: int, key: str = "rl:t1") -> int:
    return sum([(await limiter.admit(key, limit=limit, window=WINDOW)).allowed for _ in range(times)])


async def test_admits_up_to_the_limit_then_refuses_until_the_window_ends(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    assert await _admitted(limiter, 10, limit=10) == 10
    refused = await limiter.admit("rl:t1", limit=10, window=WINDOW)
    assert not refused.allowed
    assert refused.remaining == 0
    assert refused.retry_after == pytest.approx(45.0)  # 15 s into the minute


async def test_remaining_counts_down_with_each_admitted_event(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    remaining = [(await limiter.admit("rl:t1", limit=3, window=WINDOW)).remaining for _ in range(3)]
    assert remaining == [2, 1, 0]


async def test_the_next_window_starts_with_the_whole_budget(make_limiter: MakeLimiter, clock: Clock) -> None:
    limiter = make_limiter()
    assert await _admitted(limiter, 5, limit=3) == 3
    clock.now = MINUTE_START + WINDOW  # the next minute
    assert await _admitted(limiter, 5, limit=3) == 3


async def test_keys_have_separate_budgets(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    assert await _admitted(limiter, 3, limit=2, key="rl:t1") == 2
    assert await _admitted(limiter, 3, limit=2, key="rl:t2") == 2


async def test_admitting_within_the_slack_makes_no_cache_call(make_limiter: MakeLimiter, cache: FlakyCache) -> None:
    limiter = make_limiter()
    limit = 6000
    assert await _admitted(limiter, slack_of(limit), limit=limit) == slack_of(limit)
    assert cache.exchanges == 0
    await limiter.admit("rl:t1", limit=limit, window=WINDOW)  # one past the slack: exchanged first
    assert cache.exchanges == 1


async def test_two_processes_see_each_others_counts_after_an_exchange(make_limiter: MakeLimiter) -> None:
    first, second = make_limiter(), make_limiter()
    limit = 1000
    assert await _admitted(first, 15, limit=limit) == 15
    assert await _admitted(second, 5, limit=limit) == 5
    await first.flush()
    await second.flush()
    assert second.check("rl:t1", limit=limit, window=WINDOW).remaining == limit - 20
    # A key is refreshed at the first exchange after this process used it (here: the check above and below).
    assert first.check("rl:t1", limit=limit, window=WINDOW).remaining == limit - 15
    await first.flush()
    assert first.check("rl:t1", limit=limit, window=WINDOW).remaining == limit - 20


async def test_two_processes_together_admit_at_most_the_limit_plus_the_documented_slack(
    make_limiter: MakeLimiter,
) -> None:
    first, second = make_limiter(), make_limiter()
    limit = 500
    admitted = 0
    for _ in range(limit):  # both busy, interleaved, no background exchange: only the slack forces them
        admitted += await _admitted(first, 1, limit=limit) + await _admitted(second, 1, limit=limit)
    assert limit <= admitted <= limit + slack_of(limit)
    await first.flush()
    await second.flush()
    assert not first.check("rl:t1", limit=limit, window=WINDOW).allowed
    assert not second.check("rl:t1", limit=limit, window=WINDOW).allowed


async def test_a_cache_outage_refuses_nothing_the_local_count_admits(
    make_limiter: MakeLimiter, cache: FlakyCache
) -> None:
    limiter, other = make_limiter(), make_limiter()
    cache.down = True
    limit = 100
    assert await _admitted(limiter, limit, limit=limit) == limit  # slack spent, exchange failing: still admitted
    assert not (await limiter.admit("rl:t1", limit=limit, window=WINDOW)).allowed  # the budget holds locally
    assert await _admitted(other, 10, limit=limit) == 10
    cache.down = False
    await limiter.flush()  # back: the counts of the outage are handed over
    await other.flush()
    assert not other.check("rl:t1", limit=limit, window=WINDOW).allowed
    assert await cache.incr_many({f"rl:t1:{int(MINUTE_START // WINDOW)}": 0}, ttl=WINDOW) == [110]


async def test_check_does_not_count_and_count_counts_past_the_limit(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    assert limiter.check("rl:ip", limit=2, window=WINDOW).allowed
    for _ in range(3):
        await limiter.count("rl:ip", limit=2, window=WINDOW)
    refused = limiter.check("rl:ip", limit=2, window=WINDOW)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(45.0)


async def test_another_process_refuses_an_address_once_it_has_counted_and_exchanged(
    make_limiter: MakeLimiter,
) -> None:
    first, second = make_limiter(), make_limiter()
    for _ in range(5):
        await first.count("rl:ip", limit=5, window=WINDOW)
    await first.flush()
    await second.count("rl:ip", limit=5, window=WINDOW)
    await second.flush()
    assert not second.check("rl:ip", limit=5, window=WINDOW).allowed


async def test_close_hands_over_the_last_counts_and_stops_the_background_exchange(
    clock: Clock, cache: FlakyCache
) -> None:
    limiter = BatchedLimiter(cache, interval=3600.0, clock=clock)
    assert await _admitted(limiter, 3, limit=100) == 3
    assert [task for task in asyncio.all_tasks() if task.get_name() == "rate-limit-exchange"]
    await limiter.close()
    assert not [task for task in asyncio.all_tasks() if task.get_name() == "rate-limit-exchange"]
    assert await cache.incr_many({f"rl:t1:{int(MINUTE_START // WINDOW)}": 0}, ttl=WINDOW) == [3]


async def test_the_background_exchange_stops_once_no_key_is_left_to_follow(clock: Clock, cache: FlakyCache) -> None:
    limiter = BatchedLimiter(cache, interval=0.0, clock=clock)  # exchanges on every turn of the loop
    try:
        assert await _admitted(limiter, 3, limit=100) == 3
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert cache.exchanges >= 1  # handed over without anyone asking
        clock.now = MINUTE_START + 2 * WINDOW  # the key's minute is over: nothing left to follow
        for _ in range(5):
            await asyncio.sleep(0)
        assert not [task for task in asyncio.all_tasks() if task.get_name() == "rate-limit-exchange"]
    finally:
        await limiter.close()
