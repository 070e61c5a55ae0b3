"""Object storage for media: S3 API (production) or a local folder with signed URLs (embedded)."""

from __future__ import annotations

from xypr.backends.storage.base import ObjectNotFound, ObjectStore, StoredObject
from xypr.config import Settings
from xypr.core.secretbox import SecretBox

__all__ = ["ObjectNotFound", "ObjectStore", "StoredObject", "create_object_store"]


def create_object_store(settings: Settings) -> ObjectStore:
    """S3 when `XYPR_S3_ENDPOINT` is set, else a folder under `data_dir` with signed download URLs."""
    if settings.s3_endpoint:
        # Imported here so the embedded mode never pays for loading botocore.
        from xypr.backends.storage.s3 import S3ObjectStore

        return S3ObjectStore(
            endpoint=settings.s3_endpoint,
            bucket=settings.s3_bucket,
            region=settings.s3_region,
            access_key=settings.s3_access_key.get_secret_value(),
            secret_key=settings.s3_secret_key.get_secret_value(),
        )
    from xypr.backends.storage.local import LocalObjectStore

    master_key = settings.master_key.get_secret_value()
    if not master_key.strip():
        raise ValueError(
            "XYPR_MASTER_KEY is required: the local media store signs its download URLs with a key "
            "derived from it (generate one with xypr.core.secretbox.generate_master_key())"
        )
    return LocalObjectStore(
        settings.data_dir / "media",
        public_url=settings.public_url,
        signing_key=SecretBox(master_key).derive("media-url"),
    )
