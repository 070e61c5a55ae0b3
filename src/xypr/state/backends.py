"""What state needs of the process: its backends, not the whole runtime (which wires clients and tenants above)."""

from __future__ import annotations

from typing import Protocol

from xypr.backends.broker.base import Broker
from xypr.backends.cache.base import Cache
from xypr.backends.db import Database

__all__ = ["StateBackends"]


class StateBackends(Protocol):
    """The database, cache and broker state reads and writes through (`xypr.runtime.Runtime` is one)."""

    @property
    def database(self) -> Database: ...

    @property
    def cache(self) -> Cache: ...

    @property
    def broker(self) -> Broker: ...
