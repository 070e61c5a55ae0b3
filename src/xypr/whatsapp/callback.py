"""Our id on every agent message part sent to Meta (`biz_opaque_callback_data`), echoed in its statuses.

A send whose answer was lost (the process died, the connection broke after the request left) has an
unknown outcome. Meta offers no idempotency key, but it echoes `biz_opaque_callback_data` in every
status webhook of the message; the statuses path records the part as accepted when such a status
arrives, and whatsapp-api, before sending a part whose earlier attempt has an unknown outcome, waits
a bounded time for that record instead of sending again.
"""

from __future__ import annotations

from typing import Final

__all__ = ["PART_TTL_SECONDS", "attempt_key", "parse_part_marker", "part_key", "part_marker"]

_PREFIX: Final = "xypr:"
# Meta keeps statuses coming for days; a redelivery within this time still finds what was accepted.
PART_TTL_SECONDS: Final = 7 * 24 * 3600.0


def part_marker(message_id: str, part: int) -> str:
    """The `biz_opaque_callback_data` of part `part` of our tracked message `message_id`."""
    return f"{_PREFIX}{message_id}:{part}"


def parse_part_marker(data: str | None) -> tuple[str, int] | None:
    """`(message_id, part)` of a marker of ours, else None (another tool's data, or none)."""
    if not data or not data.startswith(_PREFIX):
        return None
    message_id, _, part = data[len(_PREFIX) :].rpartition(":")
    return (message_id, int(part)) if message_id and part.isdigit() else None


def part_key(tenant_id: str, message_id: str, part: int) -> str:
    """Cache key holding the wamid Meta gave an accepted part."""
    return f"{tenant_id}:wa-part:{message_id}:{part}"


def attempt_key(tenant_id: str, message_id: str, part: int) -> str:
    """Cache key present while a part's send has been attempted with no known outcome."""
    return f"{tenant_id}:wa-attempt:{message_id}:{part}"
