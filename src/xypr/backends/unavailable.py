"""Which failures mean "a backend (database, cache, broker) cannot be reached right now"."""

from __future__ import annotations

import sqlite3

import asyncpg
import sqlalchemy.exc
from redis import exceptions as redis_errors

from xypr.backends.broker.base import BrokerUnavailable
from xypr.core.errors import BackendUnavailable, TransientError

__all__ = ["CONNECTION_FAILURES", "backend_unavailable", "is_transient"]

# The exception types a lost or refused backend connection surfaces as; each is checked further below
# (an SQLAlchemy `InterfaceError` is also what a misuse raises, and is only a connection failure when
# asyncpg or the pool says so).
CONNECTION_FAILURES: tuple[type[Exception], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DBAPIError,
    sqlalchemy.exc.TimeoutError,  # no pooled connection came free in time
    sqlite3.OperationalError,  # SQLite busy or locked past the busy timeout, read directly (as through the ORM)
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


# Exceptions of the backends' drivers that mean "unreachable for now", not "wrong": transient for the retry
# policy (wider than CONNECTION_FAILURES, which decides a 503, because a retry costs nothing when in doubt).
_TRANSIENT_BACKEND_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # ConnectionError, refused, reset
    TimeoutError,
    BrokerUnavailable,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # "connection is closed", "another operation is in progress"
    asyncpg.CannotConnectNowError,  # the server is starting up
    asyncpg.AdminShutdownError,
    asyncpg.exceptions.InternalClientError,
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    sqlalchemy.exc.OperationalError,  # SQLite busy / locked, connection refused through the ORM
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,  # pool exhausted
    sqlite3.OperationalError,
)


def is_transient(error: BaseException) -> bool:
    """True for failures that time fixes: an upstream's transient answer, a backend unreachable or restarting."""
    if isinstance(error, TransientError):
        return True
    if isinstance(error, _TRANSIENT_BACKEND_ERRORS):
        return True
    cause = error.__cause__ or error.__context__
    # SQLAlchemy wraps the driver's error (DBAPIError.orig); our own wrappers chain theirs.
    orig = getattr(error, "orig", None)
    return any(isinstance(inner, _TRANSIENT_BACKEND_ERRORS) for inner in (cause, orig) if inner is not None)
