"""Which failures mean "a backend (database, cache, broker) cannot be reached right now"."""

from __future__ import annotations

import asyncpg
import sqlalchemy.exc
from redis import exceptions as redis_errors

from xypr.backends.broker.base import BrokerUnavailable
from xypr.core.errors import BackendUnavailable

__all__ = ["CONNECTION_FAILURES", "backend_unavailable"]

# The exception types a lost or refused backend connection surfaces as; each is checked further below
# (an SQLAlchemy `InterfaceError` is also what a misuse raises, and is only a connection failure when
# asyncpg or the pool says so).
CONNECTION_FAILURES: tuple[type[Exception], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DBAPIError,
    sqlalchemy.exc.TimeoutError,  # no pooled connection came free in time
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    BrokerUnavailable,
    ConnectionError,
    TimeoutError,
)

# asyncpg's words for a connection that is gone or wedged (the pool throws it away afterwards).
_CONNECTION_WORDS = ("connection is closed", "connection was closed", "another operation is in progress")


def _is_connection_failure(exc: BaseException) -> bool:
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        if exc.connection_invalidated or isinstance(exc, sqlalchemy.exc.OperationalError):
            return True
        return exc.orig is not None and _is_connection_failure(exc.orig)
    if isinstance(exc, asyncpg.InterfaceError):
        return any(words in str(exc) for words in _CONNECTION_WORDS)
    if isinstance(exc, sqlalchemy.exc.InterfaceError):  # not a DBAPIError: the driver's own wrapper
        return any(words in str(exc) for words in _CONNECTION_WORDS)
    if isinstance(exc, OSError) and not isinstance(exc, ConnectionError | TimeoutError):
        return False
    if type(exc).__name__ == "InterfaceError":  # the asyncpg dialect's adapted InterfaceError
        return any(words in str(exc) for words in _CONNECTION_WORDS)
    return isinstance(exc, CONNECTION_FAILURES)


def backend_unavailable(exc: BaseException) -> BackendUnavailable | None:
    """A `BackendUnavailable` when `exc` (or what caused it) is a lost or refused backend connection."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, BackendUnavailable):
            return current
        if _is_connection_failure(current):
            return BackendUnavailable(f"a backend is unavailable ({type(current).__name__}); retry later")
        current = current.__cause__ or current.__context__
    return None
