"""The cache contract, run against Redis and the in-process cache alike."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.support.moto import free_port
from xypr.backends.cache import create_cache
from xypr.backends.cache.base import Cache
from xypr.backends.cache.file import FileCache
from xypr.backends.cache.memory import MemoryCache
from xypr.backends.cache.redis import RedisCache
from xypr.config import Settings

REDIS_URL = os.environ.get("XYPR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

MakeCache = Callable[[], Awaitable[Cache]]


def _namespace() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


async def _drop_namespace(namespace: str) -> None:
    """Delete this test's keys only: other suites share the Redis database."""
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{namespace}:*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(params=["memory", "file", pytest.param("redis", marks=pytest.mark.services)])
async def make_cache(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MakeCache]:
    """Builds caches of one implementation, each in a fresh namespace, cleaned up afterwards."""
    caches: list[Cache] = []
    namespaces: list[str] = []

    async def make() -> Cache:
        cache: Cache
        if request.param == "redis":
            namespace = _namespace()
            namespaces.append(namespace)
            cache = RedisCache(REDIS_URL, namespace=namespace)
        elif request.param == "file":  # every cache of a test shares one file, as processes do
            cache = FileCache(tmp_path / "cache.sqlite3", namespace=_namespace(), poll_interval=0.02)
        else:
            cache = MemoryCache()
        caches.append(cache)
        return cache

    yield make
    for cache in caches:
        await cache.close()
    for namespace in namespaces:
        await _drop_namespace(namespace)


@pytest.fixture
async def cache(make_cache: MakeCache) -> Cache:
    return await make_cache()


async def _listening(cache: Cache, channel: str) -> AsyncIterator[bytes]:
    """A subscription that is known to be established (subscribing is asynchronous on Redis)."""
    messages = cache.subscribe(channel)
    first = asyncio.ensure_future(anext(messages))
    async with asyncio.timeout(5):
        while not first.done():
            await cache.publish(channel, b"probe")
            await asyncio.wait({first}, timeout=0.05)
    assert first.result() == b"probe"
    return messages


async def _next_real(messages: AsyncIterator[bytes]) -> bytes:
    async with asyncio.timeout(5):
        while (message := await anext(messages)) == b"probe":
            pass
    return message


async def test_get_of_a_missing_key_is_none(cache: Cache) -> None:
    assert await cache.get("tenant/t1/missing") is None


async def test_set_then_get_returns_the_value(cache: Cache) -> None:
    await cache.set("tenant/t1/token", b"\x00binary\xff")
    assert await cache.get("tenant/t1/token") == b"\x00binary\xff"
    await cache.set("tenant/t1/token", b"replaced")
    assert await cache.get("tenant/t1/token") == b"replaced"


async def test_value_expires_after_its_ttl(cache: Cache) -> None:
    await cache.set("k", b"v", ttl=0.2)
    assert await cache.get("k") == b"v"
    await asyncio.sleep(0.3)
    assert await cache.get("k") is None


async def test_set_without_ttl_clears_an_earlier_ttl(cache: Cache) -> None:
    await cache.set("k", b"v1", ttl=0.2)
    await cache.set("k", b"v2")
    await asyncio.sleep(0.3)
    assert await cache.get("k") == b"v2"


async def test_non_positive_ttl_is_rejected(cache: Cache) -> None:
    with pytest.raises(ValueError, match="ttl"):
        await cache.set("k", b"v", ttl=0)


async def test_delete_removes_keys_and_ignores_absent_ones(cache: Cache) -> None:
    await cache.set("a", b"1")
    await cache.set("b", b"2")
    await cache.delete("a", "b", "never-set")
    await cache.delete()
    assert await cache.get("a") is None
    assert await cache.get("b") is None


async def test_deletes_made_at_once_each_remove_their_keys_and_only_those(cache: Cache) -> None:
    for n in range(20):
        await cache.set(f"gone:{n}", b"v")
    await cache.set("kept", b"v")

    await asyncio.gather(*(cache.delete(f"gone:{n}", f"gone:{(n + 1) % 20}") for n in range(20)))

    assert [await cache.get(f"gone:{n}") for n in range(20)] == [None] * 20
    assert await cache.get("kept") == b"v"
    await cache.delete()  # nothing to delete: no round trip, no error


async def test_set_nx_stores_only_when_absent(cache: Cache) -> None:
    assert await cache.set_nx("dedupe/wamid.1", b"first") is True
    assert await cache.set_nx("dedupe/wamid.1", b"second") is False
    assert await cache.get("dedupe/wamid.1") == b"first"


async def test_set_nx_has_exactly_one_winner_among_50_concurrent_callers(cache: Cache) -> None:
    results = await asyncio.gather(*(cache.set_nx("lock", str(i).encode(), ttl=5) for i in range(50)))
    assert results.count(True) == 1
    winner = results.index(True)
    assert await cache.get("lock") == str(winner).encode()


async def test_set_nx_succeeds_again_once_the_key_expired(cache: Cache) -> None:
    assert await cache.set_nx("lock", b"a", ttl=0.2) is True
    await asyncio.sleep(0.3)
    assert await cache.set_nx("lock", b"b", ttl=0.2) is True
    assert await cache.get("lock") == b"b"


async def test_incr_counts_and_keeps_the_ttl_of_creation(cache: Cache) -> None:
    assert await cache.incr("count", ttl=0.3) == 1
    # A later TTL must not extend the counter's life: the window starts at creation.
    assert await cache.incr("count", 5, ttl=60) == 6
    assert await cache.get("count") == b"6"
    await asyncio.sleep(0.4)
    assert await cache.get("count") is None
    assert await cache.incr("count") == 1


async def test_incr_is_atomic_under_concurrency(cache: Cache) -> None:
    await asyncio.gather(*(cache.incr("count", ttl=5) for _ in range(100)))
    assert await cache.get("count") == b"100"


async def test_incr_of_a_non_integer_raises_value_error(cache: Cache) -> None:
    await cache.set("text", b"hello")
    with pytest.raises(ValueError, match="integer"):
        await cache.incr("text")


async def test_incr_many_adds_to_each_counter_and_reads_with_zero(cache: Cache) -> None:
    assert await cache.incr_many({}, ttl=5) == []
    assert await cache.incr_many({"a": 3, "b": 0}, ttl=5) == [3, 0]
    assert await cache.incr_many({"b": 2, "a": 0, "c": 1}, ttl=5) == [2, 3, 1]
    assert await cache.get("a") == b"3"


async def test_incr_many_keeps_the_ttl_of_creation(cache: Cache) -> None:
    assert await cache.incr_many({"count": 1}, ttl=0.3) == [1]
    assert await cache.incr_many({"count": 1}, ttl=60) == [2]
    await asyncio.sleep(0.4)
    assert await cache.get("count") is None


async def test_incr_many_is_atomic_under_concurrency(cache: Cache) -> None:
    await asyncio.gather(*(cache.incr_many({"x": 1, "y": 2}, ttl=5) for _ in range(50)))
    assert await cache.incr_many({"x": 0, "y": 0}, ttl=5) == [50, 100]


async def test_incr_many_of_a_non_integer_raises_value_error(cache: Cache) -> None:
    await cache.set("text", b"hello")
    with pytest.raises(ValueError, match="integer"):
        await cache.incr_many({"text": 1}, ttl=5)


async def test_hit_allows_limit_events_then_denies_until_the_window_slides(cache: Cache) -> None:
    decisions = [await cache.hit("rate/t1", limit=3, window=0.5) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, True]
    assert [d.remaining for d in decisions] == [2, 1, 0]

    denied = await cache.hit("rate/t1", limit=3, window=0.5)
    assert not denied.allowed
    assert denied.remaining == 0
    assert 0 < denied.retry_after <= 0.5

    await asyncio.sleep(denied.retry_after + 0.05)
    again = await cache.hit("rate/t1", limit=3, window=0.5)
    assert again.allowed


async def test_hit_window_slides_rather_than_resets(cache: Cache) -> None:
    assert (await cache.hit("rate", limit=2, window=0.6)).allowed
    await asyncio.sleep(0.3)
    assert (await cache.hit("rate", limit=2, window=0.6)).allowed
    denied = await cache.hit("rate", limit=2, window=0.6)
    # Only the first hit leaves soon (about 0.3 s); the second stays until about 0.6 s from now.
    assert not denied.allowed
    assert 0 < denied.retry_after <= 0.35

    await asyncio.sleep(denied.retry_after + 0.05)
    assert (await cache.hit("rate", limit=2, window=0.6)).allowed
    second = await cache.hit("rate", limit=2, window=0.6)
    assert not second.allowed
    assert 0 < second.retry_after < 0.6


async def test_hit_keys_are_independent(cache: Cache) -> None:
    assert (await cache.hit("rate/t1", limit=1, window=5)).allowed
    assert not (await cache.hit("rate/t1", limit=1, window=5)).allowed
    assert (await cache.hit("rate/t2", limit=1, window=5)).allowed


async def test_deleting_a_rate_key_resets_its_window(cache: Cache) -> None:
    assert (await cache.hit("rate/t1", limit=1, window=5)).allowed
    assert not (await cache.hit("rate/t1", limit=1, window=5)).allowed
    await cache.delete("rate/t1")
    assert (await cache.hit("rate/t1", limit=1, window=5)).allowed


async def test_publish_reaches_every_subscriber_of_the_channel(cache: Cache) -> None:
    first = await _listening(cache, "invalidate")
    second = await _listening(cache, "invalidate")
    other = await _listening(cache, "other")
    try:
        await cache.publish("invalidate", b"tenant/t1/config")
        assert await _next_real(first) == b"tenant/t1/config"
        assert await _next_real(second) == b"tenant/t1/config"

        await cache.publish("other", b"elsewhere")
        assert await _next_real(other) == b"elsewhere"
    finally:
        for messages in (first, second, other):
            await messages.aclose()


async def test_close_ends_open_subscriptions(make_cache: MakeCache) -> None:
    cache = await make_cache()
    messages = await _listening(cache, "invalidate")
    await cache.close()
    async with asyncio.timeout(5):
        remaining = [message async for message in messages]
    assert set(remaining) <= {b"probe"}


async def test_ping_is_true_when_reachable(cache: Cache) -> None:
    assert await cache.ping() is True


async def test_namespaces_do_not_see_each_others_keys(make_cache: MakeCache) -> None:
    first, second = await make_cache(), await make_cache()
    await first.set("shared-name", b"first")
    assert await second.get("shared-name") is None
    assert await second.set_nx("shared-name", b"second") is True
    assert await first.get("shared-name") == b"first"
    assert await second.get("shared-name") == b"second"


@pytest.mark.services
async def test_redis_keys_carry_the_namespace_prefix() -> None:
    namespace = _namespace()
    cache = RedisCache(REDIS_URL, namespace=namespace)
    raw = aioredis.Redis.from_url(REDIS_URL)
    try:
        await cache.set("tenant/t1/k", b"v", ttl=5)
        assert await raw.get(f"{namespace}:tenant/t1/k") == b"v"
    finally:
        await cache.close()
        await raw.aclose()
        await _drop_namespace(namespace)


async def test_redis_ping_is_false_when_unreachable() -> None:
    cache = RedisCache(f"redis://127.0.0.1:{free_port()}/0", namespace=_namespace())
    try:
        assert await cache.ping() is False
    finally:
        await cache.close()


async def test_create_cache_picks_the_backend_from_settings(tmp_path: Path) -> None:
    assert isinstance(create_cache(Settings(redis_url="")), MemoryCache)
    file_cache = create_cache(Settings(redis_url="", embedded_cache="file", data_dir=tmp_path))
    assert isinstance(file_cache, FileCache)
    await file_cache.close()
    assert (tmp_path / "cache.sqlite3").exists()
    redis_cache = create_cache(Settings(redis_url=REDIS_URL, namespace="xypr-test"))
    assert isinstance(redis_cache, RedisCache)


# --- in-process cache only ----------------------------------------------------------------------


class _FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_cache_forgets_expired_keys_and_windows_without_reading_them() -> None:
    clock = _FakeClock()
    cache = MemoryCache(clock=clock)
    for i in range(5000):
        await cache.set(f"k{i}", b"v", ttl=1)
        await cache.hit(f"rate{i}", limit=5, window=1)
        await cache.set("hot", str(i).encode(), ttl=30)  # rewritten with a TTL: stale deadlines pile up
    clock.now += 2
    await cache.set("fresh", b"v")
    # White-box on purpose: the promise is bounded memory, which no public method can observe.
    assert set(cache._values) == {"hot", "fresh"}
    assert cache._windows == {}
    assert len(cache._deadlines) <= 2 * 2 + 1024


async def test_memory_cache_slow_subscriber_keeps_only_the_newest_messages() -> None:
    cache = MemoryCache(subscriber_buffer=3)
    messages = await _listening(cache, "ch")
    for i in range(10):
        await cache.publish("ch", str(i).encode())
    assert [await anext(messages) for _ in range(3)] == [b"7", b"8", b"9"]
    await messages.aclose()
    await cache.close()


# --- the file cache shared by processes ---------------------------------------------------------

_RACE = """
import asyncio, sys, time
from pathlib import Path
from xypr.backends.cache.file import FileCache

async def main() -> None:
    cache = FileCache(Path(sys.argv[1]), namespace="race")
    while time.time() < float(sys.argv[4]):  # every racer starts at the same moment
        time.sleep(0.001)
    won = 0
    for i in range(int(sys.argv[2])):
        await cache.incr("counter")
        await cache.hit("window", limit=10_000, window=60)
        won += await cache.set_nx(f"claim-{i}", sys.argv[3].encode())
    await cache.close()
    print(won)

asyncio.run(main())
"""


async def test_file_cache_counters_claims_and_windows_are_atomic_across_processes(tmp_path: Path) -> None:
    path, rounds, processes = tmp_path / "cache.sqlite3", 2000, 3
    FileCache(path, namespace="race")  # the schema exists before the racers start
    start = str(time.time() + 5)  # after every interpreter has started
    racers = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _RACE, str(path), str(rounds), f"p{n}", start, stdout=asyncio.subprocess.PIPE
        )
        for n in range(processes)
    ]
    async with asyncio.timeout(60):
        outputs = [await racer.communicate() for racer in racers]
    assert [racer.returncode for racer in racers] == [0] * processes
    cache = FileCache(path, namespace="race")
    try:
        assert await cache.incr("counter", 0) == rounds * processes
        # Every claim has exactly one winner among the processes.
        assert sum(int(out) for out, _ in outputs) == rounds
        # Every hit was counted: the window is exactly full now.
        assert not (await cache.hit("window", limit=rounds * processes, window=60)).allowed
    finally:
        await cache.close()


async def test_file_cache_publishes_to_subscribers_of_another_process(tmp_path: Path) -> None:
    here = FileCache(tmp_path / "cache.sqlite3", namespace="ns", poll_interval=0.02)
    there = FileCache(tmp_path / "cache.sqlite3", namespace="ns", poll_interval=0.02)
    try:
        await here.publish("invalidate", b"before subscribing")  # not delivered: published before
        messages = there.subscribe("invalidate")
        first = asyncio.ensure_future(anext(messages))
        await asyncio.sleep(0.05)
        await here.publish("invalidate", b"tenant/t1")
        async with asyncio.timeout(5):
            assert await first == b"tenant/t1"
        await messages.aclose()
    finally:
        await here.close()
        await there.close()


async def test_file_cache_keeps_keys_across_a_restart_and_drops_expired_ones(tmp_path: Path) -> None:
    clock = _FakeClock()
    cache = FileCache(tmp_path / "cache.sqlite3", clock=clock)
    await cache.set("dedupe", b"1", ttl=3600)
    for i in range(100):
        await cache.set(f"k{i}", b"v", ttl=1)
    clock.now += 31
    await cache.set("trigger", b"v")  # a write half a minute later purges what expired
    await cache.close()
    reopened = FileCache(tmp_path / "cache.sqlite3", clock=clock)
    try:
        assert await reopened.get("dedupe") == b"1"
        with sqlite3.connect(tmp_path / "cache.sqlite3") as raw:
            assert raw.execute("SELECT key FROM cache_values ORDER BY key").fetchall() == [
                ("xypr:dedupe",),
                ("xypr:trigger",),
            ]
    finally:
        await reopened.close()


async def test_file_cache_is_readable_by_its_user_only(tmp_path: Path) -> None:
    cache = FileCache(tmp_path / "cache.sqlite3")
    try:
        await cache.set("genesys-token", b"secret", ttl=60)
        for name in ("cache.sqlite3", "cache.sqlite3-wal"):
            assert (tmp_path / name).stat().st_mode & 0o077 == 0, name
    finally:
        await cache.close()
