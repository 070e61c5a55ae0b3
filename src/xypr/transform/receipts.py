"""Open Messaging receipts for agent messages (pure): how a WhatsApp outcome reaches the agent."""

from __future__ import annotations

from typing import Any

__all__ = ["failed_receipt", "receipt"]


def receipt(
    *,
    genesys_message_id: str,
    customer_id: str,
    customer_id_type: str,
    status: str,
    time: str,
    reasons: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The body of `POST …/inbound/open/receipt` (`status` is Delivered or Failed)."""
    body: dict[str, Any] = {
        "id": genesys_message_id,
        "channel": {"to": {"id": customer_id, "idType": customer_id_type}, "time": time},
        "status": status,
        "isFinalReceipt": True,
    }
    if reasons:
        body["reasons"] = reasons
    return body


def failed_receipt(
    *, genesys_message_id: str, customer_id: str, customer_id_type: str, reason: str, message: str, time: str
) -> dict[str, Any]:
    """A `Failed` receipt with one reason (code from the documented list, readable message)."""
    return receipt(
        genesys_message_id=genesys_message_id,
        customer_id=customer_id,
        customer_id_type=customer_id_type,
        status="Failed",
        time=time,
        reasons=[{"code": reason, "message": message[:1000]}],
    )
