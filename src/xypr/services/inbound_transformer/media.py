"""Copies a customer's media into our object store once per `(tenant, media id)`: download (whatsapp/),
store, record (state/), then a URL Genesys can fetch for as long as `XYPR_MEDIA_URL_TTL_SECONDS`."""

from __future__ import annotations

import asyncio
import hashlib
import re
from typing import Final

import httpx

from xypr.backends.db import Database
from xypr.backends.storage.base import ObjectStore
from xypr.core.logging import get_logger
from xypr.core.metrics import INBOUND_MEDIA
from xypr.core.retry import RetryPolicy
from xypr.runtime import Runtime
from xypr.state.media import find_media, record_media
from xypr.state.models import Media
from xypr.tenants.service import TenantRuntime
from xypr.transform.inbound import StoredMedia
from xypr.whatsapp.media import MediaDownload, MediaDownloader, MediaUnavailable, media_extension
from xypr.whatsapp.models import WaMedia

__all__ = ["DOWNLOAD_ATTEMPTS", "MediaCopier", "media_object_key"]

log = get_logger(__name__)

# Tries per media before the agent gets the caption with a note instead; Meta keeps media ids for 7 days,
# but the message must not wait behind a broken download for long.
DOWNLOAD_ATTEMPTS: Final = 3
_UNSAFE_KEY_CHARS: Final = re.compile(r"[^A-Za-z0-9._-]")


def media_object_key(tenant_id: str, wamid: str, mime_type: str) -> str:
    """`tenant/<id>/media/<wamid as a safe name><ext>`: base64 wamids become URL-safe, nothing else survives."""
    name = wamid.replace("+", "-").replace("/", "_").rstrip("=")
    name = _UNSAFE_KEY_CHARS.sub("", name)[:180].strip(".") or hashlib.sha256(wamid.encode()).hexdigest()[:32]
    return f"tenant/{tenant_id}/media/{name}{media_extension(mime_type)}"


class MediaCopier:
    """Copies a message's media once per `(tenant, media id)` into the object store; a URL for Genesys after."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        database: Database,
        store: ObjectStore,
        graph_url: str,
        api_version: str,
        url_ttl_seconds: int,
        policy: RetryPolicy,
    ) -> None:
        self._downloader = MediaDownloader(http, graph_url=graph_url, api_version=api_version)
        self._database = database
        self._store = store
        self._url_ttl = url_ttl_seconds
        self._policy = policy

    @classmethod
    def from_runtime(cls, runtime: Runtime) -> MediaCopier:
        """A copier on the runtime's client, database and store; backoff from the pipeline's settings."""
        settings = runtime.settings
        return cls(
            http=runtime.http,
            database=runtime.database,
            store=runtime.store,
            graph_url=settings.meta_graph_url,
            api_version=settings.meta_api_version,
            url_ttl_seconds=settings.media_url_ttl_seconds,
            policy=RetryPolicy(
                max_attempts=DOWNLOAD_ATTEMPTS, base=settings.retry_base_seconds, cap=settings.retry_max_seconds
            ),
        )

    async def copy(self, tenant: TenantRuntime, *, wamid: str, kind: str, media: WaMedia) -> StoredMedia:
        """The stored copy of the media, downloading it (bounded retries) unless a copy exists.

        Raises `MediaUnavailable` when WhatsApp cannot give it to us; failures of our own store or
        database propagate, so the stage retries the whole message instead of dropping the media.
        """
        existing = await self._existing(tenant.id, media.id)
        if existing is not None:
            INBOUND_MEDIA.labels("reused").inc()
            return existing
        attempt = 0
        while True:
            attempt += 1
            try:
                download = await self._downloader.download(tenant.whatsapp_credentials, kind, media)
                break
            except MediaUnavailable as exc:
                if not exc.retryable or self._policy.exhausted(attempt):
                    INBOUND_MEDIA.labels("unavailable").inc()
                    log.warning(
                        "media.unavailable",
                        tenant_id=tenant.id,
                        wamid=wamid,
                        media_id=media.id,
                        attempts=attempt,
                        reason=exc.reason,
                    )
                    raise
                INBOUND_MEDIA.labels("retried").inc()
                wait = self._policy.delay(attempt)
                log.info("media.retry", tenant_id=tenant.id, media_id=media.id, attempt=attempt, wait=round(wait, 3))
                await asyncio.sleep(wait)
        stored = await self._keep(tenant.id, wamid=wamid, media=media, download=download)
        INBOUND_MEDIA.labels("copied").inc()
        return stored

    # -- keeping the copy -------------------------------------------------------------------------------------------

    async def _existing(self, tenant_id: str, media_id: str) -> StoredMedia | None:
        row = await find_media(self._database, tenant_id=tenant_id, media_id=media_id)
        if row is None or not await self._store.exists(row.object_key):
            return None
        return await self._stored(row)

    async def _stored(self, row: Media) -> StoredMedia:
        url = await self._store.url(row.object_key, expires_in=self._url_ttl)
        return StoredMedia(url=url, mime_type=row.mime_type, filename=row.filename, sha256=row.sha256)

    async def _keep(self, tenant_id: str, *, wamid: str, media: WaMedia, download: MediaDownload) -> StoredMedia:
        key = media_object_key(tenant_id, wamid, download.mime_type)
        await self._store.put(key, download.data, content_type=download.mime_type)
        row = await record_media(
            self._database,
            tenant_id=tenant_id,
            media_id=media.id,
            wamid=wamid,
            object_key=key,
            mime_type=download.mime_type,
            sha256=download.sha256_hex,
            size=len(download.data),
            filename=download.filename,
        )
        return await self._stored(row)
