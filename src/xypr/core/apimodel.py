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

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel, to_snake

__all__ = ["ApiModel", "camel_path", "integral", "not_null", "snake_path", "utc", "variants"]


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


def _is_time(annotation: Any) -> bool:
    """Whether a field holds a time (`datetime`, `datetime | None`)."""
    return annotation is datetime or datetime in get_args(annotation)


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A property's schema without its `null` alternative."""
    options = [each for each in schema.get("anyOf", []) if each.get("type") != "null"]
    if len(options) == 1:
        return {**{k: v for k, v in schema.items() if k not in ("anyOf", "default")}, **options[0]}
    return schema


def not_null(schema: dict[str, Any]) -> None:
    """`json_schema_extra` of an optional field whose `null` is refused: absent is fine, null is not."""
    options = [each for each in schema.pop("anyOf", []) if each.get("type") != "null"]
    schema.pop("default", None)
    if len(options) == 1:
        schema.update(options[0])
    elif options:
        schema["anyOf"] = options


def variants(*branches: tuple[dict[str, list[Any]], tuple[str, ...]]) -> Callable[[dict[str, Any]], None]:
    """`json_schema_extra` for a body whose required fields depend on another field's value.

    Each branch is ({field: allowed values}, fields then required); the schema becomes `anyOf` one
    complete object schema per branch, which generators and validators alike read without guessing.
    """

    def rewrite(schema: dict[str, Any]) -> None:
        base = {k: v for k, v in schema.items() if k not in ("title", "description", "examples")}
        for key in base:
            del schema[key]
        alternatives = []
        for allowed, required in branches:
            properties = dict(base["properties"])
            for name, values in allowed.items():
                properties[name] = {**_not_null(properties[name]), "enum": values}
            for name in required:
                properties[name] = _not_null(properties[name])
            needed = sorted({*base.get("required", []), *required})
            alternatives.append({**base, "properties": properties, "required": needed})
        schema["anyOf"] = alternatives

    return rewrite


class ApiModel(BaseModel):
    """Base of every API body: camelCase on the wire (snake_case accepted too), UTC times with `Z`."""

    # Strict: a body is taken as its schema says (no "5" for 5, no false for 0.0), so what the OpenAPI
    # document describes is exactly what is accepted.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True, strict=True)

    @field_validator("*", mode="before")
    @classmethod
    def _times_from_text(cls, value: Any, info: ValidationInfo) -> Any:
        # Strict mode takes a time from JSON text but not from a Python str (a parsed JSON document).
        if isinstance(value, str) and info.field_name and _is_time(cls.model_fields[info.field_name].annotation):
            try:
                return datetime.fromisoformat(value)
            except ValueError:
                return value  # the field's own validation names the problem
        return value

    @field_validator("*", mode="after")
    @classmethod
    def _times_in_utc(cls, value: Any) -> Any:
        # pydantic writes an aware UTC time with `Z`; a naive one would go out without any zone.
        return utc(value) if isinstance(value, datetime) else value
