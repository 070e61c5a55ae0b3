"""The sandbox views: recorded dataclasses as JSON, filtered by attribute equality."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

__all__ = ["select"]


def select(records: Iterable[Any], **filters: str | None) -> list[dict[str, Any]]:
    """Records (dataclasses) as dicts, keeping those whose attributes equal every non-empty filter."""
    wanted = {k: v for k, v in filters.items() if v}
    return [asdict(r) for r in records if all(getattr(r, k) == v for k, v in wanted.items())]
