"""The one retry policy: exponential backoff with jitter and a cap, honouring `Retry-After`.

Two budgets: a failure the upstream or a backend will get over (`TransientError`, a dropped
connection, a database restarting: `xypr.backends.unavailable.is_transient`) is retried until
`horizon` seconds have passed since the first try; anything else (a bug) gets `max_attempts` tries,
so a poison event does not hold its conversation for hours.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from xypr.core.logging import get_logger

__all__ = ["RetryPolicy", "keep_trying"]

log = get_logger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Waits grow as base·growth^(n-1) up to `cap`; transient failures until `horizon`, others `max_attempts` tries."""

    max_attempts: int = 6
    base: float = 0.5
    cap: float = 60.0
    horizon: float | None = None

    def delay(self, attempt: int, *, retry_after: float | None = None, growth: float = 2.0) -> float:
        """Seconds to wait after failed try number `attempt` (1-based)."""
        # min() before the power would overflow: growth^attempt gets huge during an hours-long outage.
        steps = min(attempt - 1, 64)
        ceiling = min(self.cap, self.base * growth**steps)
        # "Equal jitter": never less than half the step, so a storm cannot retry in lockstep.
        wait = random.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return wait

    def exhausted(self, attempt: int, *, elapsed: float = 0.0, transient: bool = False) -> bool:
        """True when no further try is allowed after try number `attempt`, `elapsed` seconds after the first."""
        if transient and self.horizon is not None:
            return elapsed >= self.horizon
        return attempt >= self.max_attempts


async def keep_trying(operation: Callable[[], Awaitable[T]], *, policy: RetryPolicy, what: str) -> T | None:
    """Run `operation` until it succeeds, waiting between tries; None when the horizon passed first.

    For bookkeeping after an upstream accepted something: the effect happened, so its record is
    retried here, in place, and never the effect itself. Every failure counts as transient (the
    record itself is known to be right); giving up is logged, the caller carries on.
    """
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            return await operation()
        except Exception as exc:
            elapsed = time.monotonic() - started
            if policy.exhausted(attempt, elapsed=elapsed, transient=True) or (
                policy.horizon is None and attempt >= policy.max_attempts
            ):
                log.error("bookkeeping.abandoned", what=what, attempt=attempt, error=f"{type(exc).__name__}: {exc}")
                return None
            wait = policy.delay(attempt)
            log.warning("bookkeeping.retry", what=what, attempt=attempt, wait=round(wait, 3), error=str(exc)[:300])
            await asyncio.sleep(wait)
