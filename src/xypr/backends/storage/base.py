"""The object store interface; keys of tenant data start with `tenant/<tenant id>/`."""

from __future__ import annotations

import abc
from dataclasses import dataclass

__all__ = ["ObjectNotFound", "ObjectStore", "StoredObject"]


class ObjectNotFound(Exception):
    """No object under that key."""


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An object's bytes and content type."""

    data: bytes
    content_type: str


class ObjectStore(abc.ABC):
    """Durable blobs with URLs an outside party (Genesys) can fetch for a limited time."""

    @abc.abstractmethod
    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        """Store (or overwrite) an object."""

    @abc.abstractmethod
    async def get(self, key: str) -> StoredObject:
        """Read an object; raises `ObjectNotFound`."""

    @abc.abstractmethod
    async def exists(self, key: str) -> bool:
        """True when the key holds an object."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove an object (absent is fine)."""

    @abc.abstractmethod
    async def url(self, key: str, *, expires_in: int) -> str:
        """A URL that fetches the object without other credentials until it expires."""

    @abc.abstractmethod
    async def ping(self) -> bool:
        """True when reachable (for `/ready`)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections."""
