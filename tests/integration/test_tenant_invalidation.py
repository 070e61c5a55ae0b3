"""Tenant changes reach every process: one runtime announces on Redis, another forgets its cached copy."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from sqlalchemy import update

from tests.conftest import production_settings
from tests.support.bridge import eventually, tenant_spec
from xypr.runtime import Runtime
from xypr.tenants.models import Tenant
from xypr.tenants.service import announce_tenant_change, create_tenant, follow_tenant_changes, parse_tenant_file


@pytest.mark.services
async def test_a_change_announced_by_one_process_is_seen_at_once_by_another_sharing_redis(
    tmp_path: Path, postgres_url: str, s3_endpoint: str
) -> None:
    # Redis and PostgreSQL are what the two processes share here; the broker plays no part.
    settings = production_settings(tmp_path, database_url=postgres_url, s3_endpoint=s3_endpoint)
    settings = settings.model_copy(update={"amqp_url": ""})
    changer = await Runtime.open(settings, run_migrations=True)
    reader = await Runtime.open(settings)
    follower = asyncio.create_task(follow_tenant_changes(reader.cache, reader.tenants))
    try:
        tenant = await create_tenant(changer.database, changer.box, parse_tenant_file(tenant_spec()))
        cached = await reader.tenants.by_id(tenant.id)
        assert cached is not None
        async with changer.database.session() as session:
            await session.execute(update(Tenant).where(Tenant.id == tenant.id).values(status="suspended"))

        still_cached = await reader.tenants.by_id(tenant.id)
        assert still_cached is not None
        assert still_cached.status == "active"  # the reader's 30 s cache has not expired

        async def reader_sees_the_change() -> bool:
            # Announced again on each try: the reader's subscription may not be established yet.
            await announce_tenant_change(changer.cache, changer.tenants, tenant.id, "suspended")
            await asyncio.sleep(0.05)
            seen = await reader.tenants.by_id(tenant.id)
            return seen is not None and seen.status == "suspended"

        assert await eventually(reader_sees_the_change, within=5)
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        await reader.close()
        await changer.close()
