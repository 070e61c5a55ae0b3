"""Fixtures of the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from xypr.config import Settings
from xypr.runtime import Runtime


@pytest.fixture
async def runtime(backend_settings: Settings) -> AsyncIterator[Runtime]:
    """Every backend connected, on a migrated database; embedded and real services (`backend_settings`)."""
    runtime = await Runtime.open(backend_settings, run_migrations=True)
    try:
        yield runtime
    finally:
        await runtime.close()
