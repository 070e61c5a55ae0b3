"""Pure arithmetic over a load run and the arrivals at the emulators: rates, percentiles and the counts.

The counts every run reports: sent, arrived, duplicated, lost, out of order. "Out of order" is per
sender: a message that reached the emulator after a later message of the same sender (the generator
never has two messages of one sender in flight, so the order Xypr accepted them in is their order).
An acknowledged message that has not arrived is *lost* when arrivals had stopped (nothing came for a
while), and *pending* when the bench stopped waiting while messages were still arriving.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from bench.load import DROPPED, FAILED, LATE_AFTER, NOT_SENT

__all__ = ["Arrival", "LoadRecords", "acknowledgements", "end_to_end", "percentiles"]


def percentiles(values: Iterable[float], scale: float = 1000.0) -> dict[str, float | None]:
    """Nearest-rank p50 / p95 / p99 / max, scaled (seconds → milliseconds by default)."""
    ordered = sorted(values)
    if not ordered:
        return {"p50": None, "p95": None, "p99": None, "max": None}

    def rank(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))] * scale, 2)

    return {"p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99), "max": round(ordered[-1] * scale, 2)}


@dataclass(frozen=True, slots=True)
class LoadRecords:
    """The per-request columns written by the load generator."""

    key: Sequence[str]
    sender: Sequence[int]
    seq: Sequence[int]
    due: Sequence[float | None]
    sent: Sequence[float | None]
    latency: Sequence[float | None]
    status: Sequence[int]

    @classmethod
    def from_output(cls, output: dict[str, Any]) -> LoadRecords:
        """From the generator's JSON output."""
        records = output["records"]
        return cls(**{item.name: records[item.name] for item in fields(cls)})


@dataclass(frozen=True, slots=True)
class Arrival:
    """One accepted request at an emulator: arrival order, wall time, key, customer."""

    order: int
    at: float
    key: str
    customer: str


def acknowledgements(records: LoadRecords) -> dict[str, Any]:
    """What the webhook answered: offered, sent, dropped, late, statuses, ack rate and latency."""
    offered = sum(1 for status in records.status if status != NOT_SENT)
    sent_times = [t for t in records.sent if t is not None]
    acked = [i for i, status in enumerate(records.status) if status == 200]
    statuses: dict[str, int] = {}
    for status in records.status:
        if status not in (200, NOT_SENT, DROPPED):
            label = "error" if status == FAILED else str(status)
            statuses[label] = statuses.get(label, 0) + 1
    late = 0
    lags: list[float] = []
    for due, sent in zip(records.due, records.sent, strict=True):
        if due is not None and sent is not None:
            lags.append(sent - due)
            late += sent - due > LATE_AFTER
    ends = [records.sent[i] + records.latency[i] for i in acked]  # type: ignore[operator]
    span = (max(ends) - min(sent_times)) if ends and sent_times else 0.0
    return {
        "offered": offered,
        "sent": len(sent_times),
        "dropped": sum(1 for status in records.status if status == DROPPED),
        "late": late,
        "max_lag_ms": round(max(lags) * 1000, 1) if lags else None,
        "acked": len(acked),
        "not_acked": statuses,
        "ack_rate": round(len(acked) / span, 1) if span > 0 else None,
        "ack_ms": percentiles(records.latency[i] for i in acked),  # type: ignore[misc]
    }


def end_to_end(records: LoadRecords, arrivals: Sequence[Arrival], *, cut_off: bool = False) -> dict[str, Any]:
    """Arrived, duplicated, lost (or pending when `cut_off`), out of order, end-to-end rate and latency."""
    index_of = {key: i for i, key in enumerate(records.key)}
    first: dict[str, Arrival] = {}
    duplicated = 0
    for arrival in sorted(arrivals, key=lambda a: a.order):
        if arrival.key not in index_of:
            continue
        if arrival.key in first:
            duplicated += 1
        else:
            first[arrival.key] = arrival
    acked = {records.key[i] for i, status in enumerate(records.status) if status == 200}
    arrived = [key for key in first if key in acked]
    unexpected = [key for key in first if key not in acked]  # arrived without a 200 (timeout, error)
    missing = len(acked) - len(arrived)

    out_of_order = 0
    highest: dict[int, int] = {}
    for arrival in sorted(first.values(), key=lambda a: a.order):
        i = index_of[arrival.key]
        sender, seq = records.sender[i], records.seq[i]
        if seq < highest.get(sender, -1):
            out_of_order += 1
        else:
            highest[sender] = seq

    latencies = [first[key].at - records.sent[index_of[key]] for key in arrived]  # type: ignore[operator]
    sent_times = [records.sent[index_of[key]] for key in arrived]
    last = max((first[key].at for key in arrived), default=None)
    span = (last - min(sent_times)) if arrived and last is not None else 0.0  # type: ignore[type-var, operator]
    return {
        "arrived": len(arrived),
        "duplicated": duplicated,
        "lost": 0 if cut_off else missing,
        "pending": missing if cut_off else 0,
        "out_of_order": out_of_order,
        "unexpected": len(unexpected),
        "e2e_rate": round(len(arrived) / span, 1) if span > 0 else None,
        "e2e_ms": percentiles(latencies),
    }
