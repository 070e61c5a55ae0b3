"""The embedded object store: files in a local folder, fetched through HMAC-signed `/media/` URLs."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from xypr.backends.storage.base import ObjectNotFound, ObjectStore, StoredObject
from xypr.core.errors import Forbidden, NotFound

__all__ = ["LocalObjectStore", "create_media_router"]

_DEFAULT_CONTENT_TYPE = "application/octet-stream"


def _check_key(key: str) -> tuple[str, ...]:
    """The key's path segments; raises ValueError for any key that could leave the root folder."""
    if not key or key.startswith("/") or "\\" in key or any(ord(char) < 0x20 for char in key):
        raise ValueError(f"invalid object key {key!r}")
    parts = tuple(key.split("/"))
    if any(part in {"", ".", ".."} for part in parts):
        raise ValueError(f"invalid object key {key!r}")
    return parts


class LocalObjectStore(ObjectStore):
    """`ObjectStore` in a folder: `objects/<key>` holds the bytes, `meta/<key>.json` the content type.

    The metadata lives in a parallel tree so that no key (say `a.json`) can collide with the
    metadata of another. Writes go to `tmp/` first and are renamed into place, so a reader sees
    the old object or the new one, never half of one.
    """

    def __init__(self, root: Path | str, *, public_url: str, signing_key: bytes) -> None:
        if len(signing_key) < 16:
            raise ValueError("the media signing key must be at least 16 bytes")
        self._root = Path(root).resolve()
        self._objects = self._root / "objects"
        self._meta = self._root / "meta"
        self._tmp = self._root / "tmp"
        for folder in (self._objects, self._meta, self._tmp):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._objects_real = self._objects.resolve()
        self._public_url = public_url.rstrip("/")
        self._signing_key = signing_key

    @property
    def root(self) -> Path:
        """The folder holding the objects."""
        return self._root

    def _paths(self, key: str) -> tuple[Path, Path]:
        parts = _check_key(key)
        data_path = self._objects.joinpath(*parts)
        # Defence in depth: a symlink planted inside the root must not lead outside it.
        if not data_path.resolve().is_relative_to(self._objects_real):
            raise ValueError(f"invalid object key {key!r}")
        meta_path = self._meta.joinpath(*parts[:-1], parts[-1] + ".json")
        return data_path, meta_path

    def _write_atomically(self, path: Path, content: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # `tmp/` sits on the same file system as the target, which os.replace needs to be atomic.
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(content)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    def _put(self, key: str, data: bytes, content_type: str) -> None:
        data_path, meta_path = self._paths(key)
        # Metadata first: an object whose bytes are visible always has its content type beside it.
        self._write_atomically(meta_path, json.dumps({"content_type": content_type}).encode())
        self._write_atomically(data_path, data)

    def _get(self, key: str) -> StoredObject:
        data_path, meta_path = self._paths(key)
        try:
            data = data_path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise ObjectNotFound(key) from exc
        try:
            content_type = str(json.loads(meta_path.read_bytes())["content_type"])
        except (OSError, ValueError, KeyError, TypeError):
            content_type = _DEFAULT_CONTENT_TYPE
        return StoredObject(data=data, content_type=content_type)

    def _exists(self, key: str) -> bool:
        return self._paths(key)[0].is_file()

    def _delete(self, key: str) -> None:
        data_path, meta_path = self._paths(key)
        for path in (data_path, meta_path):
            # A key that names a folder of other keys holds no object itself: nothing to delete.
            with contextlib.suppress(NotADirectoryError, IsADirectoryError):
                path.unlink(missing_ok=True)

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        """Store (or overwrite) an object."""
        await asyncio.to_thread(self._put, key, data, content_type)

    async def get(self, key: str) -> StoredObject:
        """Read an object; raises `ObjectNotFound`."""
        return await asyncio.to_thread(self._get, key)

    async def exists(self, key: str) -> bool:
        """True when the key holds an object."""
        return await asyncio.to_thread(self._exists, key)

    async def delete(self, key: str) -> None:
        """Remove an object (absent is fine)."""
        await asyncio.to_thread(self._delete, key)

    def _signature(self, key: str, expires: int) -> str:
        message = f"{key}\n{expires}".encode()
        return hmac.new(self._signing_key, message, hashlib.sha256).hexdigest()

    async def url(self, key: str, *, expires_in: int) -> str:
        """A `/media/` URL on the public base URL, signed and valid for `expires_in` seconds."""
        _check_key(key)
        if expires_in <= 0:
            raise ValueError("expires_in must be positive")
        expires = int(time.time()) + expires_in
        signature = self._signature(key, expires)
        return f"{self._public_url}/media/{quote(key, safe='/')}?expires={expires}&signature={signature}"

    def verify_signature(self, key: str, expires: int, signature: str) -> bool:
        """True when `signature` was made by `url()` for this key and `expires` has not passed."""
        if expires < time.time():
            return False
        # Bytes, not str: compare_digest refuses non-ASCII text, and the signature comes from a URL.
        return hmac.compare_digest(self._signature(key, expires).encode(), signature.lower().encode())

    async def ping(self) -> bool:
        """True when the folder is writable."""
        return await asyncio.to_thread(os.access, self._objects, os.W_OK)

    async def close(self) -> None:
        """Nothing to release."""


def _error(error: Forbidden | NotFound) -> JSONResponse:
    return JSONResponse(error.to_body(), status_code=error.status_code)


def create_media_router(store: LocalObjectStore) -> APIRouter:
    """The `GET /media/{key}` route that serves objects of `store` to holders of a signed URL."""
    router = APIRouter()

    @router.get("/media/{key:path}", include_in_schema=False, response_model=None)
    async def download_media(key: str, expires: str = "", signature: str = "") -> Response:
        try:
            expires_at = int(expires)
        except ValueError:
            return _error(Forbidden("missing or malformed media URL signature"))
        if not store.verify_signature(key, expires_at, signature):
            return _error(Forbidden("media URL signature is invalid or has expired"))
        try:
            stored = await store.get(key)
        except (ObjectNotFound, ValueError):
            return _error(NotFound("no such media object"))
        return Response(
            content=stored.data,
            headers={
                # Set verbatim: `media_type=` would append a charset to text types we did not store.
                "Content-Type": stored.content_type,
                "Cache-Control": f"private, max-age={max(0, expires_at - int(time.time()))}",
                "X-Content-Type-Options": "nosniff",
                # Media comes from WhatsApp users: an HTML or SVG file must not run as our origin.
                "Content-Security-Policy": "default-src 'none'; sandbox",
            },
        )

    return router
