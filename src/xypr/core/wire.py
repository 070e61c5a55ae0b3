"""Enumerations of an upstream's wire format: known values as members, anything new kept, not refused."""

from __future__ import annotations

from enum import StrEnum

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
