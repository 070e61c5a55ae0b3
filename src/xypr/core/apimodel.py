"""The one JSON convention of Xypr's API: camelCase names and RFC 3339 UTC timestamps ending in `Z`.

Every request and answer model of the API derives from `ApiModel`. Input is accepted under the camelCase
name and under the Python (snake_case) name, so tenant files written before the convention keep working;
answers always use camelCase. The one deliberate exception is the OAuth 2 token endpoint (`/auth/token`,
and `/auth/refresh` for API clients), whose names (`access_token`, `token_type`, `expires_in`,
`refresh_token`, `grant_type`…) are fixed by RFC 6749 and stay snake_case.
Payloads of the upstream APIs carried inside an answer (WhatsApp Graph API bodies, Genesys Open Messaging
messages) keep their own wire format: they are theirs, not ours.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic.alias_generators import to_camel, to_snake

__all__ = ["ApiModel", "camel_path", "integral", "snake_path", "utc"]


def utc(moment: datetime) -> datetime:
    """The same instant in UTC; a naive time is taken as UTC (how the databases store them)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def integral(value: Any) -> Any:
    """A JSON number with no fraction (`3.0`) as the integer it is (JSON Schema counts it as an integer)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def camel_path(path: str) -> str:
    """A dotted field path in the API's convention: `whatsapp.access_token` → `whatsapp.accessToken`."""
    return ".".join(to_camel(part) if "_" in part else part for part in path.split("."))


def snake_path(path: str) -> str:
    """A dotted field path in Python's names: `whatsapp.accessToken` → `whatsapp.access_token`."""
    return ".".join(to_snake(part) for part in path.split("."))


class ApiModel(BaseModel):
    """Base of every API body: camelCase on the wire (snake_case accepted too), UTC times with `Z`."""

    # Strict: a body is taken as its schema says (no "5" for 5, no false for 0.0), so what the OpenAPI
    # document describes is exactly what is accepted.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True, strict=True)

    @field_validator("*", mode="after")
    @classmethod
    def _times_in_utc(cls, value: Any) -> Any:
        # pydantic writes an aware UTC time with `Z`; a naive one would go out without any zone.
        return utc(value) if isinstance(value, datetime) else value
