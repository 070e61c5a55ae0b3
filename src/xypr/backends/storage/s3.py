"""The S3 object store (AWS S3, MinIO, Ceph …) through aiobotocore, with presigned download URLs."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from xypr.backends.storage.base import ObjectNotFound, ObjectStore, StoredObject

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

__all__ = ["S3ObjectStore"]

_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_NO_BUCKET_CODES = frozenset({"404", "NoSuchBucket", "NotFound"})


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3ObjectStore(ObjectStore):
    """`ObjectStore` on one S3 bucket, path-style addressed so MinIO and moto work without DNS.

    The client is opened, and the bucket created if missing, on first use.
    """

    def __init__(self, *, endpoint: str, bucket: str, region: str, access_key: str, secret_key: str) -> None:
        self._endpoint = endpoint
        self._bucket = bucket
        self._region = region
        self._access_key = access_key
        self._secret_key = secret_key
        self._session = get_session()
        self._stack = contextlib.AsyncExitStack()
        self._client: S3Client | None = None
        self._bucket_ready = False
        self._lock = asyncio.Lock()

    @property
    def bucket(self) -> str:
        """The bucket holding the objects."""
        return self._bucket

    async def _s3(self) -> S3Client:
        """The open client, with the bucket known to exist."""
        if self._client is not None and self._bucket_ready:
            return self._client
        async with self._lock:
            if self._client is None:
                config = AioConfig(
                    signature_version="s3v4",
                    s3={"addressing_style": "path"},
                    connect_timeout=5,
                    read_timeout=60,
                    retries={"max_attempts": 3, "mode": "standard"},
                )
                self._client = await self._stack.enter_async_context(
                    self._session.create_client(
                        "s3",
                        endpoint_url=self._endpoint,
                        region_name=self._region,
                        aws_access_key_id=self._access_key or None,
                        aws_secret_access_key=self._secret_key or None,
                        config=config,
                    )
                )
            if not self._bucket_ready:
                await self._create_bucket_if_missing(self._client)
                self._bucket_ready = True
            return self._client

    async def _create_bucket_if_missing(self, client: S3Client) -> None:
        try:
            await client.head_bucket(Bucket=self._bucket)
            return
        except ClientError as exc:
            if _error_code(exc) not in _NO_BUCKET_CODES:
                raise
        try:
            if self._region == "us-east-1":
                # us-east-1 rejects an explicit LocationConstraint naming itself.
                await client.create_bucket(Bucket=self._bucket)
            else:
                await client.create_bucket(
                    Bucket=self._bucket,
                    CreateBucketConfiguration={"LocationConstraint": self._region},  # type: ignore[typeddict-item]
                )
        except ClientError as exc:
            # Another process created it between our HEAD and CREATE.
            if _error_code(exc) != "BucketAlreadyOwnedByYou":
                raise

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        """Store (or overwrite) an object."""
        client = await self._s3()
        await client.put_object(Bucket=self._bucket, Key=key, Body=data, ContentType=content_type)

    async def get(self, key: str) -> StoredObject:
        """Read an object; raises `ObjectNotFound`."""
        client = await self._s3()
        try:
            response = await client.get_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                raise ObjectNotFound(key) from exc
            raise
        async with response["Body"] as body:
            data = await body.read()
        return StoredObject(data=data, content_type=response.get("ContentType") or "application/octet-stream")

    async def exists(self, key: str) -> bool:
        """True when the key holds an object."""
        client = await self._s3()
        try:
            await client.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                return False
            raise
        return True

    async def delete(self, key: str) -> None:
        """Remove an object (absent is fine)."""
        client = await self._s3()
        await client.delete_object(Bucket=self._bucket, Key=key)

    async def url(self, key: str, *, expires_in: int) -> str:
        """A presigned GET URL on the configured endpoint, valid for `expires_in` seconds."""
        if expires_in <= 0:
            raise ValueError("expires_in must be positive")
        client = await self._s3()
        return await client.generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=expires_in
        )

    async def ping(self) -> bool:
        """True when the bucket answers (creating it on the first call if needed)."""
        try:
            client = await self._s3()
            await client.head_bucket(Bucket=self._bucket)
        except (ClientError, BotoCoreError, OSError, TimeoutError):
            return False
        return True

    async def close(self) -> None:
        """Close the client's connections."""
        await self._stack.aclose()
        self._stack = contextlib.AsyncExitStack()
        self._client = None
        self._bucket_ready = False
