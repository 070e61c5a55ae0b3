"""The fault suite's figures as a markdown table (pasted into docs/reliability.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["write_report"]

_COLUMNS = (
    ("scenario", "Scenario"),
    ("acknowledged", "Acknowledged"),
    ("delivered", "Delivered"),
    ("lost", "Lost"),
    ("duplicated", "Duplicated"),
    ("reordered", "Reordered"),
    ("never_acknowledged", "Never acknowledged"),
    ("dead_letters", "Dead letters"),
    ("fault_seconds", "Fault (s)"),
    ("recovery_seconds", "Recovery (s)"),
    ("max_latency_seconds", "Slowest delivery (s)"),
    ("healthy", "Healthy after"),
)


def write_report(rows: Sequence[dict[str, Any]]) -> str:
    """One table row per scenario run, in the order they ran."""
    lines = ["| " + " | ".join(title for _, title in _COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    for row in rows:
        cells = []
        for key, _ in _COLUMNS:
            value = row.get(key, "")
            if key == "healthy":
                value = "yes" if value is True else "NO"
            cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
