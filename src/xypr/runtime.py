"""The process runtime: settings plus every backend and client a service needs, opened once."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import httpx

from xypr.backends.broker import create_broker
from xypr.backends.broker.base import Broker
from xypr.backends.cache import create_cache
from xypr.backends.cache.base import Cache
from xypr.backends.cache.batched import BatchedLimiter
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
    # Rate limits on hot paths (webhooks): counted here, shared through `cache` in batches.
    limits: BatchedLimiter
    store: ObjectStore
    box: SecretBox
    tenants: TenantDirectory
    http: httpx.AsyncClient
    poster: JsonPoster
    genesys: GenesysClient
    graph: GraphClient
    retry: RetryPolicy
    # Base URLs of processes this one started and answers for (`xypr run`'s worker processes): its `/ready`
    # is theirs too.
    companions: list[str] = field(default_factory=list)
    _resources: AsyncExitStack = field(default_factory=AsyncExitStack, repr=False)

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
        # Each backend is registered for closing as soon as it is open: when a later one fails to open,
        # those opened before it are closed (in reverse order) and the error goes on.
        async with AsyncExitStack() as stack:
            database = create_database(settings.effective_database_url, pool_size=settings.database_pool_size)
            stack.push_async_callback(database.close)
            if run_migrations:
                await migrate(database)
            broker = create_broker(settings, worker_index=worker_index, worker_count=worker_count)
            stack.push_async_callback(broker.close)
            await broker.connect()
            cache = create_cache(settings)
            stack.push_async_callback(cache.close)
            limits = BatchedLimiter(cache)
            stack.push_async_callback(limits.close)  # before the cache closes: its last counts still reach it
            store = store or create_object_store(settings)
            stack.push_async_callback(store.close)
            http = create_http_client(timeout=settings.http_timeout_seconds)
            stack.push_async_callback(http.aclose)
            poster = AiohttpPoster(timeout=settings.http_timeout_seconds)
            stack.push_async_callback(poster.aclose)
            runtime = cls(
                settings=settings,
                database=database,
                broker=broker,
                cache=cache,
                limits=limits,
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
                _resources=stack.pop_all(),
            )
        return runtime

    async def close(self) -> None:
        """Release every connection, in reverse order of opening (each one even when another fails)."""
        await self._resources.aclose()
