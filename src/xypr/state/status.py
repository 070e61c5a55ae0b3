"""How far a tracked message got: the one ranking of statuses, and how an observed status moves it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["StatusStep", "advance", "furthest", "least_advanced", "rank", "reported_order"]

_RANK: Final = {"received": 0, "sent": 1, "delivered": 2, "read": 3}
# The order a message's statuses happen in, as Meta reports them: the ranked ones, then `played` (a voice
# note heard, after `read`; tracked as read) and `failed` (final).
_REPORTED: Final = (*_RANK, "played", "failed")


def rank(status: str | None) -> int:
    """received < sent < delivered < read; an unknown status counts as received. `failed` is not ranked:
    it is final, and `advance` decides what it does."""
    return _RANK.get(status or "received", 0)


def reported_order(status: str) -> int:
    """Where `status` comes among a message's statuses (received first, failed last); an unknown one after all."""
    return _REPORTED.index(status) if status in _REPORTED else len(_REPORTED)


@dataclass(frozen=True, slots=True)
class StatusStep:
    """What one status does to a tracked agent message: its new status and the receipt Genesys gets."""

    status: str
    receipt: Literal["Delivered", "Failed"] | None


def advance(current: str, observed: str) -> StatusStep:
    """The effect of `observed` on a message at `current` (pure): statuses only move forward, failed is final.

    Genesys knows `Delivered` and `Failed` only, both final: the first of delivered/read sends
    `Delivered`; a failure after that (or anything after a failure) changes nothing.
    """
    if current == "failed":
        return StatusStep("failed", None)
    if observed == "failed":
        if rank(current) >= rank("delivered"):
            return StatusStep(current, None)
        return StatusStep("failed", "Failed")
    if rank(observed) <= rank(current):
        return StatusStep(current, None)
    reaches_delivered = rank(current) < rank("delivered") <= rank(observed)
    return StatusStep(observed, "Delivered" if reaches_delivered else None)


def furthest(statuses: set[str], *, default: str) -> str:
    """The most advanced of `statuses` (`failed` excluded by the caller)."""
    return max(statuses, key=rank, default=default)


def least_advanced(statuses: list[str], *, default: str) -> str:
    """The least advanced of `statuses`: how far a message made of several parts got as a whole."""
    return min(statuses, key=rank, default=default)
