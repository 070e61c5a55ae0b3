"""Meta statuses → tracking status and Genesys receipts: the pure rules, on the published payloads."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.contracts import contract
from xypr.services.inbound_transformer.statuses import part_progress, receipt_for
from xypr.state.status import StatusStep, advance, rank, reported_order
from xypr.whatsapp.models import WaStatus

GENESYS_ID = "4f0c4a4e7e5f4e2b9d1d1c0b5a6f7e8d"


def _status(name: str) -> WaStatus:
    return WaStatus.model_validate(contract(name)["entry"][0]["changes"][0]["value"]["statuses"][0])


def _failed(code: int, message: str, details: str = "") -> WaStatus:
    return WaStatus.model_validate(
        {"id": "wamid.F", "status": "failed", "timestamp": "1751142888", "recipient_id": "16505551234",
         "errors": [{"code": code, "title": message, "message": message, "error_data": {"details": details}}]}
    )  # fmt: skip


def _receipt(step: StatusStep, status: WaStatus) -> dict[str, Any] | None:
    return receipt_for(
        step,
        status=status,
        genesys_message_id=GENESYS_ID,
        customer_id="16505551234",
        customer_id_type="Phone",
        now_time="2026-11-21T10:00:00.000Z",
    )


@pytest.mark.parametrize(
    ("current", "observed", "expected"),
    [
        ("sent", "sent", StatusStep("sent", None)),
        ("sent", "delivered", StatusStep("delivered", "Delivered")),
        ("sent", "read", StatusStep("read", "Delivered")),  # read without delivered still counts
        ("received", "delivered", StatusStep("delivered", "Delivered")),
        ("delivered", "read", StatusStep("read", None)),  # delivered after read sends nothing more …
        ("read", "delivered", StatusStep("read", None)),  # … and never moves the status back
        ("delivered", "delivered", StatusStep("delivered", None)),
        ("read", "sent", StatusStep("read", None)),
        ("sent", "failed", StatusStep("failed", "Failed")),
        ("received", "failed", StatusStep("failed", "Failed")),
        ("failed", "delivered", StatusStep("failed", None)),  # failed is final
        ("failed", "read", StatusStep("failed", None)),
        ("failed", "failed", StatusStep("failed", None)),
        ("delivered", "failed", StatusStep("delivered", None)),  # Genesys already has a final Delivered
        ("read", "failed", StatusStep("read", None)),
    ],
)
def test_status_moves_only_forward_and_sends_delivered_once(current: str, observed: str, expected: StatusStep) -> None:
    assert advance(current, observed) == expected


def test_statuses_are_reported_in_the_order_of_their_ranks_then_played_then_failed() -> None:
    ranked = ["received", "sent", "delivered", "read"]
    happening = [*ranked, "played", "failed", "something new"]

    assert sorted(reversed(happening), key=reported_order) == happening
    assert sorted(reversed(ranked), key=rank) == sorted(ranked, key=reported_order)


def test_status_delivered_becomes_delivered_receipt_for_the_agent_message() -> None:
    status = _status("meta/webhook-status-delivered.json")

    body = _receipt(advance("sent", "delivered"), status)

    assert body == {
        "id": GENESYS_ID,
        "channel": {"to": {"id": "16505551234", "idType": "Phone"}, "time": "2025-06-18T16:22:53.000Z"},
        "status": "Delivered",
        "isFinalReceipt": True,
    }


def test_status_sent_becomes_no_receipt() -> None:
    status = _status("meta/webhook-status-v24-no-conversation.json")

    assert _receipt(advance("sent", "sent"), status) is None


def test_status_failed_from_published_payload_becomes_failed_receipt_general_error_with_meta_text() -> None:
    status = _status("meta/webhook-status-failed.json")

    body = _receipt(advance("sent", "failed"), status)

    assert body is not None
    assert body["status"] == "Failed"
    assert body["isFinalReceipt"] is True
    (reason,) = body["reasons"]
    assert reason["code"] == "GeneralError"  # 131049 has no closer Genesys reason
    assert reason["message"].startswith("(131049) This message was not delivered to maintain healthy ecosystem")
    assert "the message failed to be delivered" in reason["message"]


@pytest.mark.parametrize(
    ("code", "text", "reason"),
    [
        (131047, "Re-engagement message", "MessageExpired"),
        (130429, "Rate limit hit", "RateLimited"),
        (131056, "(Business Account, Consumer Account) pair rate limit hit", "RateLimited"),
        (131026, "Message undeliverable", "InvalidDestination"),
        (131050, "Unable to deliver the message", "RecipientOptedOut"),
        (131051, "Unsupported message type", "UnsupportedMessage"),
        (131053, "Media upload error", "MediaTypeNotAllowed"),
        (131053, "Media file size too large", "InvalidMediaContentLength"),
        (131000, "Something went wrong", "ServerError"),
        (999999, "Something new", "GeneralError"),
    ],
)
def test_status_failed_code_becomes_failed_receipt_reason(code: int, text: str, reason: str) -> None:
    body = _receipt(advance("sent", "failed"), _failed(code, text))

    assert body is not None
    assert body["reasons"] == [{"code": reason, "message": f"({code}) {text}"}]


def test_status_failed_131047_becomes_failed_receipt_message_expired_with_details() -> None:
    status = _failed(
        131047,
        "Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the customer last replied.",
    )

    body = _receipt(advance("sent", "failed"), status)

    assert body is not None
    assert body["reasons"] == [
        {
            "code": "MessageExpired",
            "message": "(131047) Re-engagement message: Message failed to send because more than 24 hours have "
            "passed since the customer last replied.",
        }
    ]


def test_status_with_a_malformed_timestamp_is_stamped_now() -> None:
    status = WaStatus.model_validate({"id": "wamid.X", "status": "read", "timestamp": "soon", "recipient_id": "1"})

    body = _receipt(advance("sent", "read"), status)

    assert body is not None
    assert body["channel"]["time"] == "2026-11-21T10:00:00.000Z"


def test_status_failed_without_errors_becomes_general_error() -> None:
    status = WaStatus.model_validate({"id": "wamid.F", "status": "failed", "timestamp": "1", "recipient_id": "1"})

    body = _receipt(advance("sent", "failed"), status)

    assert body is not None
    assert body["reasons"][0]["code"] == "GeneralError"


def test_split_text_is_delivered_only_when_every_part_is() -> None:
    parts = ["wamid.1", "wamid.2", "wamid.3"]

    assert part_progress(parts, {"wamid.1": {"delivered"}}) == "sent"
    assert part_progress(parts, {"wamid.1": {"read"}, "wamid.2": {"delivered"}, "wamid.3": {"sent"}}) == "sent"
    assert part_progress(parts, {"wamid.1": {"read"}, "wamid.2": {"delivered"}, "wamid.3": {"delivered"}}) == (
        "delivered"
    )
    assert part_progress(parts, {p: {"sent", "delivered", "read"} for p in parts}) == "read"
    assert part_progress(parts, {p: {"played"} for p in parts}) == "read"  # a voice note listened to
