"""The process runtime: settings plus every backend and client a service needs, opened once."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from xypr.backends.broker import create_broker
from xypr.backends.broker.base import Broker
from xypr.backends.cache import create_cache
from xypr.backends.cache.base import Cache
from xypr.backends.db import Database, create_database, migrate
from xypr.backends.storage import create_object_store
from xypr.backends.storage.base import ObjectStore
from xypr.config import Settings
from xypr.core.http import AiohttpPoster, JsonPoster, create_http_client
from xypr.core.retry import RetryPolicy
from xypr.core.secretbox import SecretBox
from xypr.genesys.client import GenesysClient
from xypr.tenants.service import TenantDirectory
from xypr.whatsapp.client import GraphClient

__all__ = ["Runtime"]


@dataclass(slots=True)
class Runtime:
    """Everything a service touches; created by `Runtime.open`, released by `close`."""

    settings: Settings
    database: Database
    broker: Broker
    cache: Cache
    store: ObjectStore
    box: SecretBox
    tenants: TenantDirectory
    http: httpx.AsyncClient
    poster: JsonPoster
    genesys: GenesysClient
    graph: GraphClient
    retry: RetryPolicy

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        run_migrations: bool = False,
        worker_index: int = 0,
        worker_count: int = 1,
        store: ObjectStore | None = None,
    ) -> Runtime:
        """Connect every backend (and migrate the database first when asked)."""
        if not settings.master_key.get_secret_value():
            raise ValueError("XYPR_MASTER_KEY is not set (generate one with `xypr keygen`)")
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        box = SecretBox(settings.master_key.get_secret_value())
        database = create_database(settings.effective_database_url, pool_size=settings.database_pool_size)
        if run_migrations:
            await migrate(database)
        broker = create_broker(settings, worker_index=worker_index, worker_count=worker_count)
        await broker.connect()
        cache = create_cache(settings)
        store = store or create_object_store(settings)
        http = create_http_client(timeout=settings.http_timeout_seconds)
        poster = AiohttpPoster(timeout=settings.http_timeout_seconds)
        return cls(
            settings=settings,
            database=database,
            broker=broker,
            cache=cache,
            store=store,
            box=box,
            tenants=TenantDirectory(database, box),
            http=http,
            poster=poster,
            genesys=GenesysClient(
                http, cache, api_url=settings.genesys_api_url, login_url=settings.genesys_login_url, poster=poster
            ),
            graph=GraphClient(
                http, graph_url=settings.meta_graph_url, api_version=settings.meta_api_version, poster=poster
            ),
            retry=RetryPolicy(
                max_attempts=settings.max_attempts,
                base=settings.retry_base_seconds,
                cap=settings.retry_max_seconds,
                horizon=settings.retry_horizon_seconds,
            ),
        )

    async def close(self) -> None:
        """Release every connection (best effort, in reverse order of opening)."""
        await self.poster.aclose()
        await self.http.aclose()
        await self.store.close()
        await self.cache.close()
        await self.broker.close()
        await self.database.close()
