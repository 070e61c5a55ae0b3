"""Media rows: one stored copy per `(tenant, WhatsApp media id)`."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from xypr.backends.db import Database
from xypr.state.models import Media

__all__ = ["find_media", "record_media"]


async def find_media(database: Database, *, tenant_id: str, media_id: str) -> Media | None:
    """The recorded copy of a media, if any."""
    async with database.session() as session:
        return await session.scalar(select(Media).where(Media.tenant_id == tenant_id, Media.media_id == media_id))


async def record_media(
    database: Database,
    *,
    tenant_id: str,
    media_id: str,
    wamid: str,
    object_key: str,
    mime_type: str,
    sha256: str,
    size: int,
    filename: str,
) -> Media:
    """Record (or update) the stored copy of a media; a copy another worker recorded at the same moment wins."""
    try:
        async with database.session() as session:
            row = await session.scalar(select(Media).where(Media.tenant_id == tenant_id, Media.media_id == media_id))
            if row is None:
                row = Media(tenant_id=tenant_id, media_id=media_id)
                session.add(row)
            row.wamid = wamid
            row.object_key = object_key
            row.mime_type = mime_type
            row.sha256 = sha256
            row.size = size
            row.filename = filename
    except IntegrityError:
        # Another worker recorded the same media at the same moment: its row is as good as ours.
        raced = await find_media(database, tenant_id=tenant_id, media_id=media_id)
        if raced is None:
            raise
        return raced
    return row
