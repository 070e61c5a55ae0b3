"""Fixtures of the fault suite: private services and emulators for the whole module, a deployment per test."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fault_harness import Deployment, Upstreams
from tests.support.fault_report import write_report
from tests.support.fault_services import PrivateServices, missing_binaries

_RESULTS: list[dict[str, object]] = []


@pytest.fixture(scope="session")
def private_services() -> Iterator[PrivateServices]:
    """PostgreSQL, Redis and RabbitMQ of the suite's own (never the shared ones), stopped at the end."""
    missing = missing_binaries()
    if missing:
        pytest.skip("fault suite needs " + ", ".join(missing))
    services = PrivateServices()
    try:
        services.start()
        yield services
    finally:
        services.close()


@pytest.fixture(scope="session")
def upstreams(private_services: PrivateServices) -> Iterator[Upstreams]:
    """The Meta and Genesys emulators in their own process."""
    emulators = Upstreams(private_services.root)
    try:
        emulators.start()
        yield emulators
    finally:
        emulators.stop()


@pytest.fixture(scope="session")
def _deployment(private_services: PrivateServices, upstreams: Upstreams) -> Iterator[Deployment]:
    """One database, namespace and tenant; the gateway and two workers, started once for every scenario.

    Each scenario writes in conversations of its own (its run id is in every text), so what an
    earlier scenario left behind is never counted again.
    """
    root = Path(tempfile.mkdtemp(prefix="xypr-fault-run-"))
    item = Deployment(private_services, upstreams, root)
    try:
        item.prepare()
        item.start_all()
        yield item
    finally:
        item.stop_all()
        item.drop_database()
        if os.environ.get("XYPR_FAULT_KEEP_LOGS"):
            print(f"fault run logs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def deployment(_deployment: Deployment) -> Iterator[Deployment]:
    """The running deployment, every process ready and no upstream fault in force (bounded)."""
    _deployment.heal()
    yield _deployment
    _deployment.heal()


@pytest.fixture
def record_result() -> Iterator[list[dict[str, object]]]:
    """Where a scenario puts its figures; they go to the report (`XYPR_FAULT_REPORT`) at the end."""
    rows: list[dict[str, object]] = []
    yield rows
    _RESULTS.extend(rows)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the figures of this run as JSON and markdown when `XYPR_FAULT_REPORT` names a file."""
    target = os.environ.get("XYPR_FAULT_REPORT")
    if target and _RESULTS:
        path = Path(target)
        path.write_text(json.dumps(_RESULTS, indent=2) + "\n")
        path.with_suffix(".md").write_text(write_report(_RESULTS))
