"""The retry policy: transient failures until the horizon, bugs a bounded number of tries."""

from __future__ import annotations

import asyncpg
import pytest

from xypr.backends.broker.base import BrokerUnavailable
from xypr.backends.unavailable import is_transient
from xypr.core.errors import PermanentError, TransientError
from xypr.core.retry import RetryPolicy, keep_trying


def test_transient_failures_are_retried_until_the_horizon_not_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3, horizon=60.0)
    assert not policy.exhausted(50, elapsed=59.0, transient=True)
    assert policy.exhausted(50, elapsed=60.0, transient=True)


def test_unexpected_errors_get_max_attempts_tries() -> None:
    policy = RetryPolicy(max_attempts=3, horizon=60.0)
    assert not policy.exhausted(2, elapsed=0.1, transient=False)
    assert policy.exhausted(3, elapsed=0.1, transient=False)


def test_waits_are_capped_even_after_hours_of_tries_and_honour_retry_after() -> None:
    policy = RetryPolicy(base=0.5, cap=60.0)
    assert 30.0 <= policy.delay(5000, growth=4.0) <= 60.0  # no overflow, capped, equal jitter
    assert policy.delay(1, retry_after=120.0) == 120.0


@pytest.mark.parametrize(
    "error",
    [
        TransientError("Genesys HTTP 503"),
        ConnectionResetError(),
        TimeoutError(),
        BrokerUnavailable("down"),
        asyncpg.InterfaceError("cannot perform operation: connection is closed"),
        asyncpg.exceptions.InternalClientError("cannot switch to state 12; another operation (3) is in progress"),
    ],
)
def test_outages_of_upstreams_and_backends_are_transient(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize("error", [KeyError("bug"), PermanentError("refused"), ValueError("bad")])
def test_bugs_and_permanent_errors_are_not_transient(error: BaseException) -> None:
    assert not is_transient(error)


async def test_keep_trying_retries_bookkeeping_until_it_succeeds() -> None:
    calls = 0

    async def record() -> str:
        nonlocal calls
        calls += 1
        if calls < 4:
            raise ConnectionResetError("stale connection")
        return "recorded"

    assert await keep_trying(record, policy=RetryPolicy(base=0.001, cap=0.002, horizon=5.0), what="test") == "recorded"
    assert calls == 4
