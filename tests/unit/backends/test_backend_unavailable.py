"""A lost or refused backend connection is "backend unavailable" (503 + Retry-After), nothing else is."""

from __future__ import annotations

import asyncpg
import pytest
import sqlalchemy.exc
from redis import exceptions as redis_errors

from xypr.backends.broker.base import BrokerUnavailable
from xypr.backends.unavailable import backend_unavailable
from xypr.core.errors import BackendUnavailable


def _caused(outer: Exception, inner: BaseException) -> Exception:
    outer.__cause__ = inner
    return outer


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.InterfaceError("cannot perform operation: connection is closed"),
        asyncpg.InterfaceError("cannot switch to state 12; another operation is in progress"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        sqlalchemy.exc.InterfaceError(
            "SELECT 1", None, asyncpg.InterfaceError("cannot perform operation: connection is closed")
        ),
        sqlalchemy.exc.OperationalError("connect", None, ConnectionRefusedError(111, "Connection refused")),
        sqlalchemy.exc.DBAPIError("SELECT 1", None, Exception("gone"), connection_invalidated=True),
        sqlalchemy.exc.TimeoutError("QueuePool limit of size 20 overflow 0 reached"),
        ConnectionRefusedError(111, "Connection refused"),
        ConnectionResetError(104, "Connection reset by peer"),
        redis_errors.ConnectionError("Error 111 connecting to 127.0.0.1:6379"),
        redis_errors.TimeoutError("Timeout reading from socket"),
        BrokerUnavailable("no confirm"),
        _caused(RuntimeError("lookup failed"), asyncpg.InterfaceError("connection is closed")),
    ],
)
def test_a_lost_or_refused_connection_is_backend_unavailable_with_retry_after(exc: Exception) -> None:
    unavailable = backend_unavailable(exc)
    assert isinstance(unavailable, BackendUnavailable)
    assert unavailable.status_code == 503
    assert unavailable.headers["Retry-After"] == "5"


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bad"),
        KeyError("x"),
        FileNotFoundError(2, "No such file"),
        asyncpg.InterfaceError("the server expects 2 arguments for this query, 1 was passed"),
        sqlalchemy.exc.IntegrityError("INSERT", None, Exception("duplicate key")),
        sqlalchemy.exc.InterfaceError("SELECT", None, Exception("Error binding parameter 1")),
    ],
)
def test_other_failures_are_not_mistaken_for_an_unavailable_backend(exc: Exception) -> None:
    assert backend_unavailable(exc) is None
