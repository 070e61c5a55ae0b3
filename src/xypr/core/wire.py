"""Enumerations of an upstream's wire format: known values as members, anything new kept, not refused."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import GetJsonSchemaHandler
from pydantic_core import CoreSchema

__all__ = ["WireEnum"]


class WireEnum(StrEnum):
    """A `StrEnum` whose unknown values parse as an `UNKNOWN` member that keeps the value it was given.

    Meta and Genesys add values without notice; a webhook must not be refused for one. `Kind("hologram")`
    is named `UNKNOWN`, compares and prints as `"hologram"` (so a note to the agent can still name it), and
    `.known` is False. Subclasses declare `UNKNOWN = "unknown"` for the value they default to.
    """

    @classmethod
    def _missing_(cls, value: object) -> WireEnum | None:
        if not isinstance(value, str):
            return None
        member = str.__new__(cls, value)
        member._name_ = "UNKNOWN"
        member._value_ = value
        return member

    @property
    def known(self) -> bool:
        """Whether the value is one this code knows (a declared member other than `UNKNOWN`)."""
        return self._name_ != "UNKNOWN"

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        """Documented as what it accepts: any string, the known values as examples (not an `enum`, which
        would promise a refusal that never comes)."""
        schema: dict[str, Any] = dict(handler(core_schema))
        known = schema.pop("enum", None) or []
        schema["type"] = "string"
        schema["examples"] = [value for value in known if value != "unknown"]
        return schema
