"""Cache and rate limits: Redis (production) or in-process (embedded)."""

from __future__ import annotations

from xypr.backends.cache.base import Cache, RateDecision
from xypr.config import Settings

__all__ = ["Cache", "RateDecision", "create_cache"]


def create_cache(settings: Settings) -> Cache:
    """Redis when `XYPR_REDIS_URL` is set, else the in-process cache."""
    if settings.redis_url:
        # Imported here so the embedded mode never loads the Redis client.
        from xypr.backends.cache.redis import RedisCache

        return RedisCache(settings.redis_url, namespace=settings.namespace)
    from xypr.backends.cache.memory import MemoryCache

    return MemoryCache()
