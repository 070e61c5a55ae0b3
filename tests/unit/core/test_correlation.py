"""The correlation id: a caller's id is kept only when safe, and upstream calls carry the bound one."""

from __future__ import annotations

from typing import cast

import pytest
import structlog

from xypr.backends.broker.base import Broker, OutgoingMessage
from xypr.core.correlation import sane_request_id, upstream_headers
from xypr.events import GenesysRequest, ordering_key
from xypr.services.receipts import publish_failed_receipt
from xypr.topology import SEND_GENESYS


@pytest.mark.parametrize("given", ["a1b2c3d4", "0b6f3c1e-2a44-4d0a-9d64-3f1f2c7a9e10", "x" * 64])
def test_a_sane_caller_id_is_kept(given: str) -> None:
    assert sane_request_id(given) == given


@pytest.mark.parametrize("given", [None, "", "short", "x" * 65, "has space1", "ünïcödé-id", "new\nline-id"])
def test_anything_else_gets_a_fresh_id(given: str | None) -> None:
    chosen = sane_request_id(given)
    assert chosen != given
    assert len(chosen) == 32
    assert sane_request_id(chosen) == chosen


def test_upstream_calls_carry_the_event_id_else_the_request_id_else_nothing() -> None:
    assert upstream_headers() == {}
    with structlog.contextvars.bound_contextvars(request_id="request-0001"):
        assert upstream_headers() == {"X-Request-Id": "request-0001"}
        with structlog.contextvars.bound_contextvars(correlation_id="event-00001"):
            assert upstream_headers() == {"X-Request-Id": "event-00001"}


async def test_a_failed_receipt_goes_on_the_queue_with_its_correlation_id() -> None:
    published: list[tuple[str, list[OutgoingMessage]]] = []

    class Recorder:
        async def publish(self, queue: str, messages: list[OutgoingMessage]) -> None:
            published.append((queue, messages))

    await publish_failed_receipt(
        cast(Broker, Recorder()),
        tenant_id="t-1",
        customer_id="15550001",
        customer_id_type="Phone",
        genesys_message_id="g-1",
        reason="GeneralError",
        message="refused",
        correlation_id="c0ffee00c0ffee00",
    )
    ((queue, (message,)),) = published
    assert queue == SEND_GENESYS
    assert message.key == ordering_key("t-1", "15550001")
    assert message.headers == {"correlation_id": "c0ffee00c0ffee00"}
    assert GenesysRequest.model_validate_json(message.body).correlation_id == "c0ffee00c0ffee00"


def test_what_a_transformer_knows_in_process_never_goes_on_the_queue() -> None:
    request = GenesysRequest(
        tenant_id="t1",
        kind="message",
        body={"text": "hi"},
        message_id="m1",
        conversation_id="c1",
        accepted_at=1.0,
        correlation_id="abc",
        just_tracked=True,
        genesys_conversation_id="gc-1",
    )

    queued = request.to_outgoing(customer="16505551234")

    assert b"just_tracked" not in queued.body
    assert b"gc-1" not in queued.body
    again = GenesysRequest.model_validate_json(queued.body)
    assert (again.just_tracked, again.genesys_conversation_id) == (False, None)  # a queued request reads its row
    assert again.message_id == "m1"
