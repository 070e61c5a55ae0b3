"""`Runtime.open` closes what it opened when a later backend fails, and `close` closes every backend."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from xypr import runtime as runtime_module
from xypr.backends.broker.base import BrokerUnavailable
from xypr.config import Settings
from xypr.core.secretbox import generate_master_key
from xypr.runtime import Runtime


class _Closing:
    """Stands in for a backend; records its closing in `closed`."""

    def __init__(self, name: str, closed: list[str], *, fail_connect: bool = False) -> None:
        self.name = name
        self.closed = closed
        self.fail_connect = fail_connect

    async def connect(self) -> None:
        if self.fail_connect:
            raise BrokerUnavailable("refused")

    async def close(self) -> None:
        self.closed.append(self.name)


def _settings(tmp_path: Path) -> Settings:
    return Settings(master_key=SecretStr(generate_master_key()), data_dir=tmp_path)


def _patch(monkeypatch: pytest.MonkeyPatch, closed: list[str], *, fail_connect: bool) -> None:
    monkeypatch.setattr(runtime_module, "create_database", lambda *a, **k: _Closing("database", closed))
    monkeypatch.setattr(
        runtime_module, "create_broker", lambda *a, **k: _Closing("broker", closed, fail_connect=fail_connect)
    )
    monkeypatch.setattr(runtime_module, "create_cache", lambda *a, **k: _Closing("cache", closed))
    monkeypatch.setattr(runtime_module, "create_object_store", lambda *a, **k: _Closing("store", closed))


async def test_a_backend_that_fails_to_open_closes_those_opened_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[str] = []
    _patch(monkeypatch, closed, fail_connect=True)
    with pytest.raises(BrokerUnavailable):
        await Runtime.open(_settings(tmp_path))
    assert closed == ["broker", "database"]


async def test_close_closes_every_backend_in_reverse_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[str] = []
    _patch(monkeypatch, closed, fail_connect=False)
    opened = await Runtime.open(_settings(tmp_path))
    await opened.close()
    assert closed == ["store", "cache", "broker", "database"]
