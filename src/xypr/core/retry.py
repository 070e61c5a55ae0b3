"""The one retry policy: bounded exponential backoff with jitter, honouring `Retry-After`."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`max_attempts` tries in all; the wait before try n+1 grows as base·2^(n-1), capped."""

    max_attempts: int = 6
    base: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int, *, retry_after: float | None = None, growth: float = 2.0) -> float:
        """Seconds to wait after failed try number `attempt` (1-based)."""
        ceiling = min(self.cap, self.base * growth ** (attempt - 1))
        # "Equal jitter": never less than half the step, so a storm cannot retry in lockstep.
        wait = random.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return wait

    def exhausted(self, attempt: int) -> bool:
        """True when try number `attempt` was the last one allowed."""
        return attempt >= self.max_attempts
