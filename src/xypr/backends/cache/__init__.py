"""Cache and rate limits: Redis (production), or embedded: in-process, or a file shared by this machine's processes."""

from __future__ import annotations

from xypr.backends.cache.base import Cache, RateDecision
from xypr.config import Settings

__all__ = ["Cache", "RateDecision", "create_cache"]


def create_cache(settings: Settings) -> Cache:
    """Redis when `XYPR_REDIS_URL` is set, else the embedded cache `XYPR_EMBEDDED_CACHE` names."""
    if settings.redis_url:
        # Imported here so the embedded mode never loads the Redis client.
        from xypr.backends.cache.redis import RedisCache

        return RedisCache(settings.redis_url, namespace=settings.namespace)
    if settings.embedded_cache == "file":
        from xypr.backends.cache.file import FileCache

        return FileCache(settings.data_dir / "cache.sqlite3", namespace=settings.namespace)
    from xypr.backends.cache.memory import MemoryCache

    return MemoryCache()
