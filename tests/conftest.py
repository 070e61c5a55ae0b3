"""Shared fixtures: backend settings for the embedded and the production (real services) variants."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import fastapi.dependencies.models
import pytest
from pydantic import SecretStr

from tests.support.moto import free_port, start_moto_server, stop_moto_server
from tests.support.rabbit import drop_namespace, purge_test_namespaces
from xypr.config import Settings
from xypr.core.secretbox import generate_master_key

POSTGRES_ADMIN = os.environ.get("XYPR_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("XYPR_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("XYPR_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An S3 API endpoint: `XYPR_TEST_S3_ENDPOINT`, or a moto server started for this session."""
    given = os.environ.get("XYPR_TEST_S3_ENDPOINT")
    if given:
        yield given
        return
    port = free_port()
    process = start_moto_server(port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_moto_server(process)


_NAMESPACES: list[Settings] = []


@pytest.fixture(scope="session", autouse=True)
def _purge_leftover_rabbit_namespaces() -> None:
    """In CI (the suite alone on its machine), first remove test queues an earlier run left behind."""
    if os.environ.get("CI") != "true":
        return
    try:
        removed = asyncio.run(purge_test_namespaces(AMQP_URL))
    except Exception as exc:  # a missing rabbitmqctl must not stop the suite
        print(f"could not purge leftover RabbitMQ test queues: {exc!r}")
        return
    if removed:
        print(f"removed {removed} leftover RabbitMQ test queues")


def _drop(settings_list: list[Settings]) -> None:
    for settings in settings_list:
        try:
            asyncio.run(drop_namespace(settings))
        except Exception as exc:  # the tests' own outcome matters more than the clean-up
            print(f"could not drop RabbitMQ namespace {settings.namespace}: {exc!r}")


@pytest.fixture(autouse=True)
def _drop_rabbit_namespaces() -> Iterator[None]:
    """After each test, delete the RabbitMQ topology of the namespaces made during that test.

    Namespaces made before it (by module- or session-scoped fixtures) live until the session ends.
    """
    first = len(_NAMESPACES)
    yield
    made_here = _NAMESPACES[first:]
    del _NAMESPACES[first:]
    _drop(made_here)


@pytest.fixture(autouse=True)
def _forget_the_test_apps() -> Iterator[None]:
    """After each test, empty FastAPI's module-level caches of endpoint callables (4,096 entries each).

    They keep the endpoints, and an endpoint made in a factory keeps its app: over the whole suite the
    caches held a few hundred apps (6.4 million objects, 1.5 GB), and a full garbage collection of that
    heap paused the test process for up to 6.8 s, long enough for a connect to the bridge's own
    emulators to time out. A server builds its apps once, so this is a test-suite matter only.
    """
    yield
    for cached in vars(fastapi.dependencies.models).values():
        if callable(getattr(cached, "cache_clear", None)):
            cached.cache_clear()


@pytest.fixture(scope="session", autouse=True)
def _drop_remaining_rabbit_namespaces() -> Iterator[None]:
    """At the end of the session, delete the namespaces of wider-scoped fixtures too."""
    yield
    _drop(list(_NAMESPACES))
    _NAMESPACES.clear()


def _admin(statement: str) -> None:
    async def run() -> None:
        admin = await asyncpg.connect(POSTGRES_ADMIN)
        try:
            await admin.execute(statement)
        finally:
            await admin.close()

    asyncio.run(run())


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"xypr_test_{uuid.uuid4().hex[:12]}"
    _admin(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN.rsplit("/", 1)[0].split("://", 1)[1]
    try:
        yield f"postgresql+asyncpg://{base}/{name}"
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def embedded_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Settings for the embedded backends (SQLite, SQLite queue, in-process cache, local folder)."""
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "master_key": SecretStr(generate_master_key()),
        "retry_base_seconds": 0.05,
        "retry_max_seconds": 0.5,
        "log_level": "WARNING",
        # Many test processes share one PostgreSQL (max 100 connections): keep each pool small.
        "database_pool_size": 4,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


def production_settings(tmp_path: Path, *, database_url: str, s3_endpoint: str, **overrides: object) -> Settings:
    """Settings for the real services: PostgreSQL, RabbitMQ, Redis and S3 (moto), in a unique namespace."""
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    settings = embedded_settings(
        tmp_path,
        database_url=database_url,
        amqp_url=AMQP_URL,
        redis_url=REDIS_URL,
        s3_endpoint=s3_endpoint,
        s3_bucket=namespace,
        s3_access_key=SecretStr("testing"),
        s3_secret_key=SecretStr("testing"),
        namespace=namespace,
        **overrides,
    )
    # Left behind, every test's quorum queues would pile up until RabbitMQ stalls.
    _NAMESPACES.append(settings)
    return settings


@pytest.fixture(params=["embedded", pytest.param("services", marks=pytest.mark.services)])
def backend_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings for each backend variant in turn: embedded, then the real local services."""
    if request.param == "embedded":
        yield embedded_settings(tmp_path)
        return
    yield production_settings(
        tmp_path,
        database_url=request.getfixturevalue("postgres_url"),
        s3_endpoint=request.getfixturevalue("s3_endpoint"),
    )
