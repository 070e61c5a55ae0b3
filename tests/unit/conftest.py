"""Unit tests reach no network: a connection attempt fails the test (integration tests are the place for it)."""

from __future__ import annotations

import socket
from typing import Any

import pytest


class NetworkInUnitTest(AssertionError):
    """A unit test tried to open a connection."""


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise NetworkInUnitTest(f"unit tests do not connect (to {address!r}); move the test to tests/integration")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
